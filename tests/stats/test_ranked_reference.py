"""`RankedReference` (the reference's doubled ranks carried through each other vector's sort)
against scipy, on the inputs where carrying them is not enough: ties, values closer than the keys
resolve, signed zeros, infinities, NaN and constant vectors."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from brainprobe._internal import RankedReference, correlate_rows
from brainprobe.stats import _ranked_reference


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


def test_carried_ranks_resolve_ties_in_place_unless_the_reference_has_ties(monkeypatch):
    """A reference of distinct values lets each payload name its pair: another vector's ties and
    collisions are ordered where they lie in its sort, and nothing is ranked. A reference with
    ties carries payloads that do not name pairs: a tied other vector is then ranked by `rank_rows`."""
    reference, others = _vectors(seed=1)
    categorical = np.random.default_rng(1).integers(0, 2, size=len(reference)).astype(float)  # two tie runs
    ranked = RankedReference(len(reference))
    ranked_others = []
    rank_rows = _ranked_reference.rank_rows
    monkeypatch.setattr(_ranked_reference, "rank_rows", lambda values: ranked_others.append(1) or rank_rows(values))
    ranked.set_reference(reference)
    for other in (others["continuous"], others["tied"], others["near"], categorical):
        assert ranked.against(other) == pytest.approx(spearmanr(reference, other)[0], abs=1e-12)
    assert ranked_others == []
    ranked.set_reference(others["tied"])
    assert ranked.against(others["continuous"]) == pytest.approx(spearmanr(others["tied"], others["continuous"])[0],
                                                                 abs=1e-12)
    assert ranked_others == []
    assert ranked.against(categorical) == pytest.approx(spearmanr(others["tied"], categorical)[0], abs=1e-12)
    assert ranked_others == [1]


def test_long_vectors_are_ranked_without_carrying_and_give_the_same_correlations(monkeypatch):
    reference, others = _vectors(seed=2, m=5000)
    ranked = RankedReference(len(reference))
    ranked.set_reference(reference)
    carried = {name: ranked.against(other) for name, other in others.items()}
    monkeypatch.setattr(_ranked_reference, "_PAYLOAD_VALUES", 100)
    for name, other in others.items():
        assert ranked.against(other) == pytest.approx(carried[name], abs=1e-13)


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
