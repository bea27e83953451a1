"""Statistics, the one place they live: correlations, permutation and bootstrap tests, trend
tests, confidence intervals, multiple-comparison corrections, noise ceilings and random-effects
(group) tests. Vectorized; every random step
takes a ``seed`` (int, numpy Generator or None).

What other subpackages share beyond these (generators, index sets, batched correlations,
p-values from null distributions) is in ``brainprobe._internal``, not public API.
"""

# the memory budget is not statistics (it lives in brainprobe._memory); re-exported here, where
# the resampling functions that follow it are
from .._memory import memory_budget, set_memory_budget
from ._accuracy import (
    ACCURACY_DEFINITIONS,
    accuracy_permutation_test,
    accuracy_vertex_bootstrap,
    prediction_accuracy,
)
from ._ceiling import (
    LayerSweep,
    encoding_noise_ceiling,
    layer_sweep,
    noise_ceiling,
    random_effects_test,
    spearman_brown,
    split_half_ceiling,
)
from ._correlation import CORRELATION_METHODS, kendall_tau_a
from ._image_bootstrap import image_bootstrap_rdm_correlations
from ._inference import (
    accuracy_difference_test,
    fdr_by_family,
    jackknife_ci,
    leave_one_out,
    relabeling_test,
    trend_bootstrap_test,
)
from ._information import mutual_information
from ._resampling import (
    PermutationResult,
    bootstrap,
    percentile_ci,
    rdm_permutation_test,
    subsample_ci,
    subsample_p,
)
from ._tests import fdr_bh, fwe_max_statistic, paired_ttest, two_sample_ttest
from ._trend import MannKendallResult, mann_kendall, sens_slope

__all__ = [
    "ACCURACY_DEFINITIONS",
    "CORRELATION_METHODS",
    "LayerSweep",
    "MannKendallResult",
    "PermutationResult",
    "accuracy_difference_test",
    "accuracy_permutation_test",
    "accuracy_vertex_bootstrap",
    "bootstrap",
    "encoding_noise_ceiling",
    "fdr_bh",
    "fdr_by_family",
    "fwe_max_statistic",
    "image_bootstrap_rdm_correlations",
    "jackknife_ci",
    "kendall_tau_a",
    "layer_sweep",
    "leave_one_out",
    "mann_kendall",
    "memory_budget",
    "mutual_information",
    "noise_ceiling",
    "paired_ttest",
    "percentile_ci",
    "prediction_accuracy",
    "random_effects_test",
    "rdm_permutation_test",
    "relabeling_test",
    "sens_slope",
    "set_memory_budget",
    "spearman_brown",
    "split_half_ceiling",
    "subsample_ci",
    "subsample_p",
    "trend_bootstrap_test",
    "two_sample_ttest",
]
