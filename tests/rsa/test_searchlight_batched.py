"""The batched searchlight (Gram identities for Pearson, batched sorts for the other methods) gives
the per-disk RDM path's numbers, NaN disks included, and is chosen only where it should be."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import rankdata

from _studies import kinds_table
from brainprobe._internal import correlate_rows
from brainprobe._internal import rank_rows_torch as _ranks
from brainprobe.rsa import _searchlight as searchlight_module
from brainprobe.rsa import searchlight_kind_similarity, searchlight_rdms
from brainprobe.rsa._searchlight import _membership
from brainprobe.rsa._searchlight_batched import batched_kind_similarity

N_IMAGES, N_VERTICES = 18, 150
KINDS = ("RE", "AN", "AI")


def _disks(rng, n_vertices=N_VERTICES):
    """Disks of uneven sizes (1 to 30 vertices; never 2, whose correlation-distance RDMs hold only
    0 and 2, ties that rounding decides in either path): odd centres a window of vertices from the
    centre on, even centres scattered vertices."""
    disks = sp.lil_matrix((n_vertices, n_vertices), dtype=bool)
    for centre in range(n_vertices):
        size = (1, 3, 4, 7, 12, 30)[centre % 6]
        window = (centre + np.arange(size)) % n_vertices
        disks[centre, window if centre % 2 else rng.choice(n_vertices, size=size, replace=False)] = True
    return disks.tocsr()


def _planted(rng, n=N_IMAGES, n_vertices=N_VERTICES):
    """RE with a shared offset (correlations far from 0, the harder case for sums of pairs), AI =
    RE + noise on the first half of the vertices (0..74), AN independent; image 3 of RE constant over
    vertices 0..39 and image 5 of AN zero over 100..119 (NaN disks for correlation and cosine)."""
    re_patterns = rng.normal(size=(n, n_vertices)) + 3 * rng.normal(size=(1, n_vertices))
    an = rng.normal(size=(n, n_vertices))
    ai = rng.normal(size=(n, n_vertices))
    half = n_vertices // 2
    ai[:, :half] = re_patterns[:, :half] + 0.4 * rng.normal(size=(n, half))
    re_patterns[3, :40] = 2.5
    an[5, 100:120] = 0.0
    return kinds_table(n), np.concatenate([re_patterns, an, ai])


def _expected(patterns, disks, metric, method, n=N_IMAGES):
    """Correlations of per-disk RDMs formed one disk at a time (`searchlight_rdms`)."""
    rdms = {kind: searchlight_rdms(patterns[i * n:(i + 1) * n], disks, metric) for i, kind in enumerate(KINDS)}
    return {other: correlate_rows(rdms["RE"], rdms[other], method) for other in ("AN", "AI")}


def _map(frame, other):
    return frame.loc[frame["pair"] == f"RE-{other}", "similarity"].to_numpy()


@pytest.mark.parametrize("metric", ["correlation", "cosine", "squared_euclidean"])
def test_pearson_from_gram_matrices_equals_correlating_the_rdms(metric, monkeypatch):
    rng = np.random.default_rng(11)
    table, patterns = _planted(rng)
    disks = _disks(rng)
    expected = _expected(patterns, disks, metric, "pearson")

    def no_rdms(*args, **kwargs):
        raise AssertionError("the Gram path must not form RDMs")

    monkeypatch.setattr(searchlight_module, "_chunk_rdms", no_rdms)
    maps = searchlight_kind_similarity(patterns, table, disks, metric=metric, method="pearson", device="cpu")
    for other in ("AN", "AI"):
        found = _map(maps, other)
        np.testing.assert_array_equal(np.isnan(found), np.isnan(expected[other]))
        np.testing.assert_allclose(found, expected[other], rtol=0, atol=1e-10, equal_nan=True)
    # a budget of ~100 kB: blocks and sub-batches of one disk; the same numbers to rounding
    small = searchlight_kind_similarity(patterns, table, disks, metric=metric, method="pearson", device="cpu",
                                        memory_gb=1e-4)
    np.testing.assert_allclose(small["similarity"], maps["similarity"], rtol=0, atol=1e-12, equal_nan=True)
    ai = _map(maps, "AI")
    if metric != "squared_euclidean":  # constant / zero images: NaN disks, as in the RDM path
        assert np.isnan(_map(maps, "AN" if metric == "cosine" else "AI")).any()
    # the planted region: disks wholly inside the shared half carry RE-AI similarity
    inside = np.array([disks[c].indices.min() >= 40 and disks[c].indices.max() < 75 and disks[c].nnz >= 7
                       for c in range(N_VERTICES)])
    assert inside.sum() >= 4
    assert np.nanmin(ai[inside]) > 0.3


@pytest.mark.parametrize(("metric", "method"), [("correlation", "spearman"), ("cosine", "spearman"),
                                                ("euclidean", "spearman"), ("euclidean", "pearson"),
                                                ("squared_euclidean", "cosine")])
def test_batched_rdms_equal_the_per_disk_path(metric, method):
    rng = np.random.default_rng(12)
    table, patterns = _planted(rng)
    disks = _disks(rng)
    rows = {kind: np.arange(i * N_IMAGES, (i + 1) * N_IMAGES) for i, kind in enumerate(KINDS)}
    expected = _expected(patterns, disks, metric, method)
    for budget in (2**16, 2**30):  # sub-batches of a few disks, and all at once
        found = batched_kind_similarity(patterns, rows, _membership(disks, N_VERTICES), reference="RE",
                                        others=("AN", "AI"), metric=metric, method=method, budget=budget,
                                        device="cpu")
        for other in ("AN", "AI"):
            np.testing.assert_allclose(found[other], expected[other], rtol=0, atol=1e-10, equal_nan=True)


def test_batched_spearman_averages_exact_ties_as_rankdata():
    # small integers: every squared distance is an exact integer in any summation order, and many
    # pairs tie; the batched ranks must average them as scipy's rankdata does
    rng = np.random.default_rng(13)
    patterns = rng.integers(0, 3, size=(3 * N_IMAGES, 60)).astype(float)
    disks = _disks(rng, 60)
    rows = {kind: np.arange(i * N_IMAGES, (i + 1) * N_IMAGES) for i, kind in enumerate(KINDS)}
    rdms = searchlight_rdms(patterns[:N_IMAGES], disks, "squared_euclidean")
    assert (np.diff(np.sort(rdms, axis=1), axis=1) == 0).any(axis=1).all()  # ties in every disk
    found = batched_kind_similarity(patterns, rows, _membership(disks, 60), reference="RE", others=("AN", "AI"),
                                    metric="squared_euclidean", method="spearman", budget=2**20, device="cpu")
    expected = _expected(patterns, disks, "squared_euclidean", "spearman")
    for other in ("AN", "AI"):
        np.testing.assert_allclose(found[other], expected[other], rtol=0, atol=1e-12, equal_nan=True)


def test_batched_ranks_equal_rankdata_with_ties_near_ties_and_signed_zeros():
    rng = np.random.default_rng(18)
    x = rng.random((6, 5000))
    x[1, ::3] = x[1, 0]  # a third of a row tied
    x[2] = np.round(x[2], 2)  # ties everywhere
    x[3, 5], x[3, 7] = -0.0, 0.0  # equal values of different bits
    x[4] = -x[4]
    x[4, :50] = -1e300
    x[5, :300] = x[5, 300] * (1 + 1e-13 * rng.random(300))  # near-ties, not ties
    np.testing.assert_array_equal(_ranks(torch.from_numpy(x)).numpy(), rankdata(x, axis=-1))
    assert (_ranks(torch.tensor([[2.0]], dtype=torch.float64)) == 1.0).all()


def test_float32_patterns_are_taken_exactly_as_float64():
    rng = np.random.default_rng(14)
    table, patterns = _planted(rng)
    disks = _disks(rng)
    single = patterns.astype(np.float32)
    found = searchlight_kind_similarity(single, table, disks, method="pearson", device="cpu")
    again = searchlight_kind_similarity(single.astype(np.float64), table, disks, method="pearson", device="cpu")
    np.testing.assert_array_equal(found["similarity"].to_numpy(), again["similarity"].to_numpy())


def test_dispatch_keeps_rdms_for_spearman_on_cpu_kendall_and_permutations(monkeypatch):
    rng = np.random.default_rng(15)
    table, patterns = _planted(rng, n=6, n_vertices=30)
    disks = _disks(rng, 30)

    def refuse(*args, **kwargs):
        raise AssertionError("batched path used")

    monkeypatch.setattr(searchlight_module, "batched_kind_similarity", refuse)
    searchlight_kind_similarity(patterns, table, disks, device="cpu")  # Spearman on a CPU: per disk
    searchlight_kind_similarity(patterns, table, disks, method="kendall_tau_a", device="cpu")
    searchlight_kind_similarity(patterns, table, disks, method="pearson", n_perm=10, device="cpu")
    searchlight_kind_similarity(patterns, table, disks, metric="euclidean", method="pearson", device="cpu")
    with pytest.raises(AssertionError, match="batched path used"):
        searchlight_kind_similarity(patterns, table, disks, method="pearson", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_asked_for_without_cuda_is_a_clear_error():
    rng = np.random.default_rng(16)
    table, patterns = _planted(rng, n=6, n_vertices=30)
    with pytest.raises(ValueError, match="CUDA is not available"):
        searchlight_kind_similarity(patterns, table, _disks(rng, 30), method="pearson", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_cuda_path_equals_the_cpu_path(method):
    rng = np.random.default_rng(17)
    table, patterns = _planted(rng)
    disks = _disks(rng)
    on_gpu = searchlight_kind_similarity(patterns, table, disks, method=method, device="cuda")
    on_cpu = searchlight_kind_similarity(patterns, table, disks, method=method, device="cpu")
    np.testing.assert_allclose(on_gpu["similarity"], on_cpu["similarity"], rtol=0, atol=1e-10, equal_nan=True)


@pytest.mark.slow
def test_gram_path_on_fs_lr_disks_equals_the_rdm_path():
    """Real 3 mm disks of fs_LR 32k (4 to 41 vertices), 120 images per kind, float32 patterns as a
    large study would hold them: every one of 3,000 centres as the per-disk RDM path gives it."""
    from brainprobe.roi import fs_lr_32k, geodesic_neighbourhoods

    disks = geodesic_neighbourhoods(fs_lr_32k("L"), 3.0, progress=False)[:3000]
    rng = np.random.default_rng(19)
    n = 120
    patterns = rng.standard_normal((3 * n, disks.shape[1]), dtype=np.float32)
    patterns[2 * n:] += patterns[:n]  # AI shares RE's structure
    table = kinds_table(n)
    fast = searchlight_kind_similarity(patterns, table, disks, method="pearson", device="cpu")
    expected = _expected(patterns.astype(np.float64), disks, "correlation", "pearson", n=n)
    for other in ("AN", "AI"):
        np.testing.assert_allclose(_map(fast, other), expected[other], rtol=0, atol=1e-10)
    assert np.median(_map(fast, "AI")) > 0.3 > np.abs(np.median(_map(fast, "AN")))
