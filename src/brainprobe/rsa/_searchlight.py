"""Searchlight RSA: an RDM for every vertex's neighbourhood, in sparse matrix products."""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk
from threadpoolctl import threadpool_info, threadpool_limits

from .._device import resolve_device
from .._internal import (
    RankedReference,
    as_generator,
    centred_rows,
    correlate_rows,
    fwe_from_null_maxima,
    permutation_set,
)
from .._memory import memory_budget_bytes
from .._progress import tqdm
from ..stats import rdm_permutation_test
from ..stats._correlation import _check_method
from ._kinds import _table_of, align_kinds
from ._searchlight_batched import GRAM_METRICS, RDM_METHODS, batched_kind_similarity

__all__ = ["searchlight_rdms", "searchlight_kind_similarity"]

_SEARCHLIGHT_METRICS = ("correlation", "cosine", "euclidean", "squared_euclidean")
# a searchlight projected to take longer than this (from the centres done in its first seconds) says so, and what is faster
SLOW_SEARCHLIGHT_S = 600.0
# ... once this many seconds have passed (a chunk of a few centres is too short to project from)
PROJECT_AFTER_S = 5.0


def _membership(neighbourhoods, n_vertices: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix(neighbourhoods)
    if matrix.shape[1] != n_vertices:
        raise ValueError(f"neighbourhoods: expected {n_vertices} columns (one per vertex of patterns), found {matrix.shape[1]}")
    matrix = matrix.astype(bool).astype(np.float64)
    matrix.eliminate_zeros()
    return matrix


def _chunk_rdms(patterns: np.ndarray, members: sp.csr_matrix, metric: str, images=None, *,
                gathered: _ChunkPatterns | None = None) -> np.ndarray:
    """RDMs (n_centers_in_chunk, n_pairs), one `_disk_rdm` per disk.

    ``images`` (optional) are the rows of ``patterns`` to use, so that a kind's images are taken
    disk by disk instead of copying all their vertices for every chunk; ``gathered``: the chunk's
    patterns, when already taken for another kind.
    """
    images = np.arange(patterns.shape[0]) if images is None else np.asarray(images)
    gathered = gathered or _ChunkPatterns(patterns, members)
    out = np.empty((members.shape[0], len(images) * (len(images) - 1) // 2))
    gram = _gram_workspace(len(images))
    for centre in range(members.shape[0]):
        _disk_rdm(gathered.disk(centre, images), metric, out[centre], gram)
    return out


class _ChunkPatterns:
    """The patterns over a chunk of disks' vertices, taken once: (n_used_vertices, n_rows).

    Disks of neighbouring centres share most of their vertices; taking each disk's columns from
    the whole (n_rows, n_vertices) array touches a cache line per image and vertex (1.4 ms a disk
    for three kinds of 1,000 images), a chunk of 64 centres' union of columns 0.08 ms a disk.
    """

    def __init__(self, patterns: np.ndarray, members: sp.csr_matrix):
        used, self._local = np.unique(members.indices, return_inverse=True)
        self._indptr = members.indptr
        self._block = np.ascontiguousarray(patterns[:, used].T)

    def disk(self, centre: int, images: np.ndarray) -> np.ndarray:
        """The (n_images, k) float64 patterns of rows ``images`` over centre's k disk vertices."""
        vertices = self._local[self._indptr[centre]:self._indptr[centre + 1]]
        return np.asarray(self._block[vertices[:, None], images].T, dtype=np.float64)


def _gram_workspace(n_images: int) -> np.ndarray:
    """Memory for `_lower_gram`'s (n_images x n_images) result, reused disk after disk (fresh
    pages of 8 MB a disk at 1,000 images cost as much as the product)."""
    return np.empty((n_images, n_images), order="F")


def _disk_rdm(x: np.ndarray, metric: str, out: np.ndarray, gram: np.ndarray | None = None) -> tuple[float, float]:
    """Write the condensed RDM (n_pairs,) of one disk's patterns ``x`` (n_images, k) into ``out``;
    return its smallest and largest distance (NaN if any distance is).

    A disk's images are standardized over its vertices (centred and scaled to unit norm for the
    correlation distance, scaled for cosine), so one matrix product of a disk's few columns gives
    all its image pairs; nothing of size (n_pairs x vertices) is formed. An image whose pattern is
    constant over a disk (zero norm) has no correlation or cosine distance there: NaN (decided
    exactly, by its values' range, not by the rounding of its mean). ``gram``: an (n_images x
    n_images) Fortran-order array to hold the product.
    """
    from ._rdm_kernels import (  # numba: compiled on first use (cached)
        METRIC_CODES,
        condensed_from_gram,
    )

    if metric in ("correlation", "cosine"):
        if metric == "correlation":
            constant = np.ptp(x, axis=1) == 0
            x = x - x.mean(axis=1, keepdims=True)
            x[constant] = 0.0
        norm = np.sqrt(np.einsum("ij,ij->i", x, x))
        with np.errstate(invalid="ignore", divide="ignore"):
            x = x / norm[:, None]  # a zero norm makes the image's row NaN
    return condensed_from_gram(_lower_gram(x, gram), METRIC_CODES[metric], float(x.shape[1]), out)


def _lower_gram(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The lower triangle (diagonal included) of ``x @ x.T``, (n, n) in Fortran order: BLAS's
    syrk, half the products of a full matrix product (the upper triangle is not set); written
    into ``out`` when given (float64, (n, n), Fortran order)."""
    if out is None:
        return dsyrk(1.0, x, lower=1)
    return dsyrk(1.0, x, c=out, beta=0.0, lower=1, overwrite_c=1)


def _centre_chunks(members: sp.csr_matrix, n_images: int, budget: int, cap: int, n_kinds: int = 1):
    """(start, stop) of consecutive centres whose RDMs fit in ``budget`` bytes, at most ``cap``.

    A chunk holds, per kind, a few (centres x n_pairs) arrays (distances, ranks) and one disk's
    (n_images x n_images) Gram matrix at a time. Per centre the result does not depend on the
    chunks.
    """
    n_pairs = n_images * (n_images - 1) // 2
    per_centre = 8 * n_pairs * n_kinds * 4
    fixed = 8 * (2 * n_images * n_images + 3 * n_pairs)  # a Gram matrix, its copy, the pair index
    size = int(max(1, min(cap, (budget - fixed) // per_centre)))
    for start in range(0, members.shape[0], size):
        yield start, min(members.shape[0], start + size)


# arrays above glibc's largest mmap threshold (32 MiB) get fresh pages at every allocation, and
# touching them first costs more than ranking them (measured: 86 ms a centre at 1,000 images in
# chunks of 2,048 centres, 54 ms in chunks of 4)
_REUSABLE_BYTES = 16 * 2**20


def _reusable_centres(n_images: int) -> int:
    """Centres per chunk whose (centres x n_pairs) float64 arrays stay reusable (at least one)."""
    return max(1, _REUSABLE_BYTES // (8 * max(1, n_images * (n_images - 1) // 2)))


def similarity_chunk_centres(n_images: int, method: str) -> int:
    """Centres per chunk of `chunk_similarities`: Spearman on large RDMs goes disk by disk in
    arrays each thread reuses, so its chunks only share the gathering of their vertices' patterns
    (`_ChunkPatterns`); the other methods hold (centres x n_pairs) arrays per chunk."""
    if _check_method(method) == "spearman" and n_images * (n_images - 1) // 2 >= _THREADED_PAIRS:
        return _GATHERED_CENTRES
    return _reusable_centres(n_images)


_GATHERED_CENTRES = 64


def _oriented(values: np.ndarray, alternative: str) -> np.ndarray:
    """Statistics turned so that larger is more extreme, for maximum-statistic corrections."""
    if alternative == "two-sided":
        return np.abs(values)
    return -values if alternative == "less" else values


def _batched_path(metric: str, method: str, perms, device) -> bool:
    """Whether similarity without permutations goes through `batched_kind_similarity`: always for
    Pearson on the Gram identities (no RDM formed), and for the other RDM methods on a GPU (batched
    sorts); Kendall's tau-a and permutation nulls keep the per-centre RDMs."""
    method = _check_method(method)
    if perms is not None or method not in RDM_METHODS or metric not in _SEARCHLIGHT_METRICS:
        return False
    return (method == "pearson" and metric in GRAM_METRICS) or resolve_device(device).type != "cpu"


def _warn_if_slow(seconds: float, done: int, n_centers: int, method: str, metric: str, perms, n_images: int):
    """Warn when the time of the centres done so far projects the searchlight past `SLOW_SEARCHLIGHT_S`,
    naming what is faster (hours of a study's searchlight should not pass in silence)."""
    projected = seconds * n_centers / done
    if projected <= SLOW_SEARCHLIGHT_S:
        return
    faster = []
    if perms is not None:
        faster.append(f"fewer permutations ({len(perms)} now) or fewer centres")
    elif _check_method(method) != "pearson" or metric not in GRAM_METRICS:
        faster.append("method='pearson' with metric correlation, cosine or squared_euclidean (a study's [rsa] "
                      "method; no RDM is formed: ~60 CPU s for both fs_LR 32k hemispheres at 1,000 images)")
        faster.append("a CUDA device (device='cuda'), where every disk's RDMs are ranked in batches")
    warnings.warn(f"searchlight: the first {done} of {n_centers} centres took {seconds:.0f} s; all of them will take "
                  f"about {projected / 3600:.1f} h at this rate ({n_images} images, {method} on the CPU). "
                  + ("Faster: " + "; or ".join(faster) + "." if faster else ""), UserWarning, stacklevel=3)


def _searchlight_block(patterns, rows, members, *, reference, others, metric, method, perms, alternative,
                       chunk_size, memory_gb, progress, device=None):
    """Similarity, p and the null maxima of one block of centres: arrays per other kind.

    Every centre's values are the same whatever the block and chunk it falls in.
    """
    n_centers = members.shape[0]
    if _batched_path(metric, method, perms, device):
        similarity = batched_kind_similarity(patterns, rows, members, reference=reference, others=others,
                                             metric=metric, method=_check_method(method),
                                             budget=memory_budget_bytes(memory_gb), device=device)
        return similarity, {other: np.full(n_centers, np.nan) for other in others}, \
            {other: np.full(0, -np.inf) for other in others}
    n_sources = len(rows[reference])
    budget = memory_budget_bytes(memory_gb)
    # half for the chunk's RDMs of every kind, half for the permutation test's gathers; without
    # permutations, chunks small enough for malloc to reuse their memory
    cap = min(chunk_size, similarity_chunk_centres(n_sources, method)) if perms is None else chunk_size
    bounds = list(_centre_chunks(members, n_sources, budget // 2, cap, len(rows)))
    bar = tqdm(total=n_centers, desc="searchlight", unit="centre",
               disable=(len(bounds) < 2 or None) if progress is None else not progress)
    if perms is None:
        similarity = {other: np.empty(n_centers) for other in others}
        started, projected = time.perf_counter(), False
        for (start, stop), values in zip(bounds, chunk_similarities(patterns, rows, members, bounds, reference=reference,
                                                                    others=others, metric=metric, method=method),
                                         strict=True):
            for other in others:
                similarity[other][start:stop] = values[other]
            bar.update(stop - start)
            elapsed = time.perf_counter() - started
            if not projected and stop < n_centers and elapsed >= PROJECT_AFTER_S:  # enough done to project the rest
                _warn_if_slow(elapsed, stop, n_centers, method, metric, perms, n_sources)
                projected = True
        bar.close()
        return similarity, {other: np.full(n_centers, np.nan) for other in others}, \
            {other: np.full(0, -np.inf) for other in others}
    similarity = {other: np.empty(n_centers) for other in others}
    p_values = {other: np.full(n_centers, np.nan) for other in others}
    # one maximum per relabeling actually used: n! of them when every relabeling is enumerated
    null_max = {other: np.full(len(perms), -np.inf) for other in others}
    started, projected = time.perf_counter(), False
    for start, stop in bounds:
        elapsed = time.perf_counter() - started
        if not projected and start and elapsed >= PROJECT_AFTER_S:  # enough chunks done to project the rest
            _warn_if_slow(elapsed, start, n_centers, method, metric, perms, n_sources)
            projected = True
        chunk = members[start:stop]
        kind_rdms = {kind: _chunk_rdms(patterns, chunk, metric, index) for kind, index in rows.items()}
        for other in others:
            ref, oth = kind_rdms[reference], kind_rdms[other]
            similarity[other][start:stop] = correlate_rows(ref, oth, method)
            valid = np.isfinite(ref).all(axis=1) & np.isfinite(oth).all(axis=1)
            if valid.any():
                result = rdm_permutation_test(ref[valid], oth[valid], method=method, permutations=perms,
                                              alternative=alternative, memory_gb=budget / 2 / 2**30)
                p_values[other][start + np.flatnonzero(valid)] = result.p
                null_max[other] = np.maximum(null_max[other], np.nanmax(_oriented(result.null, alternative), axis=0))
        bar.update(stop - start)
    bar.close()
    return similarity, p_values, null_max


def chunk_similarities(patterns, rows, members: sp.csr_matrix, bounds, *, reference: str, others, metric: str,
                       method: str):
    """Each chunk's similarities of the reference kind's RDM with the others', disk by disk: yields
    ``{other: (stop - start,)}`` for each ``(start, stop)`` of ``bounds``, in order.

    ``rows`` maps each kind to its rows of ``patterns``. The chunks run in as many threads as
    BLAS would use (its thread limits, a joblib worker's share of the cores), each with one BLAS
    thread: a disk's (n_images x k) products are too small to share, and BLAS's spinning threads
    doubled the CPU time, while the ranking, gathers and sorts of a disk's RDMs release the GIL
    (two threads: 1.7x on two cores at 1,000 images; RDMs under `_THREADED_PAIRS` pairs stay in
    one thread). Every disk's value is the same whatever the chunks and threads.
    """
    method = _check_method(method)
    n_sources = len(rows[reference])
    large = n_sources * (n_sources - 1) // 2 >= _THREADED_PAIRS
    workspaces = threading.local()  # each thread's own arrays, reused chunk after chunk

    def spearman_values(bound):
        if not hasattr(workspaces, "ranked"):
            workspaces.ranked = RankedReference(max(1, n_sources * (n_sources - 1) // 2))
            workspaces.rdm = np.empty(n_sources * (n_sources - 1) // 2)
            workspaces.gram = _gram_workspace(n_sources)
        ranked, rdm, gram = workspaces.ranked, workspaces.rdm, workspaces.gram
        gathered = _ChunkPatterns(patterns, members[bound[0]:bound[1]])
        values = {other: np.empty(bound[1] - bound[0]) for other in others}
        for centre in range(bound[1] - bound[0]):
            ranked.set_reference(rdm, _disk_rdm(gathered.disk(centre, rows[reference]), metric, rdm, gram))
            for other in others:
                values[other][centre] = ranked.against(rdm, _disk_rdm(gathered.disk(centre, rows[other]), metric, rdm, gram))
        return values

    def chunk_values(bound):
        if large and method == "spearman":
            return spearman_values(bound)
        chunk = members[bound[0]:bound[1]]
        gathered = _ChunkPatterns(patterns, chunk)
        if method == "kendall_tau_a":
            ref = _chunk_rdms(patterns, chunk, metric, rows[reference], gathered=gathered)
            return {other: correlate_rows(ref, _chunk_rdms(patterns, chunk, metric, rows[other], gathered=gathered),
                                          method)
                    for other in others}
        # the reference's ranks (and norm) once for every other kind; a norm divides a number, not a row
        # (ranked in place: a fresh array for its ranks took as long as ranking)
        ref, ref_norm = centred_rows(_chunk_rdms(patterns, chunk, metric, rows[reference], gathered=gathered),
                                     method, overwrite=True)
        values = {}
        for other in others:
            oth, norm = centred_rows(_chunk_rdms(patterns, chunk, metric, rows[other], gathered=gathered),
                                     method, overwrite=True)
            values[other] = np.einsum("ij,ij->i", ref, oth) / (ref_norm * norm)
        return values

    # small RDMs are Python's work, which holds the GIL: threads there only contend for it
    # (40 images: 2x slower in two threads; 150 images: even; 1,000 images: 1.7x faster)
    threads = min(_blas_threads(), len(bounds)) if large else 1
    with threadpool_limits(1, user_api="blas"):
        if threads < 2:
            yield from map(chunk_values, bounds)
            return
        with ThreadPoolExecutor(threads) as pool:
            # a few chunks ahead of the one consumed, so that finished chunks don't pile up
            pending = deque()
            for bound in bounds:
                pending.append(pool.submit(chunk_values, bound))
                if len(pending) > 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


_THREADED_PAIRS = 10_000


def _blas_threads() -> int:
    """Threads BLAS would use here (the fewest of its libraries'), at least one."""
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(1, min(counts, default=1))


def searchlight_rdms(patterns, neighbourhoods, metric: str = "correlation", *, chunk_size: int = 4096,
                     memory_gb: float | None = None, runs=None, conditions=None) -> np.ndarray:
    """The RDM of every searchlight neighbourhood.

    Parameters
    ----------
    patterns : array (n_images, n_vertices)
    neighbourhoods : sparse matrix (n_centers, n_vertices)
        Row c marks the vertices in centre c's disk (e.g. from `brainprobe.roi`).
    metric : {"correlation", "cosine", "euclidean", "squared_euclidean", "crossnobis"}
        ``crossnobis``: each disk's `brainprobe.rsa.rdm` crossnobis RDM (leave-one-run-out,
        identity noise, divided by the disk's vertices); ``patterns`` are then single trials.
    chunk_size : int
        At most this many centres per chunk; the memory budget may choose fewer.
    memory_gb : float, optional
        Memory a chunk may take, in GiB (default: `brainprobe.stats.memory_budget`). The
        returned array itself (n_centers x n_pairs) is the caller's: at scale, use
        `searchlight_kind_similarity`, which keeps only one number per centre.
    runs, conditions : array (n_trials,), crossnobis only
        Run (fold) and condition (image) of each row of ``patterns``; the RDMs' rows are the
        sorted unique conditions, as `rdm`'s.

    Returns
    -------
    array (n_centers, n_pairs)
        Condensed RDMs; NaN where a disk's pattern is constant for some image.
    """
    if metric == "crossnobis":
        return _searchlight_crossnobis(patterns, neighbourhoods, runs, conditions, chunk_size, memory_gb)
    if metric not in _SEARCHLIGHT_METRICS:
        raise ValueError(f"metric: expected one of {_SEARCHLIGHT_METRICS}, found {metric!r}")
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim != 2 or not np.isfinite(patterns).all():
        raise ValueError(f"patterns: expected a finite (n_images, n_vertices) array, found shape {patterns.shape}")
    members = _membership(neighbourhoods, patterns.shape[1])
    return np.concatenate([
        _chunk_rdms(patterns, members[start:stop], metric)
        for start, stop in _centre_chunks(members, len(patterns), memory_budget_bytes(memory_gb), chunk_size)
    ])


def _fold_means(patterns: np.ndarray, runs, conditions) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) condition means (n_conditions, n_vertices) per left-out run, conditions sorted."""
    runs, conditions = np.asarray(runs), np.asarray(conditions)
    if len(runs) != len(patterns) or len(conditions) != len(patterns):
        raise ValueError(f"runs and conditions: expected {len(patterns)} labels each (one per row of patterns), "
                         f"found {len(runs)} and {len(conditions)}")
    labels = np.unique(conditions)
    if len(np.unique(runs)) < 2:
        raise ValueError("runs: crossnobis needs at least two runs (independent partitions)")

    def means(mask):
        onehot = (conditions[mask][None, :] == labels[:, None]).astype(np.float64)
        counts = onehot.sum(axis=1, keepdims=True)
        if (counts == 0).any():
            absent = labels[counts.ravel() == 0][:5].tolist()
            raise ValueError(f"runs: conditions {absent} are missing from a fold; every condition must appear in every run")
        return (onehot / counts) @ patterns[mask]

    return [(means(runs != run), means(runs == run)) for run in np.unique(runs)]


def _searchlight_crossnobis(patterns, neighbourhoods, runs, conditions, chunk_size, memory_gb) -> np.ndarray:
    """Crossnobis RDM of every disk: the per-vertex terms of the leave-one-run-out distance, summed
    over each disk's vertices in one sparse product (as `_chunk_rdms` sums cross products)."""
    if runs is None or conditions is None:
        raise ValueError("metric='crossnobis' needs runs= and conditions= (one label per row of patterns)")
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim != 2 or not np.isfinite(patterns).all():
        raise ValueError(f"patterns: expected a finite (n_trials, n_vertices) array, found shape {patterns.shape}")
    folds = _fold_means(patterns, runs, conditions)
    members = _membership(neighbourhoods, patterns.shape[1])
    n_conditions = len(folds[0][0])
    rows, cols = np.triu_indices(n_conditions, 1)
    parts = []
    # per fold, a (n_pairs x vertices used) difference product: as much memory as two kinds' RDMs
    for start, stop in _centre_chunks(members, n_conditions, memory_budget_bytes(memory_gb), chunk_size, 2):
        chunk = members[start:stop]
        used = np.unique(chunk.indices)
        terms = np.zeros((len(rows), len(used)))
        for train, test in folds:  # (a - b) in the training runs times (a - b) in the left-out run
            terms += (train[rows][:, used] - train[cols][:, used]) * (test[rows][:, used] - test[cols][:, used])
        with np.errstate(invalid="ignore", divide="ignore"):
            parts.append((chunk[:, used] @ terms.T) / (len(folds) * np.asarray(chunk.sum(axis=1))))
    return np.concatenate(parts)


def searchlight_kind_similarity(
    patterns,
    stimuli,
    neighbourhoods,
    *,
    reference: str = "RE",
    others: Sequence[str] = ("AN", "AI"),
    metric: str = "correlation",
    method: str = "spearman",
    n_perm: int = 0,
    alternative: str = "greater",
    seed=0,
    chunk_size: int = 2048,
    progress: bool | None = None,
    memory_gb: float | None = None,
    n_jobs: int = 1,
    device=None,
) -> pd.DataFrame:
    """RE-AN and RE-AI similarity in every searchlight disk: one cortical map per pair.

    Parameters
    ----------
    patterns : array (n_rows, n_vertices)
        Rows aligned with ``stimuli``'s rows (one pattern per image). float32 is kept as it is
        (half the memory at 10,000 images) and each disk's values taken as float64.
    stimuli : StimulusSet or DataFrame with image_id, kind, source_id
    neighbourhoods : sparse matrix (n_centers, n_vertices)
    reference, others, metric, method
        As in `kind_similarity`. At scale (1,000 images and more) use ``method="pearson"`` with
        metric correlation, cosine or squared_euclidean on a CPU: with ``n_perm=0`` its value per
        disk comes from (k x k) Gram matrices of the disk's k vertices, no RDM formed (the same
        numbers as correlating the RDMs, to rounding): both fs_LR 32k hemispheres, 3 mm disks,
        1,000 images per kind took 56 CPU s, against 584 CPU s for correlating the RDMs and
        1,020 CPU s (15.7 ms a disk) for Spearman; 10,000 images (float32) 800 CPU s
        (``benchmarks/bench_searchlight_scale.py``). Spearman (the default)
        has to sort every disk's three RDMs: with ``n_perm=0`` on a GPU the disks are batched and
        sorted there; on a CPU each RDM is sorted once, the reference's sorted positions carried through
        the others' sorts, and chunks of centres run in
        as many threads as BLAS would use (from about 150 images): 531 s wall on two cores at
        1,000 images (every centre timed). The Euclidean distance
        (a square root) has no Gram identity: with Pearson it takes the per-disk RDM path on a CPU.
    n_perm : int
        Label permutations per centre (0: none). All centres share the same permutations, so
        ``p_fwe`` (maximum statistic over centres) controls the family-wise error.
        Costs n_centers x n_perm x n_pairs operations: consider a GPU or a subset of centres.
    alternative : str
    seed : int, Generator or None
    chunk_size : int
        At most this many centres per chunk; the memory budget may choose fewer.
    progress : bool, optional
    memory_gb : float, optional
        Memory a chunk of centres (their RDMs and permutation gathers) may take, in GiB (default:
        `brainprobe.stats.memory_budget`). Results do not depend on it.
    n_jobs : int
        Blocks of centres run in parallel through joblib (on a Dask cluster inside
        ``joblib.parallel_config(backend="dask")``). All blocks share the relabelings, so
        ``p_fwe`` stays family-wise over every centre and the table is the same for any n_jobs.
        Without permutations a block's chunks also run in threads, as many as BLAS would use
        (a joblib worker's share of the cores), so ``n_jobs`` is for more machines, not more cores.
    device : str or torch.device, optional
        Where the batched path (``n_perm=0``; not Kendall's tau-a) runs: CUDA when present, else
        the CPU (`brainprobe._device.resolve_device`), where only Pearson on correlation, cosine or
        squared_euclidean takes it (the other methods' per-disk path is faster there). The
        permutation path runs on the CPU.

    Returns
    -------
    DataFrame
        One row per (center, pair): ``center``, ``pair``, ``similarity``, ``n_vertices``,
        and with permutations ``p_perm``, ``p_fwe``.
    """
    table = _table_of(stimuli)
    patterns = np.asarray(patterns)
    if not np.issubdtype(patterns.dtype, np.floating):
        patterns = patterns.astype(np.float64)
    if patterns.ndim != 2 or len(patterns) != len(table):
        raise ValueError(f"patterns: expected ({len(table)}, n_vertices), one row per table row, found {patterns.shape}")
    sources, rows = align_kinds(table, reference, others)
    members = _membership(neighbourhoods, patterns.shape[1])
    n_centers = members.shape[0]
    sizes = np.diff(members.indptr)
    perms, exact = permutation_set(len(sources), n_perm, as_generator(seed)) if n_perm else (None, False)
    settings = dict(reference=reference, others=others, metric=metric, method=method, perms=perms,
                    alternative=alternative, chunk_size=chunk_size, device=device,
                    memory_gb=memory_budget_bytes(memory_gb) / 2**30)  # resolved here: workers don't share ours
    n_blocks = int(min(max(1, n_jobs), n_centers))
    if n_blocks == 1:
        parts = [_searchlight_block(patterns, rows, members, progress=progress, **settings)]
    else:
        from joblib import Parallel, delayed

        # blocks of centres run anywhere (joblib's backend: processes, or a Dask cluster inside
        # joblib.parallel_config(backend="dask")); each sees the same relabelings, so the
        # family-wise null is the maximum of the blocks' maxima and the table is the same
        bounds = np.linspace(0, n_centers, n_blocks + 1).astype(int)
        parts = Parallel(n_jobs=n_blocks)(
            delayed(_searchlight_block)(patterns, rows, members[first:last], progress=False, **settings)
            for first, last in zip(bounds[:-1], bounds[1:], strict=True))
    similarity = {other: np.concatenate([part[0][other] for part in parts]) for other in others}
    p_values = {other: np.concatenate([part[1][other] for part in parts]) for other in others}
    null_max = {other: np.max([part[2][other] for part in parts], axis=0) for other in others}
    frames = []
    for other in others:
        frame = pd.DataFrame({"center": np.arange(n_centers), "pair": f"{reference}-{other}",
                              "similarity": similarity[other], "n_vertices": sizes})
        if n_perm:
            frame["p_perm"] = p_values[other]
            frame["p_fwe"] = fwe_from_null_maxima(_oriented(similarity[other], alternative), null_max[other],
                                                  exact=exact)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
