"""Adversarial noise (AN) and adversarial interference (AI) images (paper 001), on the
optimization core of `brainprobe.synth`: per-image stopping in a batch, 8-bit checked output."""

from ._generate import (
    SCORES,
    imagenet_mean_image,
    interference_images,
    noise_images,
    paper_design,
    true_classes,
)

__all__ = ["SCORES", "imagenet_mean_image", "interference_images", "noise_images", "paper_design", "true_classes"]
