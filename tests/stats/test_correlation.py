import numpy as np
import pytest
import torch
from scipy import stats as ss

from brainprobe._internal import (
    correlate_pairwise,
    correlate_rows,
    masked_correlation,
    normalize_rows,
)
from brainprobe.stats import kendall_tau_a


@pytest.fixture
def tied_vectors():
    rng = np.random.default_rng(0)
    return rng.integers(0, 6, size=(3, 40)).astype(float), rng.integers(0, 6, size=(4, 40)).astype(float)


def test_spearman_and_pearson_match_scipy_with_ties(tied_vectors):
    a, b = tied_vectors
    spearman = correlate_pairwise(a, b, "spearman")
    pearson = correlate_pairwise(a, b, "pearson")
    for i in range(len(a)):
        for j in range(len(b)):
            assert spearman[i, j] == pytest.approx(ss.spearmanr(a[i], b[j])[0], abs=1e-12)
            assert pearson[i, j] == pytest.approx(ss.pearsonr(a[i], b[j])[0], abs=1e-12)


def _tau_a_brute(x, y):
    n = len(x)
    total = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i in range(n) for j in range(i + 1, n))
    return total / (n * (n - 1) / 2)


def test_kendall_tau_a_matches_its_definition(tied_vectors):
    a, b = tied_vectors
    tau = kendall_tau_a(a, b)
    assert tau[1, 2] == pytest.approx(_tau_a_brute(a[1], b[2]), abs=1e-12)
    # without ties tau-a equals scipy's tau-b
    x, y = np.random.default_rng(1).normal(size=(2, 30))
    assert kendall_tau_a(x, y)[0, 0] == pytest.approx(ss.kendalltau(x, y)[0], abs=1e-12)
    np.testing.assert_allclose(correlate_rows(a[:3], b[:3], "kendall_tau_a"), np.diag(tau[:, :3]), atol=1e-12)


def test_cosine_and_constant_rows():
    x, y = np.random.default_rng(2).normal(size=(2, 10))
    assert correlate_rows(x, y, "cosine") == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert np.isnan(normalize_rows(np.ones(5), "pearson")).all()


def test_masked_correlation_equals_correlation_on_kept_entries():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, size=(2, 6, 30)).astype(float)
    mask = rng.random((6, 30)) > 0.3
    for method in ("spearman", "pearson", "cosine", "kendall_tau_a"):
        got = masked_correlation(a, b, mask, method)
        expected = [correlate_rows(a[i][mask[i]], b[i][mask[i]], method) for i in range(6)]
        np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=method)


def test_masked_correlation_of_an_emptied_row_is_nan_without_a_warning():
    # a bootstrap of 4 images that draws one image four times keeps no pair of its RDM
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 3, 6))
    mask = np.ones((3, 6), bool)
    mask[1] = False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("spearman", "pearson", "cosine"):
            got = masked_correlation(a, b, mask, method)
            assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="method: expected one of"):
        correlate_pairwise(np.zeros(3), np.zeros(3), "mutual_information")


def test_fast_ranks_equal_scipy_with_and_without_ties():
    from scipy.stats import rankdata

    from brainprobe._internal import rank_rows

    rng = np.random.default_rng(4)
    continuous = rng.normal(size=(50, 40))
    tied = rng.integers(0, 4, size=(50, 40)).astype(float)
    mixed = np.concatenate([continuous, tied])
    for values in (continuous, tied, mixed, mixed.reshape(5, 20, 40)):
        np.testing.assert_array_equal(rank_rows(values), rankdata(values, axis=-1))


def test_packed_key_ranks_equal_scipy_where_prefixes_collide(monkeypatch):
    """The packed-key sort keeps only a prefix of each value beside its index: values closer than
    that prefix resolves, a range of 600 orders of magnitude, signed zeros, infinities, NaN rows and
    row blocks must all still give scipy's ranks exactly."""
    from scipy.stats import rankdata

    from brainprobe.stats import _correlation, _rank_kernels

    rng = np.random.default_rng(11)
    # 20 bits of spread (ties too) inside a range of ~2^62 keys: the prefix drops 16 bits of each value
    near = 1.0 + rng.integers(0, 2**20, size=(3, 200_000)) * np.finfo(float).eps
    near[:, :2] = [1e-300, 1e300]
    wide = rng.choice([-1.0, 1.0], size=(2, 5000)) * 10.0 ** rng.uniform(-300, 300, size=(2, 5000))
    specials = np.array([[0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 5e-324, -5e-324, 0.0, np.inf]])
    constant = np.full((2, 1000), 3.5)
    with_nan = np.where(rng.random((9, 300)) < 0.02, np.nan, rng.normal(size=(9, 300)))
    binary = rng.integers(0, 2, size=(3, 100_000)).astype(float)  # a categorical model RDM: two long tie runs
    short = rng.integers(0, 3, size=(20_000, 12)).astype(float)  # many short rows in each block
    near_fortran = np.asfortranarray(near[:, :3000])  # collisions; sorted order written through a flat view
    for values in (near, wide, specials, constant, with_nan, binary, short, near_fortran, near[:, ::-3]):
        np.testing.assert_array_equal(_correlation.rank_rows(values), rankdata(values, axis=-1))
    # nearly all of a near row's 200,000 values share a key prefix with a sorted neighbour
    keys = np.empty((1, near.shape[1]), np.uint64)
    index_bits = (near.shape[1] - 1).bit_length()
    _rank_kernels.prefix_keys(near[:1].view(np.uint64), near[:1].min(1).view(np.uint64),
                              near[:1].max(1).view(np.uint64), index_bits, None, keys)
    keys.sort(axis=1)
    assert ((keys[0, 1:] ^ keys[0, :-1]) < np.uint64(1 << index_bits)).sum() > 150_000
    # integers beyond float64's 2^53 and long doubles would merge in float64: scipy ranks them
    for values in (np.array([2**53, 2**53 + 1, 2**53 + 2]), np.array([2**64 - 1, 2**64 - 2, 0], dtype=np.uint64),
                   np.array([1.0, 1.0 + np.finfo(np.longdouble).eps, 1.0], dtype=np.longdouble)):
        np.testing.assert_array_equal(_correlation.rank_rows(values), rankdata(values))
    monkeypatch.setattr(_correlation, "_RANK_BLOCK_ELEMENTS", 1000)  # several blocks of rows, NaN rows between
    np.testing.assert_array_equal(_correlation.rank_rows(with_nan), rankdata(with_nan, axis=-1))
    np.testing.assert_array_equal(_correlation.rank_rows(near[:, :5000]), rankdata(near[:, :5000], axis=-1))


def test_ranks_in_place_equal_scipy_and_leave_other_inputs_alone(monkeypatch):
    """``overwrite=True`` ranks a C-contiguous float64 array into itself (collisions, ties, NaN rows
    and several blocks included); any other input is copied, never written."""
    from scipy.stats import rankdata

    from brainprobe.stats import _correlation

    rng = np.random.default_rng(12)
    near = 1.0 + rng.integers(0, 2**20, size=(4, 3000)) * np.finfo(float).eps  # prefixes collide
    tied = rng.integers(0, 5, size=(6, 3000)).astype(float)
    with_nan = np.where(rng.random((5, 3000)) < 0.01, np.nan, rng.normal(size=(5, 3000)))
    monkeypatch.setattr(_correlation, "_RANK_BLOCK_ELEMENTS", 7000)  # blocks of two rows
    for values in (near, tied, with_nan):
        expected = rankdata(values, axis=-1)
        work = values.copy()
        assert np.shares_memory(_correlation.rank_rows(work, overwrite=True), work)
        np.testing.assert_array_equal(work, expected)  # the input now holds its ranks
    for values in (np.asfortranarray(near), tied.astype(np.float32), tied.astype(np.int64), near[:, ::2]):
        before = values.copy()
        np.testing.assert_array_equal(_correlation.rank_rows(values, overwrite=True), rankdata(values, axis=-1))
        np.testing.assert_array_equal(values, before)


def test_centred_rows_divided_by_their_norms_are_normalize_rows():
    from brainprobe.stats._correlation import centred_rows, normalize_rows

    rng = np.random.default_rng(13)
    values = np.concatenate([rng.normal(size=(3, 50)), rng.integers(0, 3, size=(2, 50)), np.ones((1, 50))])
    for method in ("spearman", "pearson", "cosine"):
        before = values.copy()
        rows, norms = centred_rows(values, method)
        np.testing.assert_array_equal(values, before)
        np.testing.assert_allclose(rows / norms[:, None], normalize_rows(values, method), rtol=1e-14, equal_nan=True)
        assert np.isnan(norms[-1]) == (method != "cosine")  # a constant row has no correlation
        work = values.copy()
        in_place, _ = centred_rows(work, method, overwrite=True)
        assert np.shares_memory(in_place, work)
        np.testing.assert_array_equal(in_place, rows)
    ranks, _ = centred_rows(values, "spearman")
    np.testing.assert_allclose(ranks.mean(axis=1), 0.0, atol=1e-12)  # (n + 1) / 2 is every row's mean rank


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_row_ranks_equal_scipy_rankdata_with_ties(dtype):
    """One torch ranking serves the metamer fidelity and the batched searchlight: scipy's average
    ranks, ties included (rows with many, with none, and all equal)."""
    from scipy.stats import rankdata

    from brainprobe._internal import rank_rows_torch

    rng = np.random.default_rng(3)
    rows = np.stack([rng.integers(0, 4, 200), rng.standard_normal(200), np.zeros(200),
                     np.maximum(rng.standard_normal(200), 0)]).astype(np.float64)
    ranks = rank_rows_torch(torch.as_tensor(rows, dtype=dtype))
    assert ranks.dtype == dtype
    as_numpy = np.float32 if dtype == torch.float32 else np.float64
    np.testing.assert_array_equal(ranks.double().numpy(), rankdata(rows.astype(as_numpy), axis=1))
    assert rank_rows_torch(torch.as_tensor(rows, dtype=torch.float32), dtype=torch.float64).dtype == torch.float64


def test_pearson_from_sums_equals_numpy_and_is_nan_for_a_constant_variable():
    from brainprobe._internal import pearson_from_sums

    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 3, 500))
    b[2] = 7.0  # constant: no correlation
    sums = [torch.as_tensor(v) for v in (a.sum(1), b.sum(1), (a * a).sum(1), (b * b).sum(1), (a * b).sum(1))]
    r = pearson_from_sums(*sums, 500).numpy()
    np.testing.assert_allclose(r[:2], [np.corrcoef(a[i], b[i])[0, 1] for i in range(2)], atol=1e-12)
    assert np.isnan(r[2])
