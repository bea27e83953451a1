"""Statistics, the one place they live: correlations, permutation and bootstrap tests, trend
tests, confidence intervals and multiple-comparison corrections. Vectorized; every random step
takes a ``seed`` (int, numpy Generator or None)."""

from ._accuracy import (
    ACCURACY_DEFINITIONS,
    accuracy_permutation_test,
    accuracy_vertex_bootstrap,
    prediction_accuracy,
)
from ._correlation import (
    CORRELATION_METHODS,
    correlate_pairwise,
    correlate_rows,
    kendall_tau_a,
    masked_correlation,
    normalize_rows,
    rank_rows,
)
from ._information import MI_CORRECTIONS, mutual_information
from ._resampling import (
    PermutationResult,
    as_generator,
    bootstrap,
    bootstrap_indices,
    bootstrap_p,
    check_resampling,
    p_from_null,
    pair_permutation_indices,
    percentile_ci,
    permutation_indices,
    rdm_permutation_test,
)
from ._tests import fdr_bh, fwe_from_null_maxima, fwe_max_statistic, paired_ttest, two_sample_ttest
from ._trend import MannKendallResult, mann_kendall, mann_kendall_exact_distribution, sens_slope

__all__ = [
    "check_resampling",
    "ACCURACY_DEFINITIONS",
    "accuracy_permutation_test",
    "accuracy_vertex_bootstrap",
    "prediction_accuracy",
    "CORRELATION_METHODS",
    "MI_CORRECTIONS",
    "MannKendallResult",
    "PermutationResult",
    "as_generator",
    "bootstrap",
    "bootstrap_indices",
    "bootstrap_p",
    "correlate_pairwise",
    "correlate_rows",
    "fdr_bh",
    "fwe_from_null_maxima",
    "fwe_max_statistic",
    "kendall_tau_a",
    "mann_kendall",
    "mann_kendall_exact_distribution",
    "masked_correlation",
    "mutual_information",
    "normalize_rows",
    "p_from_null",
    "pair_permutation_indices",
    "paired_ttest",
    "percentile_ci",
    "permutation_indices",
    "rank_rows",
    "rdm_permutation_test",
    "sens_slope",
    "two_sample_ttest",
]
