import numpy as np
import pytest
from scipy import stats as scipy_stats

from brainprobe._internal import correlate_rows, sign_flips
from brainprobe.stats import (
    encoding_noise_ceiling,
    layer_sweep,
    noise_ceiling,
    prediction_accuracy,
    random_effects_test,
    split_half_ceiling,
)


def _subjects(rng, n_subjects=10, n_items=190, noise=2.0):
    truth = rng.normal(size=n_items)
    return truth, truth + noise * rng.normal(size=(n_subjects, n_items))


@pytest.mark.parametrize(("method", "theirs"), [("pearson", "corr"), ("spearman", "spearman"), ("cosine", "cosine")])
def test_leave_one_subject_out_ceiling_equals_rsatoolbox(method, theirs):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    _, data = _subjects(np.random.default_rng(0), n_subjects=8)
    data = np.abs(data)  # dissimilarities
    ours = noise_ceiling(data, method=method)
    lower, upper = boot_noise_ceiling(rsatoolbox.rdm.RDMs(data), method=theirs)
    assert ours["lower"] == pytest.approx(lower, abs=1e-12)
    assert ours["upper"] == pytest.approx(upper, abs=1e-12)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_ceiling_brackets_the_true_models_score(method):
    """Planted RDM + subject noise: the true RDM's mean score lies between the bounds in every run."""
    rng = np.random.default_rng(1)
    inside = 0
    for _ in range(40):
        truth, data = _subjects(rng, noise=rng.uniform(0.5, 3.0))
        ceiling = noise_ceiling(data, method=method)
        score = correlate_rows(truth, data, method).mean()
        inside += ceiling["lower"] <= score <= ceiling["upper"]
    assert inside >= 38


def test_ceiling_refuses_constant_subjects():
    data = np.ones((3, 10))
    data[1] = np.arange(10)
    with pytest.raises(ValueError, match=r"subjects \(rows\) \[0, 2\] are constant"):
        noise_ceiling(data)


def test_split_half_ceiling_is_the_truths_correlation_with_the_full_data():
    """Two halves of known noise: sqrt(Spearman-Brown reliability) matches the truth's r with their mean."""
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(200, 300))
    halves = truth + 1.5 * rng.normal(size=(2, 200, 300))
    found = split_half_ceiling(halves[0], halves[1], method="pearson")
    truth_r = correlate_rows(truth, halves.mean(0), "pearson")
    assert found["ceiling"].shape == (200,)
    assert np.mean(found["ceiling"]) == pytest.approx(np.mean(truth_r), abs=0.01)
    expected = 1 / (1 + 1.5**2 / 2)  # signal variance / (signal + noise of the mean of two)
    assert np.mean(found["reliability"]) == pytest.approx(expected, abs=0.02)


def test_encoding_ceiling_matches_the_planted_models_accuracy():
    rng = np.random.default_rng(3)
    gaps = []
    for _ in range(10):
        signal = rng.normal(size=(60, 80)) + rng.normal(size=80)  # vertex baselines carry no credit
        repeats = signal + 1.2 * rng.normal(size=(4, 60, 80))
        ceiling = encoding_noise_ceiling(repeats, per="centered")
        assert ceiling["n_splits"] == 3
        gaps.append(ceiling["ceiling"] - prediction_accuracy(signal, repeats.mean(0), per="centered"))
    assert abs(np.mean(gaps)) < 0.01


@pytest.mark.parametrize("n_repeats", [3, 5])
def test_encoding_ceiling_with_an_odd_number_of_repeats_is_not_inflated(n_repeats):
    # halves of unequal length: Spearman-Brown must lengthen their geometric mean, not the shorter half
    rng = np.random.default_rng(n_repeats)
    gaps = []
    for _ in range(10):
        signal = rng.normal(size=(60, 80))
        repeats = signal + 1.5 * rng.normal(size=(n_repeats, 60, 80))
        ceiling = encoding_noise_ceiling(repeats, per="centered")
        gaps.append(ceiling["ceiling"] - prediction_accuracy(signal, repeats.mean(0), per="centered"))
    assert abs(np.mean(gaps)) < 0.01


def test_many_repeats_draw_their_splits_at_random_not_the_first_in_order():
    repeats = np.random.default_rng(0).normal(size=(10, 8, 6))
    from brainprobe.stats._ceiling import _half_splits

    splits = _half_splits(10, 20, seed=0)
    assert len(splits) == 20 and not all({0, 1, 2} <= set(first.tolist()) for first in splits)
    assert encoding_noise_ceiling(repeats)["n_splits"] == 20


def test_sign_flip_test_is_exact_and_t_test_is_scipys():
    scores = np.array([0.12, 0.08, 0.15, 0.02, 0.10, 0.09])
    flipped = random_effects_test(scores, method="sign_flip")
    assert flipped["exact"].iloc[0] and flipped["p"].iloc[0] == pytest.approx(1 / 64)
    t = random_effects_test(scores, method="t", alternative="two-sided")
    expected = scipy_stats.ttest_1samp(scores, 0.0)
    assert t["t"].iloc[0] == pytest.approx(expected.statistic) and t["p"].iloc[0] == pytest.approx(expected.pvalue)
    flips, exact = sign_flips(4, 100)
    assert exact and len(np.unique(flips, axis=0)) == 16


def _rejection_rates(rng, n_sets, n_subjects=10, alpha=0.05, n_perm=None):
    null = rng.standard_t(df=3, size=(n_subjects, n_sets))  # symmetric, heavy-tailed, mean 0
    rates = {}
    for method in ("t", "sign_flip"):
        p = random_effects_test(null, method=method, n_perm=n_perm or 2**n_subjects, seed=rng)["p"].to_numpy()
        rates[method] = float(np.mean(p <= alpha))
    return rates


def test_random_effects_p_values_hold_their_nominal_rate():
    rates = _rejection_rates(np.random.default_rng(4), 4000)
    assert rates["sign_flip"] == pytest.approx(0.05, abs=0.012)
    assert 0.025 <= rates["t"] <= 0.062  # t is conservative under heavy tails, never liberal


@pytest.mark.slow
def test_random_effects_nominal_rate_over_many_nulls():
    rng = np.random.default_rng(5)
    for n_subjects in (6, 8, 12, 16):
        rates = _rejection_rates(rng, 20000, n_subjects=n_subjects, n_perm=min(2**n_subjects, 2000))
        assert rates["sign_flip"] <= 0.05 + 0.004
        assert rates["sign_flip"] >= 0.05 - 0.01 - (0.02 if n_subjects == 6 else 0)  # 2^6 flips: coarse p grid
        assert rates["t"] <= 0.05 + 0.004


def test_layer_sweep_finds_the_planted_best_layer():
    rng = np.random.default_rng(6)
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    profile = np.array([0.05, 0.10, 0.30, 0.12, 0.04])
    scores = profile + 0.05 * rng.normal(size=(12, 5))
    sweep = layer_sweep(scores, layers, n_boot=500, seed=0)
    assert sweep.best_layer == "conv3" and sweep.best_layer_ci == ("conv3", "conv3")
    assert sweep.table.loc[2, "best_frequency"] > 0.95
    assert (sweep.table["ci_low"] <= sweep.table["mean"]).all() and (sweep.table["mean"] <= sweep.table["ci_high"]).all()
    assert sweep.table.loc[2, "p"] < 1e-6
    flat = layer_sweep(0.2 * rng.normal(size=(6, 5)), layers, n_boot=500, seed=0)
    low, high = (layers.index(name) for name in flat.best_layer_ci)
    assert high - low >= 2  # no true best layer: a wide interval
