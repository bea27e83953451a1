"""Compiled passes around the sorts of `rank_rows` and `RankedReference` (numba): each replaces
several numpy passes over an RDM.

At 1,000 images an RDM is 499,500 pairs (4 MB a float64 array) and a searchlight ranks three
per disk, 65,000 disks: every pass over such an array costs 0.1-0.3 ms, and the numpy route
(keys: copy, subtract, two shifts, or; after the sort: xor, compare, and, convert, dot) takes
twice the time of these fused loops. The sort itself stays numpy's (vectorized) one.

A key (`prefix_keys`) holds a float's order bits (sign bit set for non-negative values, every
bit inverted for negative ones) less its row's smallest value's, shifted right by as many bits as
the row's range needs dropped and left by ``low_bits``, with an index or a payload in the low
bits: keys sort as their values, but values closer than the kept bits resolve share a prefix (as
do ties).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["prefix_keys", "scatter_ranks", "order_runs", "mark_ties", "doubled_squares", "payload_cross"]

_SIGN = np.uint64(1 << 63)


@numba.njit(nogil=True, cache=True, inline="always")
def _order_bits(bits):
    if bits == _SIGN:  # -0.0: the order bits of 0.0
        bits = np.uint64(0)
    return ~bits if bits & _SIGN else bits | _SIGN


@numba.njit(nogil=True, cache=True, inline="always")
def _dropped_bits(lowest_bits, highest_bits, low_bits):
    """How many low order bits a row's keys drop to keep ``low_bits`` free below: only the bits
    of the row's range are kept (the fewer dropped, the fewer values share a prefix)."""
    spread = _order_bits(highest_bits) - _order_bits(lowest_bits)
    width = 0
    while spread:
        spread >>= np.uint64(1)
        width += 1
    return max(0, width + low_bits - 64)


@numba.njit(nogil=True, cache=True)
def prefix_keys(value_bits, lowest_bits, highest_bits, low_bits, payload, keys):
    """keys[r, p] = ((order bits of value (r, p) - those of the row's smallest) >> dropped) <<
    low_bits | payload[p] (the index p where ``payload`` is None), from the float64 values' bits
    (``values.view(np.uint64)``, (rows, n)) and each row's extremes' bits (rows,)."""
    low = np.uint64(low_bits)
    for r in range(value_bits.shape[0]):
        base = _order_bits(lowest_bits[r])
        dropped = np.uint64(_dropped_bits(lowest_bits[r], highest_bits[r], low_bits))
        for p in range(value_bits.shape[1]):
            below = np.uint64(p) if payload is None else np.uint64(payload[p])
            keys[r, p] = (((_order_bits(value_bits[r, p]) - base) >> dropped) << low) | below


@numba.njit(nogil=True, cache=True)
def _any_shared(keys, below):
    """Whether two sorted neighbours differ only below ``below`` (share their prefix)."""
    shared = False
    for i in range(1, keys.shape[0]):  # no early exit: the loop vectorizes
        shared |= (keys[i] ^ keys[i - 1]) < below
    return shared


@numba.njit(nogil=True, cache=True)
def scatter_ranks(keys, index_bits, values, scale, ranks, average=True):
    """ranks[r, index] = ``scale`` x twice the average 1-based rank of each value of the rows of
    ``values`` (rows, n), from their sorted keys (rows, n) (the index in the low ``index_bits``):
    ``scale`` 0.5 gives the ranks, 1 the doubled ranks (integers). Runs of keys that share a prefix
    (ties, or values closer than the keys resolve) are ordered by value in place, equal values
    given the mean of their positions (each its own position without ``average``).

    ``ranks`` may be ``values``' own memory: a row's values are all read before its ranks are
    written. Returns the last row's runs of ties ``(ties, count)``: sorted positions first, last of
    each in ``ties[:2 * count]``.
    """
    mask = (np.uint64(1) << np.uint64(index_bits)) - np.uint64(1)
    ties, count = np.empty(64, np.int64), 0
    for r in range(keys.shape[0]):
        row_keys = keys[r]
        ties, count = order_runs(row_keys, index_bits, values[r], ties, None, index_bits)
        for position in range(row_keys.shape[0]):  # the ranks, then the tied positions' averages
            ranks[r, row_keys[position] & mask] = (2 * position + 2) * scale
        for tie in range(count if average else 0):
            first, last = ties[2 * tie], ties[2 * tie + 1]
            averaged = (first + last + 2) * scale
            for position in range(first, last + 1):
                ranks[r, row_keys[position] & mask] = averaged
    return ties, count


@numba.njit(nogil=True, cache=True)
def order_runs(row_keys, low_bits, values, ties, reference_keys, index_bits):
    """Order each run of sorted ``row_keys`` that share their prefix (the bits above ``low_bits``)
    by the values of their pairs, in place, and note the runs of equal values: returns
    ``(ties, count)``, the sorted positions first, last of each in ``ties[:2 * count]`` (grown
    when full). A key's pair is its low bits, or where ``reference_keys`` is given, the pair at
    that 1-based sorted position of the reference (in the low ``index_bits`` of its key)."""
    below = np.uint64(1) << np.uint64(low_bits)
    n = row_keys.shape[0]
    count = 0
    i = _next_shared(row_keys, 0, below)
    while i < n - 1:  # a loop per run: the scan between runs is `_next_shared`'s
        last = i + 1
        while last + 1 < n and (row_keys[last + 1] ^ row_keys[last]) < below:
            last += 1
        ties, count = _order_run(row_keys, i, last, below - np.uint64(1), values, ties, count, reference_keys,
                                 index_bits)
        i = _next_shared(row_keys, last + 1, below)
    return ties, count


@numba.njit(nogil=True, cache=True)
def _next_shared(row_keys, start, below):
    """The first sorted position from ``start`` whose key shares its prefix with the next one's
    (``len - 1`` where none does). Apart from the loop that orders runs: a call in the loop
    made numba's scan 30 times slower."""
    i = start
    while i + 1 < row_keys.shape[0] and (row_keys[i + 1] ^ row_keys[i]) >= below:
        i += 1
    return min(i, row_keys.shape[0] - 1)


@numba.njit(nogil=True, cache=True, inline="always")
def _value_of(key, mask, values, reference_keys, index_bits):
    """The value of a key's pair: its low bits, or the reference's pair at that 1-based position."""
    if reference_keys is None:
        return values[key & mask]
    index_mask = (np.uint64(1) << np.uint64(index_bits)) - np.uint64(1)
    return values[reference_keys[(key & mask) - np.uint64(1)] & index_mask]


@numba.njit(nogil=True, cache=True)
def _order_run(row_keys, first, last, mask, values, ties, count, reference_keys, index_bits):
    """Order the keys ``first..last`` (one shared prefix) by their pairs' values, and append each
    run of equal values among them to ``ties``. Returns (ties, count of runs)."""
    if last - first < _SHORT_RUN:  # most runs are a pair: sorted where they lie
        for j in range(first + 1, last + 1):
            key = row_keys[j]
            value = _value_of(key, mask, values, reference_keys, index_bits)
            k = j
            while k > first and _value_of(row_keys[k - 1], mask, values, reference_keys, index_bits) > value:
                row_keys[k] = row_keys[k - 1]
                k -= 1
            row_keys[k] = key
    else:
        _order_long_run(row_keys, first, last, mask, values, reference_keys, index_bits)
    start = first
    while start <= last:
        value = _value_of(row_keys[start], mask, values, reference_keys, index_bits)
        end = start
        while end < last and _value_of(row_keys[end + 1], mask, values, reference_keys, index_bits) == value:
            end += 1
        if end > start:
            if 2 * count + 2 > ties.shape[0]:
                grown = np.empty(2 * ties.shape[0], np.int64)
                grown[:ties.shape[0]] = ties
                ties = grown
            ties[2 * count], ties[2 * count + 1] = start, end
            count += 1
        start = end + 1
    return ties, count


_SHORT_RUN = 16


@numba.njit(nogil=True, cache=True)
def _order_long_run(row_keys, first, last, mask, values, reference_keys, index_bits):
    """Order the keys ``first..last`` by their pairs' values; left alone when already in order (a
    run of ties, in index order: a categorical RDM's are most of its pairs)."""
    size = last - first + 1
    run_values = np.empty(size)
    ordered = True
    for j in range(size):
        run_values[j] = _value_of(row_keys[first + j], mask, values, reference_keys, index_bits)
        ordered &= j == 0 or run_values[j - 1] <= run_values[j]
    if ordered:
        return
    order = np.argsort(run_values)
    run_keys = row_keys[first:last + 1].copy()
    for j in range(size):
        row_keys[first + j] = run_keys[order[j]]


@numba.njit(nogil=True, cache=True)
def mark_ties(ties, count, marks):
    """Set the bit of each sorted position inside the runs of ties ``ties[:2 * count]`` in
    ``marks`` (uint8, one bit a position; zeroed first)."""
    marks[:] = 0
    for tie in range(count):
        for position in range(ties[2 * tie], ties[2 * tie + 1] + 1):
            marks[position >> 3] |= np.uint8(1 << (position & 7))


@numba.njit(nogil=True, cache=True, inline="always")
def _tied_doubled(position, ties, count):
    """Twice the 1-based mean position of the run of ties that holds a sorted ``position``."""
    low, high = 0, count - 1
    while low < high:  # the last run that starts at or before the position
        middle = (low + high + 1) // 2
        if ties[2 * middle] <= position:
            low = middle
        else:
            high = middle - 1
    return ties[2 * low] + ties[2 * low + 1] + 2


@numba.njit(nogil=True, cache=True)
def doubled_squares(ties, count, n):
    """Sum over the n sorted positions of (twice the centred average rank)^2 with the runs of ties
    ``ties[:2 * count]``: exact integer parts, added as floats."""
    middle = n + 1
    block = _exact_block(n)
    total = n * (float(n) * n - 1) / 3  # of 2 (i - (n + 1) / 2), i = 1..n: 4 n (n^2 - 1) / 12
    for tie in range(count):
        first, last = ties[2 * tie], ties[2 * tie + 1]
        doubled = first + last + 2 - middle
        for start in range(first, last + 1, block):
            change = np.int64(0)
            for position in range(start, min(last + 1, start + block)):
                own = 2 * position + 2 - middle
                change += doubled * doubled - own * own
            total += change
    return total


@numba.njit(nogil=True, cache=True, inline="always")
def _exact_block(n):
    """How many terms of at most n^2 each (products of doubled centred ranks) an int64 sums exactly."""
    return max(1, min(1 << 16, (1 << 62) // max(1, n * n)))


@numba.njit(nogil=True, cache=True)
def payload_cross(keys, low_bits, values, reference_keys, index_bits, reference_ties, reference_count, marks, ties):
    """The rank product of another vector with a reference: ``keys`` are the other vector's
    sorted keys, each carrying in its low ``low_bits`` the 1-based sorted position of its pair in
    the reference (whose sorted keys ``reference_keys`` name the pair in their low ``index_bits``;
    its runs of ties ``reference_ties[:2 * reference_count]``, their positions' bits in
    ``marks``). Runs of the other's keys that share a prefix are ordered by ``values`` where they
    lie (``ties``: scratch for its runs of ties).

    Returns (sum of a_i b_i, sum of a_i^2, ties), a_i and b_i being twice the centred average
    ranks of the pair at sorted position i in the other vector and in the reference; exact:
    integer sums of blocks small enough for int64, added as floats.
    """
    below = np.uint64(1) << np.uint64(low_bits)
    mask = below - np.uint64(1)
    n = keys.shape[0]
    count = 0
    if _any_shared(keys, below):  # a vectorized check first: most vectors have no shared prefix
        ties, count = order_runs(keys, low_bits, values, ties, reference_keys, index_bits)
    middle = n + 1
    block = _exact_block(n)  # |a_i b_i| <= n^2
    cross = 0.0
    for start in range(0, n, block):
        part = np.int64(0)
        if reference_count == 0:
            for i in range(start, min(n, start + block)):
                part += (2 * i + 2 - middle) * (2 * np.int64(keys[i] & mask) - middle)
        else:
            for i in range(start, min(n, start + block)):
                part += (2 * i + 2 - middle) * (_reference_doubled(keys[i] & mask, reference_ties, reference_count,
                                                                   marks) - middle)
        cross += part
    for tie in range(count):  # the other's ties: their mean position instead of their own
        first, last = ties[2 * tie], ties[2 * tie + 1]
        for start in range(first, last + 1, block):
            part = np.int64(0)
            for i in range(start, min(last + 1, start + block)):
                part += (first + last - 2 * i) * (_reference_doubled(keys[i] & mask, reference_ties, reference_count,
                                                                     marks) - middle)
            cross += part
    return cross, doubled_squares(ties, count, n), ties


@numba.njit(nogil=True, cache=True, inline="always")
def _reference_doubled(position, reference_ties, reference_count, marks):
    """Twice the reference's average rank at a 1-based sorted ``position``."""
    p = np.int64(position) - 1
    if reference_count and (marks[p >> 3] >> (p & 7)) & 1:
        return _tied_doubled(p, reference_ties, reference_count)
    return 2 * np.int64(position)
