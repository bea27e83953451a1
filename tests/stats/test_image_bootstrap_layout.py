"""The image bootstrap's pair layout (per-position image indices, int64 cumulative ranks, one
gather per RDM into the pivot's order, threads over resamples) against re-ranking each gathered
resample with scipy, and the same bits for any thread count, batch size, block size or rank type."""

import numpy as np
import pytest
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr

from brainprobe._internal import bootstrap_indices
from brainprobe.stats import _image_bootstrap as module
from brainprobe.stats import image_bootstrap_rdm_correlations


def _rdms(n, ties, seed=0):
    """Two 'a' RDMs and three 'b' RDMs over n images; with ``ties``, some of them categorical."""
    rng = np.random.default_rng(seed)
    n_pairs = n * (n - 1) // 2
    a = rng.random((2, n_pairs))
    b = np.stack([a[0] + rng.random(n_pairs), a[1] + 2 * rng.random(n_pairs), rng.random(n_pairs)])
    if ties:  # a categorical pivot, a rounded one, and untied ones beside them
        a[0] = np.round(3 * a[0])
        b[1] = np.round(5 * b[1])
    return a, b


def _reference(a, b, draw):
    """The long way: gather the resample's RDM entries, drop pairs of an image with its own copy,
    Spearman by scipy."""
    i, j = np.triu_indices(len(draw), 1)
    keep = draw[i] != draw[j]
    gathered = [[squareform(v)[draw[i], draw[j]][keep] for v in rdms] for rdms in (a, b)]
    return np.array([[spearmanr(x, y)[0] for y in gathered[1]] for x in gathered[0]])


@pytest.mark.parametrize("ties", [False, True])
def test_spearman_resamples_equal_scipy_on_the_gathered_resample(ties):
    """300 images: 44,850 pairs, two blocks; draws of n and of fewer images (a subsample)."""
    n = 300
    a, b = _rdms(n, ties)
    draws = bootstrap_indices(n, 4, seed=1)
    samples = image_bootstrap_rdm_correlations(a, b, indices=draws, n_jobs=1)
    expected = np.stack([_reference(a, b, draw) for draw in draws])
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-12)
    fewer = np.random.default_rng(2).integers(0, n, size=(2, 120))
    np.testing.assert_allclose(image_bootstrap_rdm_correlations(a, b, indices=fewer),
                               np.stack([_reference(a, b, draw) for draw in fewer]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_tied_runs_and_cumulative_sums_across_many_small_blocks(monkeypatch, ties):
    """Blocks of 64 pairs: tied runs and running sums cross many block edges; still scipy's ranks,
    and the same bits as one block would give up to rounding of the sums."""
    n = 40
    a, b = _rdms(n, ties, seed=3)
    draws = bootstrap_indices(n, 5, seed=4)
    one_block = image_bootstrap_rdm_correlations(a, b, indices=draws)
    monkeypatch.setattr(module, "_BLOCK", 64)
    small = image_bootstrap_rdm_correlations(a, b, indices=draws)
    expected = np.stack([_reference(a, b, draw) for draw in draws])
    np.testing.assert_allclose(small, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(small, one_block, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_same_bits_for_any_threads_batch_budget_and_rank_type(method):
    n = 120
    a, b = _rdms(n, ties=True, seed=5)
    draws = bootstrap_indices(n, 13, seed=6)
    draws[0] = 7  # one image only: no pair kept, NaN
    reference = image_bootstrap_rdm_correlations(a, b, method=method, indices=draws, n_jobs=1)
    assert np.isnan(reference[0]).all() and np.isfinite(reference[1:]).all()
    for kwargs in ({"n_jobs": 2}, {"n_jobs": 3, "batch_size": 1}, {"n_jobs": 2, "batch_size": 5},
                   {"memory_gb": 1e-6}, {"n_jobs": 4, "memory_gb": 1e-3}):
        np.testing.assert_array_equal(
            image_bootstrap_rdm_correlations(a, b, method=method, indices=draws, **kwargs), reference)
    # the same draws in other chunks of resamples: each resample's value is its own
    np.testing.assert_array_equal(
        image_bootstrap_rdm_correlations(a, b, method=method, indices=draws[5:], n_jobs=2), reference[5:])
    # int64 ranks (taken where the kept entries could pass 2**31) give the same bits as int32
    prepared = module._Prepared(a, b, method, n, draws.shape[1])
    assert prepared.rank_dtype == np.int32
    prepared.rank_dtype = np.int64
    wide = np.stack([prepared.resample(np.bincount(d, minlength=n), prepared.workspace()) for d in draws[1:]])
    np.testing.assert_array_equal(wide, reference[1:])


def test_thread_count_and_batch_size_are_checked():
    a, b = _rdms(10, ties=False)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs"):
            image_bootstrap_rdm_correlations(a, b, n_boot=2, seed=0, n_jobs=bad)
        with pytest.raises(ValueError, match="batch_size"):
            image_bootstrap_rdm_correlations(a, b, n_boot=2, seed=0, batch_size=bad)


def test_default_threads_respect_the_processes_share_of_cores(monkeypatch):
    from brainprobe.stats._image_bootstrap import _default_jobs

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    every_core = _default_jobs()
    assert every_core >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # e.g. a joblib worker's share
    assert _default_jobs() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert _default_jobs() == every_core
