import numpy as np
import pytest
import rsatoolbox
from scipy.spatial.distance import pdist
from scipy.stats import kendalltau, pearsonr, spearmanr

from brainprobe.rsa import compare, condensed_rdm, rdm, square_rdm


def _toolbox_rdm(patterns, method):
    return rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(patterns), method=method).get_vectors()[0]


@pytest.fixture
def patterns():
    return np.random.default_rng(0).normal(size=(12, 30))



def test_rdms_match_scipy_and_rsatoolbox(patterns):
    np.testing.assert_allclose(rdm(patterns, "correlation"), pdist(patterns, "correlation"), atol=1e-10)
    np.testing.assert_allclose(rdm(patterns, "correlation"), _toolbox_rdm(patterns, "correlation"), atol=1e-10)
    np.testing.assert_allclose(rdm(patterns, "euclidean"), pdist(patterns, "euclidean"), atol=1e-10)
    np.testing.assert_allclose(rdm(patterns, "squared_euclidean"), _toolbox_rdm(patterns, "euclidean"), atol=1e-10)
    np.testing.assert_allclose(rdm(patterns, "cosine"), pdist(patterns, "cosine"), atol=1e-10)


def test_crossnobis_matches_rsatoolbox():
    rng = np.random.default_rng(1)
    n_conditions, n_runs, n_units = 6, 3, 20
    conditions = np.tile(np.arange(n_conditions), n_runs)
    runs = np.repeat(np.arange(n_runs), n_conditions)
    signal = rng.normal(size=(n_conditions, n_units))
    trials = signal[conditions] + rng.normal(size=(len(conditions), n_units))
    order = rng.permutation(len(trials))  # trials in any order
    trials, conditions, runs = trials[order], conditions[order], runs[order]
    precision = np.linalg.inv(np.cov(rng.normal(size=(200, n_units)), rowvar=False))
    for noise in (None, precision):
        data = rsatoolbox.data.Dataset(trials, obs_descriptors={"conds": conditions, "runs": runs})
        expected = rsatoolbox.rdm.calc_rdm(data, method="crossnobis", descriptor="conds", cv_descriptor="runs",
                                           noise=noise).get_vectors()[0]
        got = rdm(trials, "crossnobis", runs=runs, conditions=conditions, noise=noise)
        np.testing.assert_allclose(got, expected, atol=1e-10)


def test_crossnobis_is_unbiased_for_identical_conditions():
    """Noise alone: cross-validated distances average zero (Euclidean ones do not)."""
    rng = np.random.default_rng(2)
    conditions, runs = np.tile(np.arange(8), 4), np.repeat(np.arange(4), 8)
    values = [rdm(rng.normal(size=(32, 50)), "crossnobis", runs=runs, conditions=conditions).mean() for _ in range(40)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(40)


def test_batched_rdms_equal_one_at_a_time():
    stack = np.random.default_rng(3).normal(size=(4, 10, 25))
    for metric in ("correlation", "euclidean", "cosine", "squared_euclidean"):
        batched = rdm(stack, metric)
        np.testing.assert_allclose(batched, [rdm(p, metric) for p in stack], atol=1e-12)


def test_square_and_condensed_round_trip(patterns):
    condensed = rdm(patterns)
    square = square_rdm(condensed)
    assert square.shape == (12, 12) and np.allclose(square, square.T) and np.all(np.diag(square) == 0)
    np.testing.assert_array_equal(condensed_rdm(square), condensed)


def test_bad_patterns_are_refused(patterns):
    constant = patterns.copy()
    constant[3] = 1.0
    with pytest.raises(ValueError, match="constant pattern"):
        rdm(constant)
    with pytest.raises(ValueError, match="NaN"):
        rdm(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="metric"):
        rdm(patterns, "manhattan")
    with pytest.raises(ValueError, match="runs= and conditions="):
        rdm(patterns, "crossnobis")


def test_compare_matches_scipy_and_rsatoolbox():
    rng = np.random.default_rng(4)
    a = rdm(rng.normal(size=(3, 10, 20)))
    b = rdm(rng.normal(size=(2, 10, 20)))
    a[0, :5] = a[0, 5]  # ties
    toolbox_a = rsatoolbox.rdm.RDMs(a)
    toolbox_b = rsatoolbox.rdm.RDMs(b)
    for ours, theirs in [("spearman", "spearman"), ("pearson", "corr"), ("kendall_tau_a", "tau-a"), ("cosine", "cosine")]:
        np.testing.assert_allclose(compare(a, b, ours), rsatoolbox.rdm.compare(toolbox_a, toolbox_b, method=theirs),
                                   atol=1e-10, err_msg=ours)
    assert compare(a[1], b[0], "spearman") == pytest.approx(spearmanr(a[1], b[0])[0], abs=1e-12)
    assert compare(a[1], b[0], "pearson") == pytest.approx(pearsonr(a[1], b[0])[0], abs=1e-12)
    assert compare(a[1], b[0], "kendall_tau_a") == pytest.approx(kendalltau(a[1], b[0])[0], abs=1e-12)  # no ties
