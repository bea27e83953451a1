import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import digamma, gammaln, polygamma

from brainprobe.stats import mutual_information
from brainprobe.stats._information import nsb_entropy


def noisy_channel(n, k, eps, rng):
    """X uniform over k labels; Y = X, or with probability eps a uniform random label."""
    x = rng.integers(0, k, n)
    return x, np.where(rng.random(n) < eps, rng.integers(0, k, n), x)


def channel_mi_bits(k, eps):
    row = np.full(k, eps / k)
    row[0] += 1 - eps
    return (np.log(k) + np.sum(row * np.log(row))) / np.log(2)


def nsb_by_quadrature(counts, k):
    """NSB from its definition: flat prior over xi = E[H | beta], beta(xi) by root finding."""
    n = counts.sum()

    def xi(beta):
        return digamma(k * beta + 1) - digamma(beta + 1)

    def beta_of(x):
        return optimize.brentq(lambda b: xi(b) - x, 1e-12, 1e12, xtol=1e-14, rtol=1e-13)

    def log_evidence(beta):
        return gammaln(k * beta) - gammaln(n + k * beta) + np.sum(gammaln(counts + beta) - gammaln(beta))

    def mean_entropy(beta):
        return digamma(n + k * beta + 1) - np.sum((counts + beta) * digamma(counts + beta + 1)) / (n + k * beta)

    grid = np.linspace(1e-6, np.log(k) - 1e-6, 400)
    shift = max(log_evidence(beta_of(x)) for x in grid)
    weight = lambda x: np.exp(log_evidence(beta_of(x)) - shift)  # noqa: E731
    top = integrate.quad(lambda x: weight(x) * mean_entropy(beta_of(x)), 0, np.log(k), limit=400, points=grid[::40])[0]
    return top / integrate.quad(weight, 0, np.log(k), limit=400, points=grid[::40])[0]


def test_nsb_entropy_matches_its_definition():
    rng = np.random.default_rng(1)
    for k, n in ((6, 15), (40, 60)):
        counts = np.bincount(rng.integers(0, k, n), minlength=k).astype(float)
        assert nsb_entropy(counts) == pytest.approx(nsb_by_quadrature(counts, k), rel=1e-4)
    assert polygamma(1, 1.0) > 0  # scipy's trigamma, which the estimator's prior uses


def test_nsb_entropy_is_nearly_unbiased_where_the_plugin_is_not():
    rng = np.random.default_rng(0)
    k, n = 50, 50  # one sample per bin on average: the plug-in is far too low
    nsb, plugin = [], []
    for _ in range(20):
        counts = np.bincount(rng.integers(0, k, n), minlength=k)
        nsb.append(nsb_entropy(counts) - np.log(k))
        p = counts[counts > 0] / n
        plugin.append(-np.sum(p * np.log(p)) - np.log(k))
    assert abs(np.mean(nsb)) < 0.15 < 0.5 < abs(np.mean(plugin))
    assert nsb_entropy(np.array([0, 0, 30])) < 0.15  # one bin: close to no entropy
    with pytest.raises(ValueError, match="n_bins"):
        nsb_entropy([1, 2, 3], n_bins=2)


def test_mutual_information_estimators_recover_a_known_channel():
    rng = np.random.default_rng(2)
    k, eps = 10, 0.3
    truth = channel_mi_bits(k, eps)
    large = noisy_channel(20000, k, eps, rng)
    for correction in ("nsb", "miller_madow", "shuffle", "none"):
        assert mutual_information(*large, correction=correction, n_shuffles=20)["mi"] == pytest.approx(truth, abs=0.02)
    # 300 samples for 100 joint bins: NSB close to the truth, the plug-in far above it
    errors = {c: [] for c in ("nsb", "none")}
    for _ in range(8):
        x, y = noisy_channel(300, k, eps, rng)
        for c in errors:
            errors[c].append(mutual_information(x, y, correction=c)["mi"] - truth)
    assert abs(np.mean(errors["nsb"])) < 0.05 and np.mean(errors["none"]) > 0.15


def test_independent_labelings_have_no_information_after_correction():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 10, 200), rng.integers(0, 10, 200)
    plugin = mutual_information(x, y, correction="none")["mi"]
    assert plugin > 0.25  # the plug-in's bias, about (k - 1)^2 / (2 n ln 2)
    assert abs(mutual_information(x, y, correction="nsb")["mi"]) < 0.05
    shuffle = mutual_information(x, y, correction="shuffle", seed=0)
    assert abs(shuffle["mi"]) < 0.05 and shuffle["chance"] == pytest.approx(plugin, abs=0.1)


def test_estimates_never_exceed_the_label_entropy():
    labels = np.repeat(np.arange(8), 5)  # 3 bits, 5 samples per class
    for correction in ("nsb", "miller_madow", "shuffle", "none"):
        result = mutual_information(labels, labels, correction=correction)
        assert result["upper_bound"] == pytest.approx(3.0)
        assert result["mi"] <= result["upper_bound"] + 1e-12
    # Miller-Madow alone would exceed the bound: every entropy gets (8 - 1) / (2 n), twice added
    assert mutual_information(labels, labels, correction="miller_madow")["mi"] == pytest.approx(3.0)
