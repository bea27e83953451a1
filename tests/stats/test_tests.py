import numpy as np
import pytest
from scipy import stats as ss

from brainprobe.stats import fdr_bh, fwe_max_statistic, paired_ttest


def test_fdr_matches_scipy():
    p = np.random.default_rng(0).uniform(size=50) ** 2
    np.testing.assert_allclose(fdr_bh(p), ss.false_discovery_control(p, method="bh"), atol=1e-12)
    with_nan = np.array([0.01, np.nan, 0.04])
    assert np.isnan(fdr_bh(with_nan)[1])


def test_paired_ttest_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 6))
    row = paired_ttest(a, b)
    expected = ss.ttest_rel(a, b)
    assert row["t"] == pytest.approx(expected.statistic) and row["p"] == pytest.approx(expected.pvalue)
    assert row["df"] == 5


def test_max_statistic_controls_family_wise_error():
    """Under the global null, P(any test rejected) stays near alpha."""
    rng = np.random.default_rng(2)
    n_sim, n_tests, n_perm = 300, 20, 199
    any_rejected = 0
    for _ in range(n_sim):
        draws = rng.normal(size=(n_tests, n_perm + 1))  # exchangeable: observed is one more draw
        p = fwe_max_statistic(draws[:, 0], draws[:, 1:])
        any_rejected += (p <= 0.05).any()
    low, high = ss.binom.interval(0.95, n_sim, 0.05)
    assert any_rejected <= high
