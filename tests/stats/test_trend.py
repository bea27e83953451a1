import itertools

import numpy as np
import pymannkendall as pmk
import pytest

from brainprobe._internal import mann_kendall_exact_distribution
from brainprobe.stats import mann_kendall


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [12, 40])
def test_normal_approximation_matches_pymannkendall(n, ties):
    rng = np.random.default_rng(n + ties)
    x = rng.integers(0, 5, n).astype(float) if ties else rng.normal(size=n) + 0.03 * np.arange(n)
    ours = mann_kendall(x, exact=False)
    ref = pmk.original_test(x)
    assert ours.s == ref.s
    assert ours.tau == pytest.approx(ref.Tau, abs=1e-12)
    assert ours.var_s == pytest.approx(ref.var_s, abs=1e-9)
    assert ours.z == pytest.approx(ref.z, abs=1e-12)
    assert ours.p == pytest.approx(ref.p, abs=1e-12)
    assert ours.slope == pytest.approx(ref.slope, abs=1e-12)
    assert ours.intercept == pytest.approx(ref.intercept, abs=1e-12)


def _brute_force_p(x, alternative):
    n = len(x)
    s_obs = sum(np.sign(x[j] - x[i]) for i in range(n) for j in range(i + 1, n))
    values = []
    for order in itertools.permutations(x):
        values.append(sum(np.sign(order[j] - order[i]) for i in range(n) for j in range(i + 1, n)))
    values = np.array(values)
    if alternative == "increasing":
        return np.mean(values >= s_obs)
    if alternative == "decreasing":
        return np.mean(values <= s_obs)
    return np.mean(np.abs(values) >= abs(s_obs))


@pytest.mark.parametrize("alternative", ["two-sided", "increasing", "decreasing"])
@pytest.mark.parametrize("x", [
    [0.3, 0.1, 0.4, 0.5, 0.2, 0.8, 0.9],          # n = 7, no ties
    [0.1, 0.2, 0.2, 0.5, 0.4, 0.5],               # n = 6, ties
    [0.2, 0.3, 0.35, 0.3, 0.5, 0.6, 0.55, 0.7],   # n = 8, one tie: the study's 8 layers
])
def test_exact_p_equals_brute_force_enumeration(x, alternative):
    result = mann_kendall(x, alternative=alternative, exact=True)
    assert result.method == "exact"
    assert result.p == pytest.approx(_brute_force_p(np.asarray(x), alternative), abs=1e-12)


def test_exact_distribution_without_ties_scales():
    values, probabilities = mann_kendall_exact_distribution(np.arange(30.0))
    assert probabilities.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(probabilities, probabilities[::-1])  # symmetric about 0
    assert values.max() == 30 * 29 // 2


def test_trend_label_and_errors():
    assert mann_kendall(np.arange(8.0)).trend == "increasing"
    assert mann_kendall(-np.arange(8.0)).trend == "decreasing"
    with pytest.raises(ValueError, match="at least 3"):
        mann_kendall([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        mann_kendall([1.0, np.nan, 2.0, 3.0])


def test_the_papers_re_ai_trend_both_ways():
    """Paper 001: RE-AI declines over 8 layers, p = 0.009. That is S = -22 under the normal
    approximation with continuity correction; the exact p of S = -22 is 0.0055."""
    x = np.array([7, 6, 5, 4, 0, 3, 2, 1], float)  # 3 concordant, 25 discordant pairs
    result = mann_kendall(x, exact=False)
    reference = pmk.original_test(x)
    assert result.s == -22 and result.method == "normal"
    assert result.p == result.p_normal == pytest.approx(reference.p, abs=1e-12)
    assert round(result.p_normal, 3) == 0.009
    assert result.p_exact == pytest.approx(_brute_force_p(x, "two-sided"), abs=1e-12)
    assert round(result.p_exact, 4) == 0.0055
    assert mann_kendall(x).p == result.p_exact  # "auto" is exact for 8 values
