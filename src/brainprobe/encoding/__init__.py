"""Encoding models: batched ROMP (and OMP / kernel-ridge baselines) per ROI x layer, their
generalization to other image kinds, and best-layer maps. Statistics come from `brainprobe.stats`."""

from ._estimators import (
    DEFAULT_CV_GRID,
    DEFAULT_RIDGE_ALPHAS,
    ROMP,
    KernelRidgeEncoder,
    OMPEncoder,
    RidgeCVEncoder,
)
from ._kernels import KernelStore, kernel_store
from ._romp import STOP_REASONS, RompFit, romp_batched, romp_single_target
from ._study import (
    EncodingModels,
    best_layer,
    best_layer_proportions,
    best_layer_tests,
    fit_encoding_models,
    generalization,
)
from ._torch import EncodingModule, encoding_modules, heldout_accuracy

__all__ = [
    "DEFAULT_CV_GRID",
    "EncodingModels",
    "EncodingModule",
    "KernelRidgeEncoder",
    "KernelStore",
    "OMPEncoder",
    "ROMP",
    "RompFit",
    "STOP_REASONS",
    "best_layer",
    "best_layer_proportions",
    "best_layer_tests",
    "encoding_modules",
    "fit_encoding_models",
    "generalization",
    "heldout_accuracy",
    "kernel_store",
    "romp_batched",
    "romp_single_target",
    "DEFAULT_RIDGE_ALPHAS",
    "RidgeCVEncoder",
]
