"""Vertex selection's reliability goes a block of centres at a time: same values under any budget."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import spearmanr

from brainprobe.data import Responses
from brainprobe.roi import select_reliable_vertices
from brainprobe.rsa import searchlight_rdms
from brainprobe.stats import memory_budget


def _two_repeats(seed: int, n_images: int, n_vertices: int, half_width: int):
    """Responses of one hemisphere with a shared signal in repeats 1 and 2, the two repeats' betas
    and band-shaped disks of 2 half_width + 1 vertices."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_images, n_vertices))
    halves = [signal + rng.normal(size=signal.shape) for _ in range(2)]
    trials = pd.DataFrame({"image_id": [f"i{k:02d}" for k in range(n_images)] * 2,
                           "repeat": [1] * n_images + [2] * n_images})
    vertices = pd.DataFrame({"hemi": "L", "vertex": range(n_vertices), "V1": True})
    offsets = range(-half_width, half_width + 1)
    band = sp.diags([1.0] * len(offsets), offsets, shape=(n_vertices, n_vertices), format="csr")
    return Responses(np.concatenate(halves), trials, vertices), halves, band


def test_reliability_is_the_same_in_blocks_and_equals_scipy_per_disk():
    responses, halves, band = _two_repeats(4, 30, 50, 2)
    whole = select_reliable_vertices(responses, "V1", {"L": band}, n_per_hemi=10)
    with memory_budget(80 * 435 * 7 / 2**30):  # 7 centres' RDMs per block: 8 blocks
        blocked = select_reliable_vertices(responses, "V1", {"L": band}, n_per_hemi=10)
    pd.testing.assert_frame_equal(whole, blocked)
    rdms = [searchlight_rdms(half, band, "correlation") for half in halves]
    expected = [spearmanr(a, b).statistic for a, b in zip(*rdms, strict=True)]
    np.testing.assert_allclose(whole["reliability"], expected, rtol=1e-12)


def test_pearson_reliability_from_gram_matrices_equals_scipy_per_disk():
    # [rsa] method = "pearson": no RDM is formed (the searchlight's Gram identities)
    from scipy.stats import pearsonr

    responses, halves, band = _two_repeats(5, 40, 60, 3)
    for metric in ("correlation", "squared_euclidean"):
        table = select_reliable_vertices(responses, "V1", {"L": band}, n_per_hemi=10, metric=metric, method="pearson")
        rdms = [searchlight_rdms(half - halves[0].mean(), band, metric) for half in halves]
        expected = [pearsonr(a, b).statistic for a, b in zip(*rdms, strict=True)]
        np.testing.assert_allclose(table["reliability"], expected, rtol=1e-10)
