"""Correlation coefficients between many vectors at once.

Pearson, Spearman and cosine similarity are all dot products of suitably normalized vectors
(`normalize_rows`), which is what makes permutation and bootstrap tests cheap: normalize once,
then gather and multiply. Kendall's tau-a is a dot product of pairwise-difference signs.
"""

from __future__ import annotations

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
    index), numpy's vectorized integer sort: no argsort of the floats. One compiled pass then
    re-orders the values whose keys share a prefix (ties, or values closer than the prefix
    resolves) by their full value, where they lie, and writes each rank, averaging only the tied
    positions. Rows with NaN go through ``scipy.stats.rankdata``, as do integers beyond 2^53 and
    long doubles (float64 would merge them). Ranking is the cost of Spearman over many RDMs: a
    row of 499,500 pairs (1,000 images) takes 6.3 ms, against 20 ms with ``torch.sort`` and 60 ms
    with scipy; 50 million pairs (10,000 images) 1.5 s, against 6.7 s and 18 s; a binary
    (all-ties) row of 499,500 6.9 ms, against 14 and 16 ms (``benchmarks/bench_rank.py``, one
    AVX-512 CPU). The compiled passes are built on the first call after installing (~5 s, once:
    numba caches them).

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


def _exact_in_float64(x: np.ndarray) -> bool:
    """Whether float64 holds every value of ``x`` exactly (else converting would merge values)."""
    if x.dtype.kind in "bf":
        return x.dtype.itemsize <= 8
    if x.dtype.kind in "iu":
        return x.dtype.itemsize <= 4 or x.size == 0 or (int(x.min()) >= -2**53 and int(x.max()) <= 2**53)
    return False


def _rank_block(block: np.ndarray, lowest: np.ndarray, highest: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Average ranks of each row of a NaN-free (rows, n) float64 block, given each row's extremes,
    written into ``ranks`` (rows, n; may be the block's own memory) and returned.

    One sort of packed keys per row (`_rank_kernels.prefix_keys`); the compiled pass after it
    (`_rank_kernels.scatter_ranks`) orders the runs of shared prefixes by value and writes each
    rank where its value lies, averaging only the tied positions (a 50-million-pair RDM has a
    few exact ties).
    """
    from . import _rank_kernels  # numba: compiled on first use (cached), not at import

    n = block.shape[1]
    index_bits = max(1, (n - 1).bit_length())
    keys = np.empty(block.shape, np.uint64)
    _rank_kernels.prefix_keys(block.view(np.uint64), lowest.view(np.uint64), highest.view(np.uint64), index_bits,
                              None, keys)
    keys.sort(axis=1)
    _rank_kernels.scatter_ranks(keys, index_bits, block, 0.5, ranks)
    return ranks


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
