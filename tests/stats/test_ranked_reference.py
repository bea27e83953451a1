"""`RankedReference` (the reference's sorted positions carried through each other vector's sort)
against scipy, on the inputs where carrying them is not enough: ties, values closer than the keys
resolve, signed zeros, infinities, NaN and constant vectors."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from brainprobe._internal import RankedReference, correlate_rows


def _vectors(seed=0, m=20_000):
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=m)
    near = 1.0 + rng.integers(0, 2**18, size=m) * np.finfo(float).eps  # ties and near-collisions
    near[:2] = [1e-300, 1e300]  # a range that leaves the keys only a prefix of each value
    signed = rng.normal(size=m) * 1e-300
    signed[:50], signed[50:100] = 0.0, -0.0
    infinite = rng.normal(size=m)
    infinite[:3], infinite[3:6] = np.inf, -np.inf
    distances = np.abs(reference + rng.normal(size=m))  # none negative, as RDMs
    collided = 1.0 + rng.permutation(m) * np.finfo(float).eps  # distinct, but closer than the keys resolve
    collided[:2] = [1e-300, 1e300]
    return reference, {"collided": collided, "continuous": rng.normal(size=m) - 0.3 * reference, "tied": np.round(rng.normal(size=m), 1),
                       "near": near, "signed": signed, "infinite": infinite, "distances": distances}


@pytest.mark.parametrize("reference_kind", ["continuous", "tied", "near", "distances", "collided"])
def test_spearman_equals_scipy_with_ties_collisions_signs_and_infinities(reference_kind):
    reference, others = _vectors()
    if reference_kind != "continuous":
        reference = others[reference_kind]
    ranked = RankedReference(len(reference))
    ranked.set_reference(reference)
    for name, other in others.items():
        expected = spearmanr(reference, other)[0]
        assert ranked.against(other) == pytest.approx(expected, abs=1e-12), name
        assert ranked.against(other, (other.min(), other.max())) == ranked.against(other)
        assert ranked.against(other) == pytest.approx(correlate_rows(reference, other), abs=1e-12)


def test_ties_and_collisions_on_either_side_are_resolved_where_they_lie():
    """A reference with ties (a few exact ones, or two long runs of a categorical model RDM) and
    other vectors with ties or collisions: every pair is still scipy's Spearman, the reference's
    ties looked up by position and the other's runs ordered in its sort."""
    reference, others = _vectors(seed=1)
    rng = np.random.default_rng(1)
    categorical = rng.integers(0, 2, size=len(reference)).astype(float)  # two tie runs
    few_ties = reference.copy()
    few_ties[rng.choice(len(reference), 40, replace=False)] = few_ties[:40]  # 40 exact ties among distinct values
    ranked = RankedReference(len(reference))
    for first in (reference, few_ties, categorical, others["tied"], others["collided"]):
        ranked.set_reference(first)  # the same object reused: nothing of the last reference remains
        for other in (others["continuous"], others["tied"], others["near"], others["collided"], categorical, few_ties):
            assert ranked.against(other) == pytest.approx(spearmanr(first, other)[0], abs=1e-12)


@pytest.mark.parametrize("n", [1023, 1024, 1025, 4096])
def test_lengths_at_a_power_of_two_carry_every_position(n):
    """Positions 1..n ride in the keys' low bits: n = 2^k needs one bit more than its indices."""
    rng = np.random.default_rng(n)
    reference = rng.normal(size=n)
    ranked = RankedReference(n)
    ranked.set_reference(reference)
    for other in (reference + rng.normal(size=n), np.round(rng.normal(size=n), 1), -reference):
        assert ranked.against(other) == pytest.approx(spearmanr(reference, other)[0], abs=1e-12)


def test_nan_or_constant_vectors_give_nan_and_nothing_is_changed():
    rng = np.random.default_rng(3)
    reference, other = rng.normal(size=500), rng.normal(size=500)
    kept = reference.copy(), other.copy()
    ranked = RankedReference(500)
    ranked.set_reference(reference)
    for bad in (np.full(500, 2.5), np.where(np.arange(500) == 7, np.nan, other)):
        assert np.isnan(ranked.against(bad))
        assert np.isnan(correlate_rows(reference, bad))
    assert np.isfinite(ranked.against(other))
    for bad in (np.full(500, 2.5), np.where(np.arange(500) == 7, np.nan, reference)):
        ranked.set_reference(bad)
        assert np.isnan(ranked.against(other))
    np.testing.assert_array_equal(reference, kept[0])
    np.testing.assert_array_equal(other, kept[1])


def test_short_vectors_and_wrong_inputs():
    ranked = RankedReference(3)
    ranked.set_reference(np.array([0.2, 0.1, 0.3]))
    assert ranked.against(np.array([3.0, 1.0, 2.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="float64 vector of 3"):
        ranked.against(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="float64 vector of 3, found float64 \\(4,\\)"):
        ranked.against(np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        RankedReference(0)
    single = RankedReference(1)
    single.set_reference(np.array([1.0]))
    assert np.isnan(single.against(np.array([2.0])))


@pytest.mark.slow
def test_long_tie_runs_at_ten_thousand_images_sum_exactly():
    """At 50 million pairs a product of doubled centred ranks reaches 2.5e15: the integer sums
    are flushed in blocks small enough for int64, also along a tie run of 25 million pairs (a
    binary model RDM on either side)."""
    rng = np.random.default_rng(10)
    n = 49_995_000  # 10,000 images
    reference = rng.random(n)
    binary = (reference + rng.random(n) > 1).astype(float)
    ranked = RankedReference(n)

    def spearman(a, b):  # exactly summed: doubled centred ranks are integers, their products below 2^53
        from math import fsum, sqrt

        from brainprobe._internal import rank_rows

        ra, rb = 2 * rank_rows(a) - (n + 1), 2 * rank_rows(b) - (n + 1)
        return fsum(ra * rb) / sqrt(fsum(ra * ra) * fsum(rb * rb))

    expected = spearman(reference, binary)  # a float64 dot product of the ranks is off by 2e-12 here
    ranked.set_reference(reference)
    assert ranked.against(binary) == pytest.approx(expected, abs=1e-14)
    ranked.set_reference(binary)
    assert ranked.against(reference) == pytest.approx(expected, abs=1e-14)
