"""Spearman correlations of a reference vector with many others, each other sorted once, on a CPU.

A searchlight correlates each disk's reference RDM with the other kinds' RDMs of that disk: three
sorts of ``n (n - 1) / 2`` pairs per disk, and sorting is the cost. Ranking each vector and
multiplying the ranks (`rank_rows`, then a dot product) also scatters every rank back to its
pair's place. Here the reference is ranked once, and its doubled average rank (an integer, ties
or not) is carried as the low bits of each other vector's sort keys, where `rank_rows` keeps the
index: once the other vector's keys are sorted, its i-th smallest value arrives with the
reference's rank of the same pair, and the rank product is a dot product of two arrays already
side by side; nothing is scattered or gathered. Where two of the other vector's keys share their
value prefix (a tie, or values closer than the kept bits resolve: 5% of a searchlight's RDMs at
1,000 images have such a pair) their pairs are needed: when the reference's values are distinct a
payload names its pair (through the reference's kept sorted keys), and each such run is ordered
by value where it lies; a reference with ties names no pair, and the vector is ranked as
`rank_rows` does.

The passes around the sort (keys with their payload; after it, the check for shared prefixes
and the rank product, an exact integer sum) are compiled loops (`_rank_kernels`, numba), and the
arrays are allocated once, for one length, and reused (at 1,000 images each is 2-4 MB, whose
fresh pages cost as much as a sort when a process touches them anew). At 499,500 pairs the
reference takes 4.2 ms and each other vector 3.3 ms (2.8 ms of it numpy's sort), against 7.1 ms
for ranking a vector in place with `rank_rows` and multiplying the ranks (one AVX-512 core).
"""

from __future__ import annotations

import numpy as np

from ._correlation import rank_rows

__all__ = ["RankedReference"]

# beyond this many values the doubled ranks take so many of the keys' bits that values share
# prefixes in nearly every vector: each would be sorted twice (`RankedReference.against` then ranks)
_PAYLOAD_VALUES = 1 << 22


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
        self._payload_bits = (2 * self.n).bit_length()
        self._keys = np.empty(self.n, np.uint64)
        # the reference's doubled ranks, in the vectors' order: 4-byte when they fit (the scatter
        # of the reference's ranks writes at random places: half the memory, 1.8 ms -> 1.2 ms at 1,000 images)
        self._doubled_ranks = np.empty(self.n, np.uint32 if 2 * self.n < 2**32 else np.uint64)
        # the reference's sorted keys, kept: their low bits name the pair at each sorted position,
        # so that when its values are distinct, a run of another vector's keys that share a
        # prefix is ordered where it lies
        self._reference_keys = np.empty(self.n, np.uint64)
        self._reference_distinct = False
        self._distinct_sum_of_squares = self.n * (self.n * self.n - 1) / 12  # of centred ranks 1..n
        self._reference_sum_of_squares = np.nan

    def set_reference(self, values: np.ndarray, extremes: tuple[float, float] | None = None) -> None:
        """Rank the reference ``values`` (n,), float64; they are left as they are. ``extremes``:
        their (smallest, largest), NaN if any is NaN, when known (saves a pass)."""
        values = self._checked(values)
        lowest, highest = extremes if extremes is not None else (values.min(), values.max())
        self._reference_distinct = False
        if np.isnan(lowest) or np.isnan(highest):
            self._reference_sum_of_squares = np.nan
            return
        keys = self._keys_of(values, lowest, highest, self._index_bits, None, self._reference_keys)
        keys.sort()
        # its doubled ranks, in the vectors' order; runs of shared prefixes ordered by value where
        # they lie, so that the kept keys name the pair at each sorted position
        tied = self._kernels.scatter_ranks(keys[None], self._index_bits, values[None], 1.0, self._doubled_ranks[None])
        self._reference_distinct = not tied
        self._reference_sum_of_squares = self._distinct_sum_of_squares
        if tied:  # ties: averaged positions (halves at most, whole when doubled)
            centred = np.subtract(self._doubled_ranks, float(self.n + 1), dtype=np.float64)
            self._reference_sum_of_squares = float(centred @ centred) / 4

    def against(self, values: np.ndarray, extremes: tuple[float, float] | None = None) -> float:
        """Spearman correlation of the reference with ``values`` (n,), float64 (left as they are);
        ``extremes`` as in `set_reference`.

        NaN where either vector holds NaN or is constant, as `correlate_rows` gives.
        """
        values = self._checked(values)
        lowest, highest = extremes if extremes is not None else (values.min(), values.max())
        if np.isnan(lowest) or np.isnan(highest) or not self._reference_sum_of_squares > 0:
            return float("nan")
        if self.n > _PAYLOAD_VALUES:
            return self._from_ranks(rank_rows(values))
        keys = self._keys_of(values, lowest, highest, self._payload_bits, self._doubled_ranks)
        keys.sort()
        cross, shared = self._kernels.payload_cross(keys, self._payload_bits)
        if not shared:
            return cross / 4 / np.sqrt(self._reference_sum_of_squares * self._distinct_sum_of_squares)
        if not self._reference_distinct:  # ties or collisions, and a tied reference's payloads name no pair
            return self._from_ranks(rank_rows(values))
        # each payload names its pair: the runs that share a prefix are ordered where they lie
        # (2.2 ms at 499,500 pairs; 5% of a searchlight's RDMs have such a run, by near-collisions)
        cross, squares = self._kernels.resolved_payload_cross(keys, self._payload_bits, values, self._reference_keys,
                                                              self._index_bits)
        if not squares > 0:  # constant
            return float("nan")
        return cross / 4 / np.sqrt(self._reference_sum_of_squares * squares / 4)

    def _keys_of(self, values: np.ndarray, lowest: float, highest: float, low_bits: int, payload: np.ndarray | None,
                 keys: np.ndarray | None = None) -> np.ndarray:
        """The values' keys (n,) uint64 with ``payload`` (n,), unsigned (None: each value's index), in their ``low_bits``,
        written into ``keys`` (default: the other vectors' keys)."""
        keys = self._keys if keys is None else keys
        self._kernels.prefix_keys(values[None].view(np.uint64), np.array([lowest]).view(np.uint64),
                                  np.array([highest]).view(np.uint64), low_bits, payload, keys[None])
        return keys

    def _from_ranks(self, ranks: np.ndarray) -> float:
        """The correlation from the other vector's average ranks (n,) in its own order."""
        ranks -= (self.n + 1) / 2
        sum_of_squares = float(ranks @ ranks)
        if not sum_of_squares > 0:  # constant
            return float("nan")
        reference = np.subtract(self._doubled_ranks, float(self.n + 1), dtype=np.float64)
        return float(ranks @ reference) / 2 / np.sqrt(self._reference_sum_of_squares * sum_of_squares)

    def _checked(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.shape != (self.n,) or values.dtype != np.float64 or not values.flags.c_contiguous:
            raise ValueError(f"values: expected a contiguous float64 vector of {self.n}, found {values.dtype} "
                             f"{values.shape}")
        return values
