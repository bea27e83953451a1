"""One long vector correlated with several others, each ranked once.

A unit subsample of ``n`` images gives a fresh RDM of ``n (n - 1) / 2`` pairs per kind (50 million
at 10,000 images), and each must be ranked for Spearman. Sorting is the cost, so each vector is
sorted once: on a CPU the reference's sorted positions ride along each other vector's sort
(`RankedReference`: no rank is scattered back); on a GPU each is ranked by `rank_rows_torch`.

The result equals ``correlate_rows`` to rounding (the sums are taken in another order).
"""

from __future__ import annotations

import numpy as np
import torch

from ._correlation import _check_method, correlate_rows, rank_rows_torch
from ._ranked_reference import RankedReference

__all__ = ["ReferenceCorrelation"]

# False: CPU tensors take the GPU's torch path too (how the tests check that path without a GPU)
_NUMPY_RANKS_ON_CPU = True


class ReferenceCorrelation:
    """Correlations of one reference vector with other vectors of its length.

    Parameters
    ----------
    reference : tensor (m,), float64
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
        As `correlate_rows`. Spearman, Pearson and cosine are NaN where a vector is constant (or
        zero), and every method is NaN where a vector holds NaN (as ``correlate_rows`` gives).
    """

    def __init__(self, reference: torch.Tensor, method: str = "spearman"):
        self.method = _check_method(method)
        self._ranked = None
        self.set_reference(reference)

    def set_reference(self, reference: torch.Tensor) -> None:
        """Correlate with a new ``reference`` (m,) from now on; on a CPU, the memory for vectors
        of its length is reused (1 GB at 50 million pairs, whose fresh pages cost seconds)."""
        self.reference = reference
        self.nan = bool(torch.isnan(reference).any())
        if self.nan or self.method == "kendall_tau_a":
            return
        if self.method == "spearman" and self._carries_ranks(reference):
            # each other vector sorted once with the reference's positions carried along: no ranks
            # scattered back, a third less time at 1,000 images (`RankedReference`)
            if self._ranked is None or self._ranked.n != reference.numel():
                self._ranked = RankedReference(reference.numel())
            self._ranked.set_reference(np.ascontiguousarray(reference.numpy()))
            return
        self._ranked = None
        if self.method == "spearman":
            self.scores, self.norm = self._centred_ranks(reference)
        else:
            self.scores, self.norm = self._normalised(reference)

    @staticmethod
    def _carries_ranks(values: torch.Tensor) -> bool:
        """Whether `RankedReference` correlates with ``values``: on a CPU."""
        return values.device.type == "cpu" and _NUMPY_RANKS_ON_CPU

    def _centred_ranks(self, values: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Centred average ranks of ``values`` in their own order (`rank_rows_torch`, on their
        device), and their sum of squares."""
        centred = rank_rows_torch(values[None], dtype=torch.float64)[0]  # float32 ranks lose digits past 2^24
        centred -= (values.numel() + 1) / 2
        return centred, float(centred @ centred)

    def _normalised(self, values: torch.Tensor) -> tuple[torch.Tensor, float]:
        scores = values - values.mean() if self.method == "pearson" else values
        return scores, float(scores @ scores)

    def against(self, other: torch.Tensor) -> float:
        """Correlation of the reference with ``other`` (m,), float64; left as it is."""
        if self.nan or bool(torch.isnan(other).any()):
            return float("nan")
        if self.method == "kendall_tau_a":
            return float(correlate_rows(self.reference.cpu().numpy(), other.cpu().numpy(), self.method))
        if self._ranked is not None:
            return self._ranked.against(np.ascontiguousarray(other.numpy()))
        if self.method == "spearman":
            scores, norm = self._centred_ranks(other)
        else:
            scores, norm = self._normalised(other)
        cross = float(scores @ self.scores)
        if norm == 0 or self.norm == 0:  # a constant vector has no defined correlation
            return float("nan")
        return cross / np.sqrt(norm * self.norm)

