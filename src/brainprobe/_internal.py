"""Shared internals that several subpackages use but users do not call.

The helpers of `brainprobe.stats` that other subpackages build on (random generators, index
sets of permutations and bootstraps, batched correlations, p-values from null distributions,
labels of what a test resampled) live in the private modules of ``stats``; this module is the
one place other subpackages import them from, so that `brainprobe.stats` exports only the
statistics a user runs. Nothing here is public API: it may change without notice.
"""

from ._memory import DEFAULT_MEMORY_FRACTION, memory_budget_bytes
from .stats._ceiling import sign_flips
from .stats._correlation import (
    centred_rows,
    correlate_pairwise,
    correlate_rows,
    masked_correlation,
    normalize_rows,
    pearson_from_sums,
    rank_rows,
    rank_rows_torch,
)
from .stats._image_bootstrap import kept_pair_counts
from .stats._inference import (
    JACKKNIFE_CI_METHOD,
    RESAMPLED_IMAGES,
    RESAMPLED_SUBJECTS,
    RESAMPLED_UNITS,
    RESAMPLED_VERTICES,
    batched_accuracy,
    paired_swap_relabelings,
)
from .stats._information import MI_CORRECTIONS
from .stats._ranked_reference import RankedReference
from .stats._reference_correlation import ReferenceCorrelation
from .stats._resampling import (
    SUBSAMPLE_CI_METHOD,
    TIE_TOLERANCE,
    as_generator,
    bootstrap_indices,
    bootstrap_p,
    check_resampling,
    direction_label,
    is_complete_enumeration,
    p_from_null,
    pair_permutation_indices,
    permutation_indices,
    permutation_set,
    subsample_deviations,
)
from .stats._tests import fwe_from_null_maxima
from .stats._trend import mann_kendall_exact_distribution

__all__ = [
    "DEFAULT_MEMORY_FRACTION",
    "JACKKNIFE_CI_METHOD",
    "MI_CORRECTIONS",
    "RESAMPLED_IMAGES",
    "RESAMPLED_SUBJECTS",
    "RESAMPLED_UNITS",
    "RESAMPLED_VERTICES",
    "RankedReference",
    "ReferenceCorrelation",
    "SUBSAMPLE_CI_METHOD",
    "TIE_TOLERANCE",
    "as_generator",
    "batched_accuracy",
    "bootstrap_indices",
    "bootstrap_p",
    "centred_rows",
    "check_resampling",
    "correlate_pairwise",
    "correlate_rows",
    "direction_label",
    "fwe_from_null_maxima",
    "is_complete_enumeration",
    "kept_pair_counts",
    "mann_kendall_exact_distribution",
    "masked_correlation",
    "memory_budget_bytes",
    "normalize_rows",
    "pearson_from_sums",
    "p_from_null",
    "pair_permutation_indices",
    "paired_swap_relabelings",
    "permutation_indices",
    "permutation_set",
    "rank_rows",
    "rank_rows_torch",
    "sign_flips",
    "subsample_deviations",
]
