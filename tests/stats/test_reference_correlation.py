"""`ReferenceCorrelation` (one reference ranked once, each other ranked once) against scipy."""

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau, pearsonr, spearmanr

from brainprobe._internal import ReferenceCorrelation, correlate_rows


def _vectors(seed=0, m=3000):
    """A reference and others with ties, negatives, signed zeros and infinities: what the int64
    keys must order as the floats do."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=m)
    tied = np.round(rng.normal(size=m), 1)  # many runs of ties, some long
    signed = rng.normal(size=m) * 1e-300
    signed[:50], signed[50:100] = 0.0, -0.0
    extremes = rng.normal(size=m)
    extremes[:3], extremes[3:6] = np.inf, -np.inf
    zeros = np.round(np.abs(rng.normal(size=m)), 2)  # none negative: keys are the bits without sign
    zeros[:40], zeros[40:80] = 0.0, -0.0
    return reference, [tied, signed, extremes, -reference + 0.1 * rng.normal(size=m), zeros]


@pytest.mark.parametrize("torch_path", [False, True])
@pytest.mark.parametrize("tied_reference", [False, True])
def test_spearman_equals_scipy_on_ties_signs_and_infinities(tied_reference, torch_path, monkeypatch):
    """Both ranking paths: numpy's packed keys (a CPU's) and rank_rows_torch (a GPU's, run here
    on the CPU)."""
    from brainprobe.stats import _reference_correlation

    monkeypatch.setattr(_reference_correlation, "_NUMPY_RANKS_ON_CPU", not torch_path)
    reference, others = _vectors()
    if tied_reference:
        reference = np.round(reference, 1)
    target = ReferenceCorrelation(torch.from_numpy(reference), "spearman")
    for other in others:
        found = target.against(torch.from_numpy(other))
        assert found == pytest.approx(spearmanr(reference, other).statistic, abs=1e-12)
        assert found == pytest.approx(float(correlate_rows(reference, other, "spearman")), abs=1e-12)


@pytest.mark.parametrize("torch_path", [False, True])
def test_a_reused_reference_correlation_equals_fresh_ones(torch_path, monkeypatch):
    """`set_reference` reuses the memory for vectors of one length: each new reference gives what
    a fresh object gives, on both ranking paths (the CPU's carried positions, the GPU's torch)."""
    from brainprobe.stats import _reference_correlation

    monkeypatch.setattr(_reference_correlation, "_NUMPY_RANKS_ON_CPU", not torch_path)
    first, _ = _vectors(5)
    second, others = _vectors(6)
    reused = ReferenceCorrelation(torch.from_numpy(second), "spearman")
    for reference in (first, np.round(second, 1), first[:100]):
        reused.set_reference(torch.from_numpy(reference))
        fresh = ReferenceCorrelation(torch.from_numpy(reference), "spearman")
        for other in others:
            other = other[-len(reference):]  # the last 100: none constant
            found = reused.against(torch.from_numpy(other))
            assert found == fresh.against(torch.from_numpy(other))
            assert found == pytest.approx(spearmanr(reference, other).statistic, abs=1e-12)


def test_pearson_cosine_and_kendall_equal_their_references():
    reference, others = _vectors(1)
    finite = [others[0], others[3]]  # squares of 1e-300 underflow: no method here rescales
    for other in finite:
        assert ReferenceCorrelation(torch.from_numpy(reference), "pearson").against(torch.from_numpy(other)) == \
            pytest.approx(pearsonr(reference, other).statistic, abs=1e-12)
        cosine = reference @ other / np.linalg.norm(reference) / np.linalg.norm(other)
        assert ReferenceCorrelation(torch.from_numpy(reference), "cosine").against(torch.from_numpy(other)) == \
            pytest.approx(cosine, abs=1e-12)
    short, other = reference[:200], finite[1][:200]  # no ties
    tau_a = ReferenceCorrelation(torch.from_numpy(short), "kendall_tau_a").against(torch.from_numpy(other))
    assert tau_a == pytest.approx(float(correlate_rows(short, other, "kendall_tau_a")), abs=1e-12)
    assert tau_a == pytest.approx(kendalltau(short, other).statistic, abs=1e-12)  # no ties: tau-a = tau-b


def test_constant_or_nan_vectors_give_nan_as_correlate_rows():
    reference, others = _vectors(2, m=50)
    constant, with_nan = np.full(50, 0.3), others[0].copy()
    with_nan[7] = np.nan
    target = ReferenceCorrelation(torch.from_numpy(reference), "spearman")
    assert np.isnan(target.against(torch.from_numpy(constant)))  # all tied: no rank varies
    assert np.isnan(float(correlate_rows(reference, constant, "spearman")))
    assert np.isnan(ReferenceCorrelation(torch.from_numpy(constant), "spearman").against(torch.from_numpy(reference)))
    for method in ("spearman", "pearson", "cosine"):
        assert np.isnan(ReferenceCorrelation(torch.from_numpy(reference), method).against(torch.from_numpy(with_nan)))
        assert np.isnan(ReferenceCorrelation(torch.from_numpy(with_nan), method).against(torch.from_numpy(reference)))
        assert np.isnan(float(correlate_rows(reference, with_nan, method)))


def test_the_reference_and_the_others_are_left_unchanged():
    reference, others = _vectors(3, m=100)
    kept = [reference.copy(), *[o.copy() for o in others]]
    target = ReferenceCorrelation(torch.from_numpy(reference), "spearman")
    for other in others:
        target.against(torch.from_numpy(other))
    for before, after in zip(kept, [reference, *others], strict=True):
        np.testing.assert_array_equal(before, after)
