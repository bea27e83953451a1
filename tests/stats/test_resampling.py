import numpy as np
import pytest
from scipy import stats as ss

from brainprobe._internal import (
    bootstrap_indices,
    bootstrap_p,
    p_from_null,
    pair_permutation_indices,
    permutation_indices,
)
from brainprobe.rsa import rdm
from brainprobe.stats import bootstrap, percentile_ci, rdm_permutation_test


def test_pair_indices_relabel_the_rdm():
    rng = np.random.default_rng(0)
    patterns = rng.normal(size=(9, 20))
    perms = permutation_indices(9, 5, seed=1)
    index = pair_permutation_indices(perms)
    full = rdm(patterns)
    for perm, idx in zip(perms, index, strict=True):
        np.testing.assert_allclose(full[idx], rdm(patterns[perm]), atol=1e-12)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine", "kendall_tau_a"])
def test_permutation_null_equals_naive_rebuild(method):
    """The gather-based null equals: permute labels, rebuild the RDM, correlate."""
    rng = np.random.default_rng(1)
    a_patterns, b_patterns = rng.normal(size=(2, 10, 15))
    rdm_a, rdm_b = rdm(a_patterns), rdm(b_patterns)
    result = rdm_permutation_test(rdm_a, rdm_b, method=method, n_perm=20, seed=7)
    perms = permutation_indices(10, 20, seed=7)
    reference = {"spearman": lambda x, y: ss.spearmanr(x, y)[0], "pearson": lambda x, y: ss.pearsonr(x, y)[0],
                 "cosine": lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y),
                 "kendall_tau_a": None}[method]
    for k, perm in enumerate(perms):
        rebuilt = rdm(b_patterns[perm])
        if reference is None:
            n = len(rdm_a)
            expected = sum(np.sign(rdm_a[i] - rdm_a[j]) * np.sign(rebuilt[i] - rebuilt[j])
                           for i in range(n) for j in range(i + 1, n)) / (n * (n - 1) / 2)
        else:
            expected = reference(rdm_a, rebuilt)
        assert result.null[0, k] == pytest.approx(expected, abs=1e-10)


def test_permutation_test_is_calibrated_under_the_null():
    """Independent RDMs: rejections at alpha = 0.05 fall in the binomial 95% band."""
    n_datasets, n_perm, alpha = 400, 199, 0.05
    rng = np.random.default_rng(2024)
    rejections = 0
    for _ in range(n_datasets):
        a, b = rng.normal(size=(2, 12, 30))
        p = rdm_permutation_test(rdm(a), rdm(b), n_perm=n_perm, seed=rng).p[0]
        rejections += p <= alpha
    low, high = ss.binom.interval(0.95, n_datasets, alpha)
    assert low <= rejections <= high, rejections


def test_permutation_test_rejects_planted_structure():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(15, 40))
    noisy = base + 0.7 * rng.normal(size=base.shape)
    result = rdm_permutation_test(rdm(base), rdm(noisy), n_perm=999, seed=0)
    assert result.p[0] == pytest.approx(1 / 1000)
    assert result.observed[0] > 0.3


def test_p_from_null_formula():
    null = np.array([[0.1, 0.5, 0.3, 0.9]])
    assert p_from_null([0.5], null)[0] == pytest.approx((1 + 2) / 5)
    assert p_from_null([0.5], null, "less")[0] == pytest.approx((1 + 3) / 5)
    assert p_from_null([-0.6], null, "two-sided")[0] == pytest.approx((1 + 1) / 5)


def test_bootstrap_indices_without_replacement_are_distinct():
    index = bootstrap_indices(100, 50, seed=0, fraction=0.8, replace=False)
    assert index.shape == (50, 80)
    assert all(len(set(row)) == 80 for row in index)
    assert not np.array_equal(index[0], index[1])


def test_percentile_bootstrap_covers_the_true_mean():
    """Coverage of the 95% percentile interval for a mean, over many simulated samples."""
    rng = np.random.default_rng(5)
    true_mean, n_datasets, covered = 1.5, 300, 0
    for _ in range(n_datasets):
        sample = rng.normal(true_mean, 2.0, size=60)
        means = bootstrap(lambda idx, s=sample: s[idx].mean(axis=1), 60, n_boot=500, seed=rng)
        low, high = percentile_ci(means, 0.95)
        covered += low <= true_mean <= high
    low, high = ss.binom.interval(0.99, n_datasets, 0.95)
    assert low <= covered <= high, covered / n_datasets


def test_bootstrap_p():
    samples = np.array([-0.1, 0.2, 0.3, 0.4])
    assert bootstrap_p(samples, 0.0, "greater") == pytest.approx(2 / 5)
    assert bootstrap_p(samples, 0.0, "less") == pytest.approx(4 / 5)
    assert bootstrap_p(samples, 0.0, "two-sided") == pytest.approx(4 / 5)


def test_subsample_ci_of_a_correlation_never_leaves_minus_one_to_one():
    from brainprobe.stats import subsample_ci

    # 5 vertices, subsamples of 4: the deviations are doubled (sqrt(4 / 1)) and would reach past 1
    samples = np.array([0.99, 0.2, 0.9, 0.5, 0.95, 0.3])
    low, high = subsample_ci(samples, 0.97, n_items=5, n_sub=4, level=0.95)
    assert high > 1 or low < -1  # unclipped: an impossible correlation
    low, high = subsample_ci(samples, 0.97, n_items=5, n_sub=4, level=0.95, bounds=(-1.0, 1.0))
    assert -1 <= low <= 0.97 <= high <= 1
