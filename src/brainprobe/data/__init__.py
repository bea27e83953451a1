"""fMRI responses: the `Responses` object, loading betas from any common format, trial tables,
and simulated subjects with known ground truth."""

from ._export import values_to_gifti, values_to_nifti, values_to_surface_image, volume_affine
from ._load import (
    GLMSINGLE_MODELS,
    NON_IMAGE_TRIAL_TYPES,
    glmsingle_model_name,
    kinds_from_stimuli,
    load_responses,
    load_trial_table,
    paper_trial_table,
    trials_from_designinfo,
)
from ._responses import BAD_VERTEX_POLICIES, TRIAL_COLUMNS, Responses
from ._simulate import ROI_SCALES, SimulationTruth, gabor_energy_features, simulate_subject

__all__ = [
    "BAD_VERTEX_POLICIES",
    "GLMSINGLE_MODELS",
    "NON_IMAGE_TRIAL_TYPES",
    "ROI_SCALES",
    "Responses",
    "SimulationTruth",
    "TRIAL_COLUMNS",
    "gabor_energy_features",
    "glmsingle_model_name",
    "kinds_from_stimuli",
    "load_responses",
    "load_trial_table",
    "paper_trial_table",
    "simulate_subject",
    "trials_from_designinfo",
    "values_to_gifti",
    "values_to_nifti",
    "values_to_surface_image",
    "volume_affine",
]
