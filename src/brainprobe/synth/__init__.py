"""Image synthesis on one optimization core (`optimize_pixels`: per-image stopping in a batch,
bounds, per-image optimizer state, 8-bit checks). Pre-images of paper 004 (inversion, activation
maximization, caricature) with its natural-image priors; model metamers of paper 000; adversarial images
(`brainprobe.adversarial`) use the same core."""

from ._core import OPTIMIZERS, OptimizationResult, optimize_pixels, quantize_8bit
from ._metamer import (
    Metamer,
    cross_model_recognition,
    fidelity_null,
    layer_fidelity,
    linear_gradient_relu,
)
from ._preimage import (
    ActivationMaximization,
    Caricature,
    Inversion,
    PreImageSynthesis,
    receptive_field_size,
)
from ._regularizers import PreImagePrior, alpha_norm, jitter, tv_beta

__all__ = [
    "OPTIMIZERS",
    "ActivationMaximization",
    "Caricature",
    "Inversion",
    "Metamer",
    "OptimizationResult",
    "PreImagePrior",
    "PreImageSynthesis",
    "alpha_norm",
    "cross_model_recognition",
    "fidelity_null",
    "jitter",
    "layer_fidelity",
    "linear_gradient_relu",
    "optimize_pixels",
    "quantize_8bit",
    "receptive_field_size",
    "tv_beta",
]
