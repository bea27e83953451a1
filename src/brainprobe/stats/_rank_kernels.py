"""Compiled passes of `RankedReference` (numba): each replaces several numpy passes over an RDM.

At 1,000 images an RDM is 499,500 pairs (4 MB a float64 array) and a searchlight ranks three
per disk, 65,000 disks: every pass over such an array costs 0.1-0.3 ms, and the numpy route
(keys: copy, subtract, two shifts, or; after the sort: xor, compare, and, convert, dot) takes
twice the time of these fused loops. The sort itself stays numpy's (vectorized) one.

Keys follow `brainprobe.stats._correlation._prefix_keys`: a float's order bits (sign bit set
for non-negative values, every bit inverted for negative ones), less the smallest value's, shifted
right by ``dropped`` bits and left by ``low_bits``, with the payload in the low bits.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["order_bits", "payload_keys", "payload_cross", "resolved_payload_cross", "scatter_doubled_positions"]

_SIGN = np.uint64(1 << 63)


@numba.njit(nogil=True, cache=True, inline="always")
def _order_bits(bits):
    return ~bits if bits & _SIGN else bits | _SIGN


def order_bits(value: float) -> int:
    """The order bits of one float (``-0.0`` as ``0.0``), as the keys use them."""
    bits = int(np.array([value + 0.0]).view(np.uint64)[0])
    return (~bits & (2**64 - 1)) if bits >> 63 else bits | (1 << 63)


@numba.njit(nogil=True, cache=True)
def payload_keys(value_bits, base, dropped, low_bits, payload, keys):
    """keys[p] = ((order bits of value p - base) >> dropped) << low_bits | payload[p], from the
    float64 values' bits (``values.view(np.uint64)``)."""
    for p in range(value_bits.shape[0]):
        bits = value_bits[p]
        if bits == _SIGN:  # -0.0: the key of 0.0
            bits = np.uint64(0)
        keys[p] = (((_order_bits(bits) - base) >> dropped) << low_bits) | payload[p]


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
def scatter_doubled_positions(keys, low_bits, doubled):
    """doubled[index of sorted position i] = 2 i (i = 1..n), the index in the keys' low bits;
    unless two neighbours share their prefix (returns True, ``doubled`` left as it was)."""
    below = np.uint64(1) << np.uint64(low_bits)
    if _any_shared(keys, below):
        return True
    mask = below - np.uint64(1)
    for i in range(keys.shape[0]):
        doubled[keys[i] & mask] = 2 * (i + 1)
    return False
