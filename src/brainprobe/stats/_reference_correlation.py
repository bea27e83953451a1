"""One long vector correlated with several others, each ranked once.

A unit subsample of ``n`` images gives a fresh RDM of ``n (n - 1) / 2`` pairs per kind (50 million
at 10,000 images), and each must be ranked for Spearman. Sorting is the cost, so:

- The reference's centred ranks are kept; each other vector is ranked once and multiplied with
  them.
- On a CPU the ranks come from `rank_rows` (one numpy sort of packed 64-bit keys).
- On a GPU each vector is sorted once as int64 keys (the bits of a float64, with the bits below
  the sign flipped for negative values, order exactly as the floats do); ties are found on the
  sorted keys and get the mean of their positions (scipy's ``rankdata``), only the tied runs
  touched; the centred ranks are scattered into the storage of the sort keys (a scatter costs
  about a fifth of a gather through the sort order).

The result equals ``correlate_rows`` to rounding (the sums are taken in another order).
"""

from __future__ import annotations

import numpy as np
import torch

from ._correlation import _check_method, correlate_rows, rank_rows

__all__ = ["ReferenceCorrelation"]

_LOW_BITS = torch.iinfo(torch.int64).max  # every bit below the sign
# False: CPU tensors take the GPU's torch path too (how the tests check that path without a GPU)
_NUMPY_RANKS_ON_CPU = True


def _sort_order(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted int64 keys, order) of a finite 1-D float64 tensor, ascending.

    Equal floats get equal keys: -0.0 and +0.0 both become the key 0. Distances are rarely
    negative, and then the keys are the bits without their sign: one pass instead of four."""
    if bool((values >= 0).all()):
        return torch.sort(values.view(torch.int64) & _LOW_BITS)
    bits = (values + 0.0).view(torch.int64)  # + 0.0: -0.0 becomes +0.0
    sign = bits >> 63
    sign &= _LOW_BITS
    bits ^= sign  # negative floats: larger magnitude, smaller key
    del sign
    return torch.sort(bits)


class ReferenceCorrelation:
    """Correlations of one reference vector with other vectors of its length.

    Parameters
    ----------
    reference : tensor (m,), float64
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
        As `correlate_rows`. Spearman, Pearson and cosine are NaN where a vector is constant (or
        zero), and every method is NaN where a vector holds NaN (as ``correlate_rows`` gives).
    positions : tensor (m,), optional
        ``arange(m) - (m - 1) / 2`` in float64, on the reference's device: the centred ranks
        when there are no ties. Passing the same one to every instance saves making it again.
    """

    def __init__(self, reference: torch.Tensor, method: str = "spearman", positions: torch.Tensor | None = None):
        self.method = _check_method(method)
        self.reference = reference
        self.nan = bool(torch.isnan(reference).any())
        if self.nan or self.method == "kendall_tau_a":
            return
        if self.method == "spearman":
            m = reference.numel()
            self.positions = positions if positions is not None else centred_positions(m, reference.device)
            self.scores, self.norm = self._centred_ranks(reference)
        else:
            self.scores, self.norm = self._normalised(reference)

    def _centred_ranks(self, values: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Centred average ranks of ``values`` in their own order, and their sum of squares. On a
        CPU, `rank_rows` (numpy's packed-key sort: 2.3 s against 4.5 s for torch's sort and
        scatter at 50 million pairs); on a GPU, torch's sort."""
        if values.device.type != "cpu" or not _NUMPY_RANKS_ON_CPU:
            keys, order = _sort_order(values)
            return self._scattered(keys, order)
        centred = torch.from_numpy(rank_rows(values.numpy()[None])[0])
        centred -= (values.numel() + 1) / 2
        return centred, float(centred @ centred)

    def _scattered(self, keys: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Centred average ranks in the vector's own order, written over ``keys``, and their
        sum of squares."""
        centred = _with_ties(keys, self.positions)
        ranks = keys.view(torch.float64).scatter_(0, order, centred)
        return ranks, float(centred @ centred)

    def _normalised(self, values: torch.Tensor) -> tuple[torch.Tensor, float]:
        scores = values - values.mean() if self.method == "pearson" else values
        return scores, float(scores @ scores)

    def against(self, other: torch.Tensor) -> float:
        """Correlation of the reference with ``other`` (m,), float64."""
        if self.nan or bool(torch.isnan(other).any()):
            return float("nan")
        if self.method == "kendall_tau_a":
            return float(correlate_rows(self.reference.cpu().numpy(), other.cpu().numpy(), self.method))
        if self.method == "spearman":
            scores, norm = self._centred_ranks(other)
        else:
            scores, norm = self._normalised(other)
        cross = float(scores @ self.scores)
        if norm == 0 or self.norm == 0:  # a constant vector has no defined correlation
            return float("nan")
        return cross / np.sqrt(norm * self.norm)


def centred_positions(m: int, device=None) -> torch.Tensor:
    """``arange(m) - (m - 1) / 2``, float64: centred ranks of ``m`` distinct values in sorted order."""
    return torch.arange(m, dtype=torch.float64, device=device) - (m - 1) / 2


def _with_ties(keys: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Centred average ranks in sorted order: ``positions``, or a copy where each run of equal
    keys gets the mean of its positions."""
    tied = torch.nonzero(keys[1:] == keys[:-1]).flatten()  # sorted position p equals p + 1
    if not tied.numel():
        return positions
    tied = tied.cpu().numpy()
    starts_run = np.ones(len(tied), bool)
    starts_run[1:] = tied[1:] != tied[:-1] + 1
    first = tied[starts_run]
    last = tied[np.append(starts_run[1:], True)] + 1
    members = np.union1d(tied, tied + 1)
    run = np.searchsorted(first, members, side="right") - 1
    m = keys.numel()
    centred = positions.clone()
    centred[torch.as_tensor(members, device=keys.device)] = torch.as_tensor(
        (first + last)[run] / 2 - (m - 1) / 2, device=keys.device)
    return centred
