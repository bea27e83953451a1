"""Image bootstrap of RDM correlations: images resampled with replacement, as rsatoolbox does.

An image drawn twice would put a pair of one image with itself into the resampled RDM; such
pairs have no dissimilarity and are left out of every correlation (rsatoolbox's
``bootstrap_sample_pattern`` with ``subsample_pattern`` marks them NaN and its comparisons skip
NaN entries).

A resample never needs its RDM built or sorted. It is a multiset of the original image pairs:
pair (u, v), u != v, appears ``c_u c_v`` times when image u is drawn ``c_u`` times, and its copies
are tied. So each RDM is sorted once; a resample's Spearman ranks are cumulative sums of these
pair weights in that order (a tied run of total weight W after S smaller entries has the average
rank S + (W + 1) / 2, scipy's ``rankdata``), and every correlation is a weighted sum over the
original pairs. The ranks are integers or halves: twice the centred rank, 2S + W - N for N kept
entries, is an integer, summed in integers and exact, so the result is the correlation of the
gathered, re-ranked resample to rounding.

Where the time goes, and why the layout is what it is (10,000 images: 50 million pairs):

- Each RDM keeps, for every position of its sorted order, the two images of that pair as small
  ints, so a pair's weight ``c_u c_v`` is read from a table of n counts that sits in cache; the
  positions are walked in blocks that stay in cache too, and no resample touches a (n_pairs,)
  array out of order except to line the RDMs up.
- The weighted sums of one RDM (its norm) are taken in its own order. The products of two RDMs
  need them in one order: the first RDM of ``rdms_a`` (the pivot) is walked in its order and each
  other RDM's centred ranks, written out in its own order, are gathered into that order through
  an index computed once. This gather is the one access out of order per RDM and resample (the
  former code gathered the weights and scattered the ranks of every RDM). The weights, their
  running sums and the doubled centred ranks are integers within +-2N for N kept entries, so
  they are int32 where 2N fits (resamples of up to 46,341 images), else int64: half the memory
  a thread holds and the bytes gathered, and a cumulative sum several times faster than float64's.
  (Moving them in two cache-local passes, bucketed by destination, was measured no faster:
  NumPy's scatter costs what the random gather saves.)
- Resamples are independent: threads (NumPy releases the GIL in these loops) take whole
  resamples and write each to its own slot. Every sum runs over the same fixed blocks in the same
  order whatever the thread count, batch size or memory budget, so the output is bit for bit the
  same under all of them.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._memory import memory_budget_bytes
from ._correlation import _check_method, kendall_tau_a
from ._resampling import bootstrap_indices, check_resampling

__all__ = ["image_bootstrap_rdm_correlations", "kept_pair_counts"]

# positions per block: fixed (never from the budget or the thread count), so every sum is taken
# over the same blocks in the same order; ~10 block arrays of this size fit in a core's L2 cache
_BLOCK = 1 << 15
# resamples handed to the threads at once when the budget does not say (their draws only)
_MAX_BATCH = 4096


def _pair_index(n_items: int) -> np.ndarray:
    """Square (n, n) map from an image pair to its position in the condensed RDM (diagonal -1)."""
    index = np.full((n_items, n_items), -1, dtype=np.int64)
    rows, cols = np.triu_indices(n_items, 1)
    index[rows, cols] = np.arange(len(rows))
    index[cols, rows] = index[rows, cols]
    return index


def _draw_counts(indices: np.ndarray, n_items: int) -> np.ndarray:
    """How often each image is drawn in each resample: float array (n_resamples, n_items)."""
    indices = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    offsets = n_items * np.arange(len(indices))[:, None]
    counts = np.bincount((indices + offsets).ravel(), minlength=len(indices) * n_items)
    return counts.reshape(len(indices), n_items).astype(np.float64)


def kept_pair_counts(indices: np.ndarray, n_items: int) -> np.ndarray:
    """Pairs of positions in each resample that hold two different images (the entries its RDM
    keeps once the pairs of an image with its own copy are left out): array (n_resamples,)."""
    counts = _draw_counts(indices, n_items)
    k = np.atleast_2d(indices).shape[1]
    return (k * (k - 1) - (counts * (counts - 1)).sum(axis=1)) / 2


def _index_type(n_values: int):
    """The smallest of int16 / int32 / int64 that holds 0 .. n_values."""
    for dtype in (np.int16, np.int32):
        if n_values <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def _pair_images(positions: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The two images (u < v) of condensed positions, as small ints: two arrays like ``positions``.

    Computed in slices, so no second (n_pairs,) int64 array is held."""
    dtype = _index_type(n_items)
    rows = np.arange(n_items - 1)
    starts = rows * n_items - rows * (rows + 1) // 2  # first condensed position of row u
    u, v = np.empty(len(positions), dtype), np.empty(len(positions), dtype)
    step = 1 << 22
    for s in range(0, len(positions), step):
        chunk = positions[s:s + step]
        row = np.searchsorted(starts, chunk, side="right") - 1
        u[s:s + step] = row
        v[s:s + step] = chunk - starts[row] + row + 1
    return u, v


def _tied_runs(ordered: np.ndarray):
    """Each sorted position's run of equal values, (first, end) with end one past its last
    position, as position-sized ints; None when no two values are equal."""
    tied = ordered[1:] == ordered[:-1]
    if not tied.any():
        return None
    n = len(ordered)
    dtype = _index_type(n)
    position = np.arange(n, dtype=dtype)
    first_in_run = np.ones(n, bool)
    first_in_run[1:] = ~tied
    first = np.maximum.accumulate(np.where(first_in_run, position, 0).astype(dtype, copy=False))
    last_in_run = np.ones(n, bool)
    last_in_run[:-1] = ~tied
    end = np.minimum.accumulate(np.where(last_in_run, position, n - 1)[::-1].astype(dtype, copy=False))[::-1] + 1
    return first, np.ascontiguousarray(end)


class _Layout:
    """One RDM's pairs in the order it is walked: their images (u, v), and for Spearman its sorted
    values' tied runs; for Pearson and cosine the order is the condensed one and ``values`` the
    RDM's. ``gather`` (not for the pivot): for each of the pivot's positions, ours of that pair."""

    def __init__(self, row: np.ndarray, method: str, n_items: int):
        self.n = len(row)
        self.values, self.runs, self.gather = None, None, None
        if method == "spearman":
            order = np.argsort(row, kind="stable")
            self.runs = _tied_runs(row[order])
        else:
            order = np.arange(self.n)
            self.values = row
        self.u, self.v = _pair_images(order, n_items)
        self.order = order  # dropped once the orders are linked (`_Prepared`)

    def link_to(self, pivot_position: np.ndarray) -> None:
        """``pivot_position[p]``: where condensed pair p sits in the pivot's order."""
        dtype = _index_type(self.n)
        self.gather = np.empty(self.n, dtype)
        self.gather[pivot_position[self.order]] = np.arange(self.n, dtype=dtype)

    def weights(self, counts: np.ndarray, s: int, e: int, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        """Copies of the pairs at positions s..e in one resample, c_u c_v (``counts``' type)."""
        # mode="clip": the indices are valid by construction; "raise" checks each one (slower)
        np.take(counts, self.u[s:e], out=out, mode="clip")
        np.take(counts, self.v[s:e], out=scratch, mode="clip")
        return np.multiply(out, scratch, out=out)


class _Workspace:
    """What one thread holds while it computes a resample: block buffers, and per RDM other than
    the pivot its (n_pairs,) doubled centred ranks in its own order, plus one (n_pairs + 1,)
    cumulative sum where an RDM has ties; integers all of type ``rank_dtype``."""

    def __init__(self, n_pairs: int, n_moved: int, tied: bool, n_rdms: int, rank_dtype):
        m = min(_BLOCK, n_pairs)
        self.ints = [np.empty(m, rank_dtype) for _ in range(3)]
        self.small = np.empty(m, rank_dtype)
        self.w, self.tmp, self.wz = np.empty(m), np.empty(m), np.empty(m)
        self.z = [np.empty(m) for _ in range(n_rdms)]
        self.moved = [np.empty(n_pairs, rank_dtype) for _ in range(n_moved)]
        self.through = np.empty(n_pairs + 1, rank_dtype) if tied else None

    @staticmethod
    def bytes_per_thread(n_pairs: int, n_moved: int, tied: bool, n_rdms: int, rank_dtype) -> int:
        m = min(_BLOCK, n_pairs)
        size = np.dtype(rank_dtype).itemsize
        return size * (n_pairs * n_moved + (n_pairs + 1) * tied + 4 * m) + 8 * m * (3 + n_rdms)


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    # einsum's own loop, not BLAS: a threaded BLAS may split a sum by its thread count
    return float(np.einsum("i,i->", x, y))


def _rank_blocks(layout: _Layout, counts: np.ndarray, total: int, ws: _Workspace):
    """Twice the centred Spearman ranks of one RDM on one resample, block by block in its sorted
    order: yields (start, stop, weights, ranks, the ranks as integers), views valid until the
    next block."""
    a, b, c = ws.ints
    if layout.runs is None:
        carry = 0
        for s in range(0, layout.n, _BLOCK):
            e = min(layout.n, s + _BLOCK)
            m = e - s
            w = layout.weights(counts, s, e, a[:m], b[:m])
            through = np.cumsum(w, out=b[:m])  # kept entries up to and including each position
            through += carry
            carry = int(through[-1])
            # 2 x (rank - mean rank) = 2 (through - (w - 1) / 2) - (N + 1) = 2 through - w - N
            through *= 2
            through -= w
            through -= total
            np.copyto(ws.w[:m], w)
            np.copyto(ws.tmp[:m], through)
            yield s, e, ws.w[:m], ws.tmp[:m], through
        return
    first, end = layout.runs
    through = ws.through  # kept entries before each position, and all of them at the end
    through[0] = 0
    carry = 0
    for s in range(0, layout.n, _BLOCK):
        e = min(layout.n, s + _BLOCK)
        w = layout.weights(counts, s, e, a[:e - s], b[:e - s])
        np.cumsum(w, out=through[s + 1:e + 1])
        through[s + 1:e + 1] += carry
        carry = int(through[e])
    for s in range(0, layout.n, _BLOCK):
        e = min(layout.n, s + _BLOCK)
        m = e - s
        # a tied run of weight W after S entries: 2 x (mean rank - mean) = 2S + W - N
        z = np.take(through, first[s:e], out=a[:m], mode="clip")
        z += np.take(through, end[s:e], out=b[:m], mode="clip")
        z -= total
        np.subtract(through[s + 1:e + 1], through[s:e], out=c[:m])
        np.copyto(ws.w[:m], c[:m])
        np.copyto(ws.tmp[:m], z)
        yield s, e, ws.w[:m], ws.tmp[:m], z


def _spearman_resample(layouts: list[_Layout], n_a: int, counts: np.ndarray, total: int,
                       ws: _Workspace) -> np.ndarray:
    """Spearman correlations (n_a, n_b) on one resample; ``layouts[0]`` is the pivot."""
    n = len(layouts)
    norms = np.zeros(n)
    for r in range(1, n):
        moved = ws.moved[r - 1]
        for s, e, w, z, z_int in _rank_blocks(layouts[r], counts, total, ws):
            wz = np.multiply(w, z, out=ws.wz[:e - s])
            norms[r] += _dot(wz, z)
            np.copyto(moved[s:e], z_int, casting="unsafe")  # |2 x centred rank| <= total fits
    cross = np.zeros((n_a, n - n_a))
    for s, e, w, z, _ in _rank_blocks(layouts[0], counts, total, ws):
        m = e - s
        zs = [z]
        for r in range(1, n):  # the other RDMs' ranks of the pivot's pairs: the random access
            np.take(ws.moved[r - 1], layouts[r].gather[s:e], out=ws.small[:m], mode="clip")
            zs.append(ws.z[r][:m])
            np.copyto(zs[-1], ws.small[:m])
        for i in range(n_a):
            wz = np.multiply(w, zs[i], out=ws.wz[:m])
            if i == 0:
                norms[0] += _dot(wz, z)
            for j in range(n - n_a):
                cross[i, j] += _dot(wz, zs[n_a + j])
    return cross / np.sqrt(np.outer(norms[:n_a], norms[n_a:]))


def _linear_resample(layout: _Layout, rdms: np.ndarray, n_a: int, method: str, counts: np.ndarray,
                     total: int, ws: _Workspace) -> np.ndarray:
    """Pearson or cosine correlations (n_a, n_b) on one resample, all RDMs in condensed order."""
    n = len(rdms)
    means = np.zeros(n)
    a, b = ws.ints[:2]
    if method == "pearson":  # weighted means first: the products are taken of centred values
        for s in range(0, layout.n, _BLOCK):
            e = min(layout.n, s + _BLOCK)
            w = ws.w[:e - s]
            np.copyto(w, layout.weights(counts, s, e, a[:e - s], b[:e - s]))
            for r in range(n):
                means[r] += _dot(w, rdms[r, s:e])
        means /= total
    norms, cross = np.zeros(n), np.zeros((n_a, n - n_a))
    for s in range(0, layout.n, _BLOCK):
        e = min(layout.n, s + _BLOCK)
        m = e - s
        w = ws.w[:m]
        np.copyto(w, layout.weights(counts, s, e, a[:m], b[:m]))
        zs = [np.subtract(rdms[r, s:e], means[r], out=ws.z[r][:m]) for r in range(n)]
        for r in range(n_a, n):
            norms[r] += _dot(np.multiply(w, zs[r], out=ws.wz[:m]), zs[r])
        for i in range(n_a):
            wz = np.multiply(w, zs[i], out=ws.wz[:m])
            norms[i] += _dot(wz, zs[i])
            for j in range(n - n_a):
                cross[i, j] += _dot(wz, zs[n_a + j])
    return cross / np.sqrt(np.outer(norms[:n_a], norms[n_a:]))


def _default_jobs() -> int:
    """Threads for the resamples: the cores this process may use, but no more than
    ``OMP_NUM_THREADS`` when it is set. joblib's worker processes (the study's ``[parallel]
    n_jobs``) set it to their share of the cores, so parallel subjects do not each start a
    thread per core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    try:
        share = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        share = 0
    return max(1, min(cores, share)) if share > 0 else cores


class _Prepared:
    """RDMs ready for any number of resamples: each sorted (Spearman) and linked to the pivot's
    order once; what a thread then holds is sized by `bytes_per_thread`."""

    def __init__(self, a: np.ndarray, b: np.ndarray, method: str, n_items: int, n_draws: int):
        # weights, running sums (and twice them, before a subtraction) lie within 2 x the kept
        # entries <= n_draws (n_draws - 1): int32 where that fits
        self.rank_dtype = np.int32 if n_draws * (n_draws - 1) <= np.iinfo(np.int32).max else np.int64
        self.rdms, self.n_a, self.method, self.n_items = np.concatenate([a, b]), len(a), method, n_items
        self.n_pairs = n_pairs = self.rdms.shape[1]
        if method == "spearman":
            self.layouts = [_Layout(row, method, n_items) for row in self.rdms]
            pivot_position = np.empty(n_pairs, _index_type(n_pairs))
            pivot_position[self.layouts[0].order] = np.arange(n_pairs, dtype=pivot_position.dtype)
            for layout in self.layouts[1:]:
                layout.link_to(pivot_position)
            del pivot_position
            for layout in self.layouts:
                layout.order = None
            self.n_moved = len(self.rdms) - 1
            self.tied = any(layout.runs is not None for layout in self.layouts)
        else:
            self.layouts = [_Layout(self.rdms[0], method, n_items)]
            self.n_moved, self.tied = 0, False

    def bytes_per_thread(self) -> int:
        return _Workspace.bytes_per_thread(self.n_pairs, self.n_moved, self.tied, len(self.rdms), self.rank_dtype)

    def workspace(self) -> _Workspace:
        return _Workspace(self.n_pairs, self.n_moved, self.tied, len(self.rdms), self.rank_dtype)

    def resample(self, counts: np.ndarray, ws: _Workspace) -> np.ndarray:
        """Correlations (n_a, n_b) on the resample with draw ``counts`` (n_items,) int64."""
        k = int(counts.sum())
        total = (k * k - int((counts * counts).sum())) // 2  # kept entries: pairs of different images
        counts = counts.astype(self.rank_dtype)
        # a resample with < 2 kept entries, or a constant RDM on it: NaN, silently
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.method == "spearman":
                return _spearman_resample(self.layouts, self.n_a, counts, total, ws)
            return _linear_resample(self.layouts[0], self.rdms, self.n_a, self.method, counts, total, ws)


def _resample_all(prepared: _Prepared, indices: np.ndarray, batch_size: int | None, memory_gb: float | None,
                  n_jobs: int | None) -> np.ndarray:
    """Correlations (n_resamples, n_a, n_b): threads take whole resamples, each to its own slot."""
    n_items = prepared.n_items
    budget = memory_budget_bytes(memory_gb)
    n_jobs = _default_jobs() if n_jobs is None else n_jobs
    n_threads = int(max(1, min(n_jobs, len(indices), budget // prepared.bytes_per_thread())))
    if batch_size is None:  # the draws of a batch: n int64 counts per resample
        batch_size = int(max(1, min(_MAX_BATCH, budget // max(1, 8 * n_items))))
    out = np.empty((len(indices), prepared.n_a, len(prepared.rdms) - prepared.n_a))
    local = threading.local()

    def one(s: int, counts: np.ndarray) -> None:
        if not hasattr(local, "ws"):  # one workspace per thread, kept across its resamples
            local.ws = prepared.workspace()
        out[s] = prepared.resample(counts, local.ws)

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            offsets = n_items * np.arange(len(chunk))[:, None]
            counts = np.bincount((chunk + offsets).ravel(), minlength=len(chunk) * n_items).reshape(len(chunk), n_items)
            for future in [pool.submit(one, start + i, c) for i, c in enumerate(counts)]:
                future.result()
    return out


def image_bootstrap_rdm_correlations(rdms_a, rdms_b, *, method: str = "spearman", n_boot: int = 1000,
                                     seed=None, batch_size: int | None = None,
                                     indices: np.ndarray | None = None,
                                     memory_gb: float | None = None, n_jobs: int | None = None) -> np.ndarray:
    """Correlation of every RDM in ``rdms_a`` with every RDM in ``rdms_b`` on image bootstrap samples.

    All pairs see the same resampled images, so the samples of different models (layers) are
    paired: the share of samples in which a layer wins is a bootstrap of which layer is best.
    Each RDM is sorted once; a resample costs a few passes over the original pairs (see the
    module's text), and nothing of size (n_boot x n_pairs) is held: a thread holds one (n_pairs,)
    int32 array per RDM beyond the first (and one more where an RDM has tied values).

    Parameters
    ----------
    rdms_a : array (n_a, n_pairs)
        Condensed RDMs over the same n images (e.g. one per ROI).
    rdms_b : array (n_b, n_pairs)
        Condensed RDMs over the same images in the same order (e.g. one per layer or model).
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
        Ranks are taken within each bootstrap sample, over its kept pairs.
    n_boot : int
    seed : int, Generator or None
    batch_size : int, optional
        Samples whose draw counts are held at once; default from the memory budget. Results do
        not depend on it.
    indices : int array (n_boot, k), optional
        The resampled images (e.g. shared with other calls; k may differ from n, as in a
        subsample); default n images drawn with replacement from ``seed``.
    memory_gb : float, optional
        Memory the threads' working arrays may take, in GiB (default:
        `brainprobe.stats.memory_budget`); fewer threads run where it holds fewer.
    n_jobs : int, optional
        Threads, each computing whole resamples (default: the CPU cores this process may use,
        at most ``OMP_NUM_THREADS`` when it is set). Results do not depend on it.

    Returns
    -------
    array (n_boot, n_a, n_b)
        NaN where a sample has fewer than two distinct images.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.stats import image_bootstrap_rdm_correlations
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.random(190)                                    # 20 images
    >>> samples = image_bootstrap_rdm_correlations(truth[None] + 0.1 * rng.random((1, 190)), truth[None],
    ...                                           n_boot=50, seed=0)
    >>> samples.shape, bool(samples.min() > 0.8)
    ((50, 1, 1), True)
    """
    method = _check_method(method)
    a = np.atleast_2d(np.asarray(rdms_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(rdms_b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"rdms_a and rdms_b: expected the same number of pairs, found {a.shape[1]} and {b.shape[1]}")
    n_items = int(round((1 + np.sqrt(1 + 8 * a.shape[1])) / 2))
    if n_items * (n_items - 1) // 2 != a.shape[1]:
        raise ValueError(f"{a.shape[1]} entries is not a condensed RDM (n (n - 1) / 2 for some n)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("rdms: contain NaN or infinite dissimilarities")
    if indices is None:
        check_resampling(n_boot=n_boot)
        indices = bootstrap_indices(n_items, n_boot, seed)
    indices = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    if indices.shape[1] < 2 or indices.min() < 0 or indices.max() >= n_items:
        raise ValueError(f"indices: expected rows of image positions in [0, {n_items}), found shape {indices.shape} "
                         f"with values {indices.min()}..{indices.max()}")
    if method == "kendall_tau_a":
        return _kendall_samples(a, b, indices, n_items)
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
        raise ValueError(f"n_jobs: expected a positive number of threads, found {n_jobs!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size: expected a positive number of resamples, found {batch_size!r}")
    return _resample_all(_Prepared(a, b, method, n_items, indices.shape[1]), indices, batch_size, memory_gb, n_jobs)


def _kendall_samples(a, b, indices, n_items):
    """Kendall's tau-a counts every pair of kept entries, so each resample is gathered as is."""
    pair_index = _pair_index(n_items)
    rows, cols = np.triu_indices(indices.shape[1], 1)
    out = np.empty((len(indices), len(a), len(b)))
    for s, chosen in enumerate(indices):
        gathered = pair_index[chosen[rows], chosen[cols]]
        kept = gathered[gathered >= 0]
        out[s] = kendall_tau_a(a[:, kept], b[:, kept])
    return out
