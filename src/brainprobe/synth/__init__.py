"""Image synthesis on one optimization core (`optimize_pixels`): per-image stopping in a batch,
bounds, per-image optimizer state, 8-bit checks. Adversarial images use it now; inversion,
activation maximization, caricature, metamers, textures and distortions are issue 7."""

from ._core import OPTIMIZERS, OptimizationResult, optimize_pixels, quantize_8bit

__all__ = ["OPTIMIZERS", "OptimizationResult", "optimize_pixels", "quantize_8bit"]
