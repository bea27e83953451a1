"""Representational similarity analysis: RDMs, RDM comparison, RE-AN / RE-AI similarity with
permutation and bootstrap tests, trends over layers, and searchlight maps. Results are tidy
DataFrames; the statistics come from `brainprobe.stats`."""

from ._compare import COMPARE_METHODS, compare
from ._general import category_rdm, compare_to_candidates, group_comparison, searchlight_candidates
from ._image_tests import (
    kind_difference_test,
    kind_image_bootstrap,
    kind_image_ci,
    layer_trend_bootstrap,
)
from ._interop import from_rsatoolbox, to_rsatoolbox
from ._kinds import align_kinds, kind_difference, kind_similarity, layer_trend
from ._rdm import RDM_METRICS, condensed_rdm, rdm, square_rdm
from ._searchlight import searchlight_kind_similarity, searchlight_rdms

__all__ = [
    "COMPARE_METHODS",
    "RDM_METRICS",
    "align_kinds",
    "compare",
    "condensed_rdm",
    "kind_difference",
    "kind_similarity",
    "layer_trend",
    "rdm",
    "searchlight_kind_similarity",
    "searchlight_rdms",
    "square_rdm",
    "category_rdm",
    "compare_to_candidates",
    "group_comparison",
    "from_rsatoolbox",
    "to_rsatoolbox",
    "searchlight_candidates",
    "kind_difference_test",
    "kind_image_bootstrap",
    "kind_image_ci",
    "layer_trend_bootstrap",
]
