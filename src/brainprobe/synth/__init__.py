"""Image synthesis on one optimization core (`optimize_pixels`: per-image stopping in a batch,
bounds, per-image optimizer state, 8-bit checks). Pre-images of paper 004 (inversion, activation
maximization, caricature) with its natural-image priors; model metamers of paper 000; Gram textures of paper 003; eigen- and principal distortions of paper 002; images driven by fitted encoding models
(ROI-maximizing, controversial, brain metamers); adversarial images
(`brainprobe.adversarial`) use the same core. Beyond the papers: lucid's Fourier /
decorrelated-colour parameterization (`FourierParameterization`, selectable in the core and in
every pre-image method) with random transforms (`RandomTransforms`), and MAD competition of two
models (`MADCompetition`, Wang & Simoncelli 2008). Every synthesis object keeps one contract
(`Synthesis`: ``synthesize``, ``n_iter`` per image, ``losses`` and ``history`` for
`brainprobe.plotting.synthesis_progress`, ``table_``, ``to``, ``save`` / ``load`` checking the
network); eigen- and principal distortions are such objects too (`EigendistortionSynthesis`,
`PrincipalDistortionSynthesis`)."""

from ._brain import (
    BrainMetamer,
    BrainSynthesis,
    ControversialImages,
    NetworkReadout,
    ROIMaximization,
    model_responses,
)
from ._core import OPTIMIZERS, OptimizationResult, optimize_pixels, quantize_8bit
from ._distortion import (
    DENSE_MAX_PIXELS,
    Eigendistortions,
    EigendistortionSynthesis,
    FisherOperator,
    PrincipalDistortions,
    PrincipalDistortionSynthesis,
    eigendistortions,
    principal_distortion_objective,
    principal_distortions,
)
from ._mad import LayerDistance, MADCompetition
from ._metamer import (
    Metamer,
    cross_model_recognition,
    fidelity_null,
    layer_fidelity,
    linear_gradient_applies,
    linear_gradient_relu,
)
from ._parameterization import COLOR_CORRELATION_SQRT, FourierParameterization
from ._preimage import (
    ActivationMaximization,
    Caricature,
    Inversion,
    PreImageSynthesis,
    layer_maximum,
    layer_stride,
    leaky_relu,
    receptive_field_size,
)
from ._regularizers import PreImagePrior, RandomTransforms, alpha_norm, jitter, tv_beta
from ._synthesis import Synthesis
from ._texture import (
    TextureSynthesis,
    gram_loss,
    gram_matrices,
    gram_rdms,
    gram_vectors,
    texture_clustering,
)

__all__ = [
    "COLOR_CORRELATION_SQRT",
    "OPTIMIZERS",
    "ActivationMaximization",
    "BrainMetamer",
    "BrainSynthesis",
    "Caricature",
    "ControversialImages",
    "Eigendistortions",
    "FisherOperator",
    "FourierParameterization",
    "Inversion",
    "LayerDistance",
    "MADCompetition",
    "Metamer",
    "NetworkReadout",
    "OptimizationResult",
    "PreImagePrior",
    "PrincipalDistortions",
    "PreImageSynthesis",
    "ROIMaximization",
    "RandomTransforms",
    "TextureSynthesis",
    "alpha_norm",
    "cross_model_recognition",
    "eigendistortions",
    "fidelity_null",
    "gram_loss",
    "gram_matrices",
    "gram_rdms",
    "gram_vectors",
    "jitter",
    "layer_fidelity",
    "layer_stride",
    "leaky_relu",
    "linear_gradient_applies",
    "linear_gradient_relu",
    "model_responses",
    "optimize_pixels",
    "principal_distortion_objective",
    "principal_distortions",
    "quantize_8bit",
    "receptive_field_size",
    "texture_clustering",
    "tv_beta",
    "layer_maximum",
    "DENSE_MAX_PIXELS",
    "EigendistortionSynthesis",
    "PrincipalDistortionSynthesis",
    "Synthesis",
]
