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

__all__ = ["prefix_keys", "payload_cross", "resolved_payload_cross", "scatter_ranks"]

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
def payload_cross(keys, low_bits):
    """Sum over sorted positions i (1..n) of (2 i - n - 1) (payload_i - n - 1), and whether two
    neighbours share their prefix (then the sum is not computed): (sum, shared).

    Exact: integer sums of blocks (each below 2^63 for n up to 2^22), added as floats.
    """
    below = np.uint64(1) << np.uint64(low_bits)
    if _any_shared(keys, below):
        return 0.0, True
    mask = below - np.uint64(1)
    n = keys.shape[0]
    middle = n + 1
    total = 0.0
    for start in range(0, n, _BLOCK):
        part = np.int64(0)
        for i in range(start, min(n, start + _BLOCK)):
            part += (2 * i + 2 - middle) * (np.int64(keys[i] & mask) - middle)
        total += part
    return total, False


_BLOCK = 4096


@numba.njit(nogil=True, cache=True)
def resolved_payload_cross(keys, low_bits, values, reference_keys, index_bits):
    """`payload_cross` where the payloads are distinct doubled ranks (a reference without ties),
    with the runs of keys that share a prefix resolved in place: each member's pair is found from
    its payload (``reference_keys``: the reference's sorted keys, its pairs' indices in their
    low ``index_bits``), the run ordered by the pairs' ``values``, and equal values given the mean of their
    positions. Returns (sum of a_i (payload_i - n - 1), sum of a_i^2), a_i being twice the centred
    average rank of sorted position i; exact (integer sums of blocks)."""
    below = np.uint64(1) << np.uint64(low_bits)
    mask = below - np.uint64(1)
    index_mask = (np.uint64(1) << np.uint64(index_bits)) - np.uint64(1)
    n = keys.shape[0]
    middle = n + 1
    total, squares = 0.0, 0.0
    part, part_squares, count = np.int64(0), np.int64(0), 0
    i = 0
    while i < n:
        last = i
        while last + 1 < n and (keys[last + 1] ^ keys[last]) < below:
            last += 1
        if last == i:
            doubled = 2 * i + 2 - middle
            part += doubled * (np.int64(keys[i] & mask) - middle)
            part_squares += doubled * doubled
            count += 1
        else:
            size = last - i + 1
            payloads = np.empty(size, np.int64)
            run_values = np.empty(size)
            for r in range(size):
                payloads[r] = np.int64(keys[i + r] & mask)
                run_values[r] = values[reference_keys[payloads[r] // 2 - 1] & index_mask]
            order = np.argsort(run_values)
            first = 0
            while first < size:
                end = first
                while end + 1 < size and run_values[order[end + 1]] == run_values[order[first]]:
                    end += 1
                doubled = (i + first + 1) + (i + end + 1) - middle  # twice the mean position, centred
                for r in range(first, end + 1):
                    part += doubled * (payloads[order[r]] - middle)
                    part_squares += doubled * doubled
                    count += 1
                    if count >= _BLOCK:
                        total, squares = total + part, squares + part_squares
                        part, part_squares, count = np.int64(0), np.int64(0), 0
                first = end + 1
        if count >= _BLOCK:
            total, squares = total + part, squares + part_squares
            part, part_squares, count = np.int64(0), np.int64(0), 0
        i = last + 1
    return total + part, squares + part_squares


@numba.njit(nogil=True, cache=True)
def scatter_ranks(keys, index_bits, values, scale, ranks):
    """ranks[r, index] = ``scale`` x twice the average 1-based rank of each value of the rows of
    ``values`` (rows, n), from their sorted keys (rows, n) (the index in the low ``index_bits``):
    ``scale`` 0.5 gives the ranks, 1 the doubled ranks (integers). Runs of keys that share a prefix
    (ties, or values closer than the keys resolve) are ordered by value in place, equal values
    given the mean of their positions. Returns whether any row has ties.

    ``ranks`` may be ``values``' own memory: a row's values are all read before its ranks are
    written.
    """
    below = np.uint64(1) << np.uint64(index_bits)
    mask = below - np.uint64(1)
    n = keys.shape[1]
    ties = np.empty(64, np.int64)  # (first, last) sorted positions of each run of equal values
    any_ties = False
    for r in range(keys.shape[0]):
        row_keys, row_values = keys[r], values[r]
        count = 0
        i = _next_shared(row_keys, 0, below)
        while i < n - 1:  # first pass: order the runs that share a prefix; note their ties
            last = i + 1
            while last + 1 < n and (row_keys[last + 1] ^ row_keys[last]) < below:
                last += 1
            ties, count = _order_run(row_keys, i, last, mask, row_values, ties, count)
            i = _next_shared(row_keys, last + 1, below)
        any_ties |= count > 0
        for position in range(n):  # second pass: the ranks, then the tied positions' averages
            ranks[r, row_keys[position] & mask] = (2 * position + 2) * scale
        for tie in range(count):
            first, last = ties[2 * tie], ties[2 * tie + 1]
            averaged = (first + last + 2) * scale
            for position in range(first, last + 1):
                ranks[r, row_keys[position] & mask] = averaged
    return any_ties


@numba.njit(nogil=True, cache=True)
def _next_shared(row_keys, start, below):
    """The first sorted position from ``start`` whose key shares its prefix with the next one's
    (``len - 1`` where none does). Apart from the loop that orders runs: a call in the loop
    made numba's scan 30 times slower."""
    i = start
    while i + 1 < row_keys.shape[0] and (row_keys[i + 1] ^ row_keys[i]) >= below:
        i += 1
    return min(i, row_keys.shape[0] - 1)


@numba.njit(nogil=True, cache=True)
def _order_run(row_keys, first, last, mask, row_values, ties, count):
    """Order the keys ``first..last`` (one shared prefix) by their values, and append each run of
    equal values among them to ``ties`` (pairs of sorted positions; grown when full). Returns
    (ties, count of pairs)."""
    if last - first < _SHORT_RUN:  # most runs are a pair: sorted where they lie
        for j in range(first + 1, last + 1):
            key = row_keys[j]
            value = row_values[key & mask]
            k = j
            while k > first and row_values[row_keys[k - 1] & mask] > value:
                row_keys[k] = row_keys[k - 1]
                k -= 1
            row_keys[k] = key
    else:
        _order_long_run(row_keys, first, last, mask, row_values)
    start = first
    while start <= last:
        value = row_values[row_keys[start] & mask]
        end = start
        while end < last and row_values[row_keys[end + 1] & mask] == value:
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
def _order_long_run(row_keys, first, last, mask, row_values):
    """Order the keys ``first..last`` by their values; left alone when already in order (a run of
    ties, in index order: a categorical RDM's are most of its pairs)."""
    size = last - first + 1
    run_values = np.empty(size)
    ordered = True
    for j in range(size):
        run_values[j] = row_values[row_keys[first + j] & mask]
        ordered &= j == 0 or run_values[j - 1] <= run_values[j]
    if ordered:
        return
    order = np.argsort(run_values)
    run_keys = row_keys[first:last + 1].copy()
    for j in range(size):
        row_keys[first + j] = run_keys[order[j]]
