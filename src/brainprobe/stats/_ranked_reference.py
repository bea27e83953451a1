"""Spearman correlations of a reference vector with many others, each other sorted once, on a CPU.

A searchlight correlates each disk's reference RDM with the other kinds' RDMs of that disk (three
sorts of ``n (n - 1) / 2`` pairs per disk), and a unit subsample at 10,000 images three RDMs of
50 million pairs: sorting is the cost. Ranking each vector and multiplying the ranks (`rank_rows`,
then a dot product) also scatters every rank back to its pair's place, a random write per pair.
Here the reference is ranked once, and each pair's sorted position in the reference is carried
in the low bits of each other vector's sort keys, where `rank_rows` keeps the index: once the
other vector's keys are sorted, its i-th smallest value arrives with the reference's position of
the same pair, and the rank product is a sum over two sequences already side by side; nothing is
scattered or gathered. The reference's ties (a few exact ones in a 50-million-pair RDM; most pairs
of a categorical model RDM) are looked up by position: a bit per position says whether it is tied.
Where two of the other vector's keys share their value prefix (a tie, or values closer than the
kept bits resolve) each key's position names its pair through the reference's kept sorted keys,
and each such run is ordered by value where it lies.

The passes around the sort (keys with their payload; after it, the runs and the rank product, an
exact integer sum) are compiled loops (`_rank_kernels`, numba), and the arrays are allocated once,
for one length, and reused (at 1,000 images each is 2-4 MB, whose fresh pages cost as much as a
sort when a process touches them anew). At 499,500 pairs the reference takes 4.4 ms and each
other vector 3.7 ms (2.9 ms of it numpy's sort), against 6.3 ms for ranking a vector with
`rank_rows` and then multiplying the ranks; at 50 million pairs 1.5 s and 1.05 s, against 1.5 s
for each `rank_rows` (one AVX-512 core, memory reused).
"""

from __future__ import annotations

import numpy as np

__all__ = ["RankedReference"]


class RankedReference:
    """Spearman correlations of one float64 vector of length ``n`` with others of that length.

    Parameters
    ----------
    n : int
        The vectors' length (an RDM's pairs).

    Examples
    --------
    >>> ranked = RankedReference(4)
    >>> ranked.set_reference(np.array([0.1, 0.4, 0.2, 0.3]))
    >>> round(ranked.against(np.array([1.0, 4.0, 3.0, 2.0])), 6)
    0.8
    """

    def __init__(self, n: int):
        from . import _rank_kernels  # numba: compiled on first use (cached), not at import

        if n < 1:
            raise ValueError(f"n: expected at least one value, found {n}")
        self._kernels = _rank_kernels
        self.n = int(n)
        self._index_bits = max(1, (self.n - 1).bit_length())
        self._position_bits = self.n.bit_length()  # 1-based positions, 1..n
        self._keys = np.empty(self.n, np.uint64)
        # each pair's 1-based sorted position in the reference, in the vectors' order: 4-byte when
        # it fits (the scatter writes at random places: half the memory, 1.8 -> 1.2 ms at 1,000 images)
        self._positions = np.empty(self.n, np.uint32 if self.n < 2**32 else np.uint64)
        # the reference's sorted keys, kept: their low bits name the pair at each sorted position
        self._reference_keys = np.empty(self.n, np.uint64)
        self._reference_ties, self._reference_tie_count = np.empty(64, np.int64), 0
        self._tied_marks = np.zeros((self.n + 7) // 8, np.uint8)  # a bit per sorted position
        self._other_ties = np.empty(64, np.int64)  # scratch for the other vectors' runs of ties
        self._reference_squares = np.nan  # sum of the reference's doubled centred ranks, squared

    def set_reference(self, values: np.ndarray, extremes: tuple[float, float] | None = None) -> None:
        """Rank the reference ``values`` (n,), float64; they are left as they are. ``extremes``:
        their (smallest, largest), NaN if any is NaN, when known (saves a pass)."""
        values = self._checked(values)
        lowest, highest = extremes if extremes is not None else (values.min(), values.max())
        self._reference_squares = np.nan
        if np.isnan(lowest) or np.isnan(highest):
            return
        keys = self._keys_of(values, lowest, highest, self._index_bits, None, self._reference_keys)
        keys.sort()
        # 2 x (the 1-based position) x 0.5: each pair's position (runs of shared prefixes ordered
        # by value where they lie, so that the kept keys name the pair at each sorted position)
        ties, count = self._kernels.scatter_ranks(keys[None], self._index_bits, values[None], 0.5,
                                                  self._positions[None], average=False)
        self._reference_ties, self._reference_tie_count = ties, count
        if count:
            self._kernels.mark_ties(ties, count, self._tied_marks)
        self._reference_squares = self._kernels.doubled_squares(ties, count, self.n)

    def against(self, values: np.ndarray, extremes: tuple[float, float] | None = None) -> float:
        """Spearman correlation of the reference with ``values`` (n,), float64 (left as they are);
        ``extremes`` as in `set_reference`.

        NaN where either vector holds NaN or is constant, as `correlate_rows` gives.
        """
        values = self._checked(values)
        lowest, highest = extremes if extremes is not None else (values.min(), values.max())
        if np.isnan(lowest) or np.isnan(highest) or not self._reference_squares > 0:
            return float("nan")
        keys = self._keys_of(values, lowest, highest, self._position_bits, self._positions)
        keys.sort()
        cross, squares, self._other_ties = self._kernels.payload_cross(
            keys, self._position_bits, values, self._reference_keys, self._index_bits, self._reference_ties,
            self._reference_tie_count, self._tied_marks, self._other_ties)
        if not squares > 0:  # constant
            return float("nan")
        return cross / np.sqrt(self._reference_squares * squares)

    def _keys_of(self, values: np.ndarray, lowest: float, highest: float, low_bits: int, payload: np.ndarray | None,
                 keys: np.ndarray | None = None) -> np.ndarray:
        """The values' keys (n,) uint64 with ``payload`` (n,), unsigned (None: each value's index),
        in their ``low_bits``, written into ``keys`` (default: the other vectors' keys)."""
        keys = self._keys if keys is None else keys
        self._kernels.prefix_keys(values[None].view(np.uint64), np.array([lowest]).view(np.uint64),
                                  np.array([highest]).view(np.uint64), low_bits, payload, keys[None])
        return keys

    def _checked(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.shape != (self.n,) or values.dtype != np.float64 or not values.flags.c_contiguous:
            raise ValueError(f"values: expected a contiguous float64 vector of {self.n}, found {values.dtype} "
                             f"{values.shape}")
        return values
