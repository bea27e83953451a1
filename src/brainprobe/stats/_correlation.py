"""Correlation coefficients between many vectors at once.

Pearson, Spearman and cosine similarity are all dot products of suitably normalized vectors
(`normalize_rows`), which is what makes permutation and bootstrap tests cheap: normalize once,
then gather and multiply. Kendall's tau-a is a dot product of pairwise-difference signs.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.stats import rankdata

__all__ = [
    "FLAT_VARIANCE",
    "pearson_from_sums",
    "rank_rows_torch",
    "CORRELATION_METHODS",
    "rank_rows",
    "normalize_rows",
    "centred_rows",
    "correlate_rows",
    "correlate_pairwise",
    "kendall_tau_a",
    "masked_correlation",
]

CORRELATION_METHODS = ("spearman", "pearson", "cosine", "kendall_tau_a")


def _check_method(method: str) -> str:
    aliases = {"corr": "pearson", "correlation": "pearson", "tau_a": "kendall_tau_a", "tau-a": "kendall_tau_a",
               "kendall": "kendall_tau_a", "rho": "spearman"}
    method = aliases.get(method, method)
    if method not in CORRELATION_METHODS:
        raise ValueError(f"method: expected one of {CORRELATION_METHODS}, found {method!r}")
    return method


def rank_rows(x: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Average ranks (ties share their mean rank) along the last axis, float64; as scipy's rankdata.

    Each row is ordered by one sort of packed 64-bit keys (the value's order bits above its
    index), numpy's vectorized integer sort: no argsort of the floats. Values whose
    keys share a prefix (ties, or values closer than the prefix resolves) are then re-ordered by
    their full value among themselves, and ties averaged. Rows with NaN go through
    ``scipy.stats.rankdata``, as do integers beyond 2^53 and long doubles (float64 would merge
    them). Ranking is the cost of Spearman over many RDMs: a row of 499,500 pairs (1,000 images)
    takes 8.4 ms, against 22 ms with ``torch.sort`` and 63 ms with scipy; 50 million pairs
    (10,000 images) 2.2 s, against 7.2 s and 20 s; a binary (all-ties) row of 499,500 20 ms,
    against 19 and 16 ms (``benchmarks/bench_rank.py``, one AVX-512 CPU).

    With ``overwrite=True`` a C-contiguous float64 ``x`` becomes its ranks (returned): no new
    array of its size (400 MB at 50 million pairs; other inputs are copied).

    Examples
    --------
    >>> rank_rows(np.array([[0.3, 0.1, 0.3], [2.0, -0.0, 0.0]]))
    array([[2.5, 1. , 2.5],
           [3. , 1.5, 1.5]])
    """
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[-1] == 0 or not _exact_in_float64(x):
        return rankdata(x, axis=-1)
    x = x.astype(np.float64, copy=False)
    flat = x.reshape(-1, x.shape[-1])
    lowest, highest = flat.min(axis=-1), flat.max(axis=-1)  # NaN where a row has NaN
    has_nan = np.isnan(lowest)
    # in place: each block's values are read (into keys, and re-read for collisions) before its ranks are written
    in_place = overwrite and x.flags.c_contiguous and x.flags.writeable and np.shares_memory(flat, x)
    ranks = flat if in_place else np.empty(flat.shape)
    # blocks of ~2 MB: the keys and order of a block stay in cache and their memory is reused
    # (blocks of 100s of MB spend more time in page faults than in the sort)
    step = max(1, _RANK_BLOCK_ELEMENTS // flat.shape[1])
    for start in range(0, len(flat), step):
        stop = min(len(flat), start + step)
        clean = ~has_nan[start:stop]
        if clean.all():
            _rank_block(flat[start:stop], lowest[start:stop], highest[start:stop], ranks[start:stop])
        elif clean.any():
            rows = start + np.flatnonzero(clean)
            ranks[rows] = _rank_block(flat[rows], lowest[rows], highest[rows], np.empty((len(rows), flat.shape[1])))
    if has_nan.any():
        ranks[has_nan] = rankdata(flat[has_nan], axis=-1)
    return ranks.reshape(x.shape)


_RANK_BLOCK_ELEMENTS = 1 << 18
# aranges of up to this many elements are kept between calls: rebuilding the two of a row of
# 499,500 pairs cost 1.2 ms of its 7.4 ms ranking (a searchlight ranks three such rows a disk)
_KEPT_ARANGE_ELEMENTS = 1 << 21


@functools.lru_cache(maxsize=4)  # a row length's two aranges, for two lengths: at most 4 x 16 MB held
def _kept_arange(n: int, dtype: type, start: int) -> np.ndarray:
    values = np.arange(start, start + n, dtype=dtype)
    values.flags.writeable = False  # shared between calls
    return values


def _counting(n: int, dtype: type, start: int = 0) -> np.ndarray:
    """``np.arange(start, start + n, dtype=dtype)``, read-only and kept between calls when small."""
    if n > _KEPT_ARANGE_ELEMENTS:
        return np.arange(start, start + n, dtype=dtype)
    return _kept_arange(n, dtype, start)


def _exact_in_float64(x: np.ndarray) -> bool:
    """Whether float64 holds every value of ``x`` exactly (else converting would merge values)."""
    if x.dtype.kind in "bf":
        return x.dtype.itemsize <= 8
    if x.dtype.kind in "iu":
        return x.dtype.itemsize <= 4 or x.size == 0 or (int(x.min()) >= -2**53 and int(x.max()) <= 2**53)
    return False


def _order_keys(values: np.ndarray, nonnegative: bool, out: np.ndarray | None = None) -> np.ndarray:
    """uint64 keys (a new array, or ``out``: uint64 of the values' shape) whose unsigned order is
    the order of the NaN-free float64 ``values``."""
    # + 0.0 turns -0.0 into 0.0 (equal values, one key); C order whatever the input's (the sort's
    # order is later written through a flat view)
    if out is None:
        keys = np.add(values, 0.0, order="C").view(np.uint64)
    else:
        keys = np.add(values, 0.0, out=out.view(np.float64)).view(np.uint64)
    if nonnegative:  # (distances) the bits of non-negative floats are already in their order
        return keys
    flip = keys >> np.uint64(63)  # negative: invert every bit; positive: set the sign bit
    flip *= np.uint64((1 << 63) - 1)
    flip |= np.uint64(1 << 63)
    keys ^= flip
    return keys


def _prefix_keys(block: np.ndarray, lowest: np.ndarray, highest: np.ndarray, low_bits: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """uint64 keys (rows, n) of a NaN-free float64 ``block`` (rows, n), given each row's extremes
    (rows,): each value's order bits, relative to its row's smallest, in the top ``64 - low_bits``
    bits (as many of their top bits as fit) and ``low_bits`` zero bits below, for an index or a
    payload. Keys sort as their values, but values closer than the kept bits resolve share a
    prefix (as do ties). Written into ``out`` (uint64, (rows, n)) when given."""
    nonnegative = bool((lowest >= 0).all())
    keys = _order_keys(block, nonnegative, out)
    # relative to the row's smallest key, the value needs only the bits of the row's range: the
    # fewer bits dropped to make room below, the fewer values share a prefix
    base = _order_keys(lowest, nonnegative)
    keys -= base[:, None]
    spread = int((_order_keys(highest, nonnegative) - base).max()).bit_length()
    dropped = max(0, spread + low_bits - 64)
    if dropped:
        keys >>= np.uint64(dropped)
    keys <<= np.uint64(low_bits)
    return keys


def _rank_block(block: np.ndarray, lowest: np.ndarray, highest: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Average ranks of each row of a NaN-free (rows, n) float64 block, given each row's extremes,
    written into ``ranks`` (rows, n) and returned."""
    rows, n = block.shape
    order, ties = _sorted_positions(block, lowest, highest)
    positions = _counting(n, np.float64, 1)
    if rows == 1:  # put_along_axis builds (rows, n) index arrays: a cost at millions of pairs
        np.put(ranks[0], order[0], positions)  # 1.6 ms at 499,500 pairs, against 2.2 ms indexing
    else:
        np.put_along_axis(ranks, order, np.broadcast_to(positions, (rows, n)), axis=1)
    if ties is not None:
        tied, averaged = ties
        np.put(ranks, tied // n * n + order.reshape(-1)[tied], averaged)
    return ranks


def _sorted_positions(block: np.ndarray, lowest: np.ndarray, highest: np.ndarray,
                      keys: np.ndarray | None = None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Each row's order (rows, n) int64, and its ties, of a NaN-free float64 ``block`` given each
    row's extremes; ``keys`` (uint64, (rows, n)): memory to use for the keys, which becomes the
    order.

    The ties are None when no row has any, else the flattened sorted positions
    (``row * n + column``) that hold a tied value and the average rank (float64) of each; every
    other sorted position's rank is its column + 1.
    """
    rows, n = block.shape
    index_bits = max(1, (n - 1).bit_length())
    keys = _prefix_keys(block, lowest, highest, index_bits, keys)
    keys |= _counting(n, np.uint64)
    keys.sort(axis=1)
    shared = _shared_prefixes(keys, index_bits)
    keys &= np.uint64((1 << index_bits) - 1)  # the order, in the keys' own memory (no fresh pages)
    order = keys.view(np.int64)  # below 2^63: the same bits
    if not shared.any():
        return order, None
    equal = _value_order(block, order, shared)
    return order, (_tied_positions(equal, n) if len(equal) else None)


def _tied_positions(equal: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The flattened sorted positions that hold ties, and the average rank of each, from the
    ascending flattened positions ``equal`` of the sorted values equal to their right neighbour
    in rows of ``n``.

    Only the tied positions are touched: a 50-million-pair RDM has a few exact ties, and averaging
    whole rows (cumulative maxima both ways) took 40% of ranking it.
    """
    opens = np.ones(len(equal), bool)  # a pair that does not continue the previous one opens a run
    opens[1:] = equal[1:] != equal[:-1] + 1
    closes = np.ones(len(equal), bool)
    closes[:-1] = opens[1:]
    first, last = equal[opens], equal[closes] + 1  # each run's first and last tied position
    lengths = last - first + 1
    run_start = np.cumsum(lengths) - lengths
    tied = np.repeat(first - run_start, lengths) + np.arange(lengths.sum())
    # the mean of the run's 1-based columns (a run never crosses rows: the last column has no right neighbour)
    averaged = np.repeat((first + last) / 2 - first // n * n + 1, lengths)
    return tied, averaged


def _shared_prefixes(keys: np.ndarray, index_bits: int) -> np.ndarray:
    """Which sorted neighbours of each row of packed ``keys`` (rows, n) share their value prefix
    (their bits above ``index_bits``): (rows, n - 1) booleans.

    Neighbours XORed a stretch of columns at a time: whole-row temporaries of a 50-million-pair
    row are 400 MB each (and 0.9 s of page faults when a process first touches that much).
    """
    rows, n = keys.shape
    shared = np.empty((rows, max(0, n - 1)), bool)
    step = max(1, _RANK_BLOCK_ELEMENTS // rows)
    scratch = np.empty((rows, min(step, max(0, n - 1))), np.uint64)
    below = np.uint64(1 << index_bits)
    for start in range(0, n - 1, step):
        stop = min(n - 1, start + step)
        differ = np.bitwise_xor(keys[:, start + 1:stop + 1], keys[:, start:stop], out=scratch[:, :stop - start])
        np.less(differ, below, out=shared[:, start:stop])
    return shared


def _value_order(block: np.ndarray, order: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Put ``order`` (rows, n) in value order where sorted neighbours share a key prefix
    (``shared``, (rows, n - 1)): such a run is in index order, right for ties but not for the
    distinct values a dropped low bit merged (collisions). Returns the flattened sorted
    positions ``row * n + column`` (ascending) whose value equals its right neighbour's."""
    n = block.shape[1]
    row, column = np.nonzero(shared)
    left = row * n + column  # flattened sorted position of each sharing pair's first member
    flat_order, flat_values = order.reshape(-1), block.reshape(-1)

    def neighbours_equal():
        return flat_values[row * n + flat_order[left]] == flat_values[row * n + flat_order[left + 1]]

    same = neighbours_equal()
    if not same.all():  # collisions: sort the runs that hold one by their full values
        pair_run = np.cumsum(np.r_[True, left[1:] != left[:-1] + 1])  # consecutive pairs form a run
        mixed = np.zeros(pair_run[-1] + 1, bool)
        mixed[pair_run[~same]] = True
        pairs = mixed[pair_run]
        members, first = np.unique(np.r_[left[pairs], left[pairs] + 1], return_index=True)
        member_run = np.r_[pair_run[pairs], pair_run[pairs]][first]
        source = flat_order[members]
        values = flat_values[members // n * n + source]
        flat_order[members] = source[np.lexsort((values, member_run))]
        same = neighbours_equal()
    return left[same]


# a variance below this share of the sum of squares is rounding: the values are constant
FLAT_VARIANCE = 64 * np.finfo(np.float64).eps


def pearson_from_sums(sum_a: torch.Tensor, sum_b: torch.Tensor, square_a: torch.Tensor, square_b: torch.Tensor,
                      cross: torch.Tensor, n: int) -> torch.Tensor:
    """Pearson correlation of two variables from their sums over ``n`` observations: sum a, sum b,
    sum a^2, sum b^2 and sum ab (tensors of one shape, e.g. one per searchlight centre). NaN where
    either variance is rounding error (a constant variable)."""
    def variance(total, square):
        spread = square - total * total / n
        return torch.where(spread > FLAT_VARIANCE * square.abs(), spread, torch.nan)

    return (cross - sum_a * sum_b / n) / torch.sqrt(variance(sum_a, square_a) * variance(sum_b, square_b))


def rank_rows_torch(values: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`rank_rows` in torch, on the tensor's device: average ranks (1-based) along each row of a
    2-D tensor, ties sharing the mean of their positions (scipy's ``rankdata``), in ``dtype``
    (default: the values' own floating dtype).

    One sort per row; runs of ties are resolved only in rows that have any (ReLU outputs and
    RDMs of few vertices have many).
    """
    dtype = dtype or values.dtype
    ordered, order = torch.sort(values, dim=1)
    return torch.empty(values.shape, dtype=dtype, device=values.device).scatter_(
        1, order, _tie_averaged_positions(ordered, dtype))


def _tie_averaged_positions(ordered: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """1-based positions (rows, n) of rows already sorted, each run of equal values given the mean
    of its positions, (first + last) / 2, as scipy's rankdata; in ``dtype`` (default the values')."""
    dtype = dtype or ordered.dtype
    equal = ordered[:, 1:] == ordered[:, :-1]
    if not bool(equal.any()):
        count = ordered.shape[1]
        return torch.arange(1, count + 1, dtype=dtype, device=ordered.device).expand(ordered.shape).contiguous()
    return _averaged_positions(equal, dtype)


def _averaged_positions(equal: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1-based positions (rows, n) of sorted rows whose neighbours are ``equal`` (rows, n - 1),
    each run of equal values given the mean of its first and last position."""
    count = equal.shape[1] + 1
    position = torch.arange(1, count + 1, dtype=dtype, device=equal.device).expand(equal.shape[0], count)
    first = torch.ones(position.shape, dtype=torch.bool, device=equal.device)
    first[:, 1:] = ~equal
    last = torch.ones_like(first)
    last[:, :-1] = first[:, 1:]
    start = torch.cummax(torch.where(first, position, 0.0), dim=1).values
    end = torch.cummin(torch.where(last, position, count + 1.0).flip(1), dim=1).values.flip(1)
    return (start + end) / 2


def centred_rows(x: np.ndarray, method: str, *, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows made ready for correlation, and their norms: the correlation of two rows is their dot
    product divided by both norms (`normalize_rows` divides once; a searchlight multiplies a
    disk's rows once each, so dividing the scalars saves a pass over them).

    Parameters
    ----------
    x : array (..., n)
    method : {"spearman", "pearson", "cosine"}
    overwrite : bool
        Whether ``x`` (when C-contiguous float64) may become the returned rows, instead of a copy.

    Returns
    -------
    rows : array (..., n), float64
        Ranked (spearman), centred (spearman, pearson): a new array, unless ``overwrite``.
    norms : array (...), float64
        Each row's root sum of squares; NaN where it is zero (a constant row has no defined
        correlation).
    """
    method = _check_method(method)
    if method == "kendall_tau_a":
        raise ValueError("kendall_tau_a is not a normalized dot product; use kendall_tau_a()")
    # work in place on one fresh copy (or on x): these arrays can hold tens of millions of entries
    if method == "spearman":
        x = rank_rows(x, overwrite=overwrite)
    elif not (overwrite and isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.writeable):
        x = np.array(x, dtype=np.float64, copy=True)
    if method == "spearman":  # average ranks of n values have mean (n + 1) / 2, ties or not
        x -= (x.shape[-1] + 1) / 2
    elif method == "pearson":
        x -= x.mean(axis=-1, keepdims=True)
    norm = np.atleast_1d(np.sqrt(np.einsum("...i,...i->...", x, x)))
    norm[norm == 0] = np.nan  # a constant row has no defined correlation
    return x, norm.reshape(x.shape[:-1])


def normalize_rows(x: np.ndarray, method: str) -> np.ndarray:
    """Rows transformed so that the dot product of two rows is their correlation.

    Parameters
    ----------
    x : array (..., n)
    method : {"spearman", "pearson", "cosine"}

    Returns
    -------
    array (..., n), float64
        Ranked (spearman), centred (spearman, pearson) and scaled to unit norm. A constant row
        has no defined correlation and becomes all NaN.
    """
    x, norm = centred_rows(x, method)
    x /= norm[..., None]
    return x


def _pair_signs(x: np.ndarray) -> np.ndarray:
    """sign(x_k - x_l) for k < l, shape (n_rows, n (n - 1) / 2), float64."""
    n = x.shape[-1]
    first, second = np.triu_indices(n, 1)
    return np.sign(x[..., first] - x[..., second])


def kendall_tau_a(a: np.ndarray, b: np.ndarray, *, chunk: int = 32) -> np.ndarray:
    """Kendall's tau-a between every row of ``a`` and every row of ``b``.

    tau-a = (concordant - discordant) / (n (n - 1) / 2), with no tie adjustment: the statistic
    rsatoolbox recommends for comparing RDMs when a model predicts tied dissimilarities.

    Parameters
    ----------
    a : array (n_a, n) or (n,)
    b : array (n_b, n) or (n,)

    Returns
    -------
    array (n_a, n_b)
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    n = a.shape[-1]
    n_pairs = n * (n - 1) / 2
    signs_b = _pair_signs(b)
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), chunk):
        out[start:start + chunk] = _pair_signs(a[start:start + chunk]) @ signs_b.T / n_pairs
    return out


def correlate_pairwise(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Correlation of every row of ``a`` with every row of ``b``: array (n_a, n_b)."""
    method = _check_method(method)
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"vectors differ in length: {a.shape[-1]} vs {b.shape[-1]}")
    if method == "kendall_tau_a":
        return kendall_tau_a(a, b)
    return normalize_rows(a, method) @ normalize_rows(b, method).T


def correlate_rows(a: np.ndarray, b: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Correlation of row i of ``a`` with row i of ``b`` (broadcasting): array (...,)."""
    method = _check_method(method)
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"vectors differ in length: {a.shape[-1]} vs {b.shape[-1]}")
    if method == "kendall_tau_a":
        a, b = np.broadcast_arrays(a, b)
        flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        n = a.shape[-1]
        values = np.einsum("ij,ij->i", _pair_signs(flat_a), _pair_signs(flat_b)) / (n * (n - 1) / 2)
        return values.reshape(a.shape[:-1])
    return np.einsum("...i,...i->...", normalize_rows(a, method), normalize_rows(b, method))


def masked_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray, method: str = "spearman") -> np.ndarray:
    """Row-wise correlation using only the entries where ``mask`` is True.

    Used by bootstraps that must drop some entries of each sample (for instance the
    zero-distance pairs an image drawn twice would create). Ranks, means and norms are taken
    over the kept entries of each row only.

    Parameters
    ----------
    a, b : array (n_rows, n)
    mask : bool array (n_rows, n)
    method : {"spearman", "pearson", "cosine"}

    Returns
    -------
    array (n_rows,)
        NaN for a row with fewer than two kept entries (no correlation is defined); no warning.
    """
    method = _check_method(method)
    if method == "kendall_tau_a":
        signs = []
        for row_a, row_b, keep in zip(a, b, mask, strict=True):
            signs.append(kendall_tau_a(row_a[keep], row_b[keep])[0, 0])
        return np.asarray(signs)
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.asarray(mask, bool)
    if method == "spearman":
        # dropped entries are pushed above every kept value, so kept ranks are unaffected
        a = rank_rows(np.where(keep, a, np.inf))
        b = rank_rows(np.where(keep, b, np.inf))
    weight = keep.astype(float)
    count = weight.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # a row with < 2 kept entries is NaN, silently
        if method in ("spearman", "pearson"):
            a = a - (a * weight).sum(-1, keepdims=True) / count
            b = b - (b * weight).sum(-1, keepdims=True) / count
        a, b = a * weight, b * weight
        return np.einsum("ij,ij->i", a, b) / np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
