"""Permutation and bootstrap machinery: index draws, p-values, confidence intervals."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._memory import memory_budget_bytes
from ._correlation import _check_method, correlate_rows, normalize_rows

__all__ = [
    "as_generator",
    "permutation_indices",
    "permutation_set",
    "is_complete_enumeration",
    "pair_permutation_indices",
    "p_from_null",
    "rdm_permutation_test",
    "PermutationResult",
    "bootstrap_indices",
    "bootstrap",
    "percentile_ci",
    "subsample_ci",
    "subsample_deviations",
    "subsample_p",
    "SUBSAMPLE_CI_METHOD",
    "bootstrap_p",
    "check_resampling",
    "direction_label",
    "TIE_TOLERANCE",
]

ALTERNATIVES = ("greater", "less", "two-sided")


def as_generator(seed) -> np.random.Generator:
    """A numpy Generator from a seed, a Generator (returned as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    parts = list(np.ravel(seed)) if isinstance(seed, (list, tuple, np.ndarray)) else [seed]
    if seed is not None and not isinstance(seed, np.random.SeedSequence) and not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p >= 0 for p in parts):
        raise ValueError(f"seed: expected an integer >= 0, a numpy Generator or None, found {seed!r}")
    return np.random.default_rng(seed)


def check_resampling(*, n_perm=None, n_boot=None, boot_fraction=None) -> None:
    """Refuse resampling settings that would give a wrong or empty answer.

    ``n_perm`` and ``n_boot`` must be integers >= 0 (0 skips the test or the interval) and
    ``boot_fraction`` a number in (0, 1]; the error names the argument and what was found.
    """
    for name, value in (("n_perm", n_perm), ("n_boot", n_boot)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected an integer >= 0 (0 skips it), found {value!r}")
    if boot_fraction is not None and not (isinstance(boot_fraction, (int, float, np.floating))
                                          and 0 < boot_fraction <= 1):
        raise ValueError(f"boot_fraction: expected a fraction in (0, 1], found {boot_fraction!r}")


def permutation_indices(n_items: int, n_perm: int, seed=None) -> np.ndarray:
    """``n_perm`` random permutations of ``range(n_items)``: int array (n_perm, n_items)."""
    check_resampling(n_perm=n_perm)
    rng = as_generator(seed)
    return rng.permuted(np.tile(np.arange(n_items), (n_perm, 1)), axis=1)


def permutation_set(n_items: int, n_perm: int, seed=None) -> tuple[np.ndarray, bool]:
    """The relabelings a permutation test uses: all of them when there are few, else a sample.

    When ``n_items! <= n_perm`` every permutation is enumerated once (the identity included), so
    the p-value is exact and can never fall below ``1 / n_items!``; otherwise ``n_perm``
    permutations are drawn at random.

    Returns
    -------
    permutations : int array (n_used, n_items)
    exact : bool
        True when ``permutations`` is the complete enumeration.

    Examples
    --------
    >>> perms, exact = permutation_set(4, 1000, seed=0)
    >>> perms.shape, exact
    ((24, 4), True)
    """
    if n_items < 1 or n_perm < 0:
        raise ValueError(f"n_items and n_perm: expected n_items >= 1 and n_perm >= 0, found {n_items}, {n_perm}")
    if n_items <= 12 and math.factorial(n_items) <= n_perm:
        return np.array(list(itertools.permutations(range(n_items))), dtype=np.int64).reshape(-1, n_items), True
    return permutation_indices(n_items, n_perm, seed), False


def is_complete_enumeration(perms: np.ndarray) -> bool:
    """Whether ``perms`` (n_perm, n_items) holds every permutation of its items exactly once."""
    perms = np.atleast_2d(perms)
    n_items = perms.shape[1]
    if n_items > 12 or len(perms) != math.factorial(n_items):
        return False
    return len(np.unique(perms, axis=0)) == len(perms)


def pair_permutation_indices(perms: np.ndarray) -> np.ndarray:
    """Where each entry of a condensed RDM goes when its items are relabelled.

    For a permutation p of n items, entry (i, j), i < j, of the permuted RDM is entry
    (p[i], p[j]) of the original. Returns int array (n_perm, n (n - 1) / 2) of condensed
    indices, so that ``rdm[..., index[k]]`` is the RDM under permutation k.
    """
    perms = np.atleast_2d(perms)
    n = perms.shape[1]
    condensed = np.full((n, n), -1, dtype=np.int64)
    rows, cols = np.triu_indices(n, 1)
    condensed[rows, cols] = np.arange(len(rows))
    condensed[cols, rows] = condensed[rows, cols]
    return condensed[perms[:, rows], perms[:, cols]]


# Null statistics within this relative distance of the observed one count as ties: the identity
# relabeling (and any relabeling that gives the same value up to a different summation order)
# must always count as "at least as extreme".
TIE_TOLERANCE = 1e-9


def p_from_null(observed, null, alternative: str = "greater", *, exact: bool = False) -> np.ndarray:
    """Permutation p-value of ``observed`` against its ``null``.

    With a random sample of relabelings (``exact=False``) it is
    (1 + #null at least as extreme) / (1 + n_null), the observed labeling counted once (Phipson
    & Smyth 2010), so it is never below 1 / (1 + n_null). With the complete enumeration
    (``exact=True``, the identity among the null) it is #null at least as extreme / n_null.

    Parameters
    ----------
    observed : array (...,)
    null : array (..., n_null)
    alternative : {"greater", "less", "two-sided"}
        Two-sided compares absolute values (for statistics symmetric about 0 under the null).
    exact : bool
        ``null`` is the statistic under every relabeling, the identity included.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {ALTERNATIVES}, found {alternative!r}")
    observed = np.asarray(observed, float)[..., None]
    null = np.asarray(null, float)
    tolerance = TIE_TOLERANCE * np.maximum(1.0, np.abs(observed))
    if alternative == "greater":
        extreme = null >= observed - tolerance
    elif alternative == "less":
        extreme = null <= observed + tolerance
    else:
        extreme = np.abs(null) >= np.abs(observed) - tolerance
    if exact:
        return extreme.sum(axis=-1) / null.shape[-1]
    return (1.0 + extreme.sum(axis=-1)) / (1.0 + null.shape[-1])


@dataclass
class PermutationResult:
    """Observed statistics, their permutation null and p-values.

    Attributes
    ----------
    observed : array (n_sets,)
    null : array (n_sets, n_perm)
    p : array (n_sets,)
    exact : bool
        The null is the complete enumeration of relabelings (p exact), not a random sample.
    """

    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray
    exact: bool = False


def rdm_permutation_test(
    rdms_a: np.ndarray,
    rdms_b: np.ndarray,
    *,
    method: str = "spearman",
    n_perm: int = 1000,
    seed=None,
    alternative: str = "greater",
    chunk: int = 250,
    permutations: np.ndarray | None = None,
    memory_gb: float | None = None,
) -> PermutationResult:
    """Test the similarity of two RDMs by shuffling the item labels of the second.

    Ranks and norms are computed once; each permutation only gathers entries of the second
    RDM (held as a square matrix, gathered row block by row block) and sums their products with
    the first, so no RDM is rebuilt and nothing of size (n_pairs x n_perm) is ever held. Every
    pair of RDMs (row k of ``rdms_a`` with row k of ``rdms_b``) sees the same permutations.
    Memory follows ``memory_gb`` (see `brainprobe.stats.memory_budget`); the null is the same,
    bit for bit, under any budget.

    Parameters
    ----------
    rdms_a, rdms_b : array (n_sets, n_pairs) or (n_pairs,)
        Condensed RDMs over the same n items, in the same item order.
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
    n_perm : int
        Relabelings; when ``n_items! <= n_perm`` all ``n_items!`` are enumerated instead
        (`permutation_set`) and the p-value is exact.
    seed : int, Generator or None
    alternative : {"greater", "less", "two-sided"}
    chunk : int
        At most this many permutations gathered at once (the memory budget may choose fewer).
    permutations : int array (n_perm, n_items), optional
        Use these permutations instead of drawing ``n_perm`` from ``seed`` (to share one set of
        permutations across calls, e.g. searchlight chunks, for max-statistic corrections).
    memory_gb : float, optional
        Memory the gathered chunks may take, in GiB; default the process-wide budget
        (`brainprobe.stats.memory_budget`). The floor is two n x n float64 matrices (10,000 images:
        1.6 GB).

    Returns
    -------
    PermutationResult
        p = (1 + #(null >= observed)) / (1 + n_perm) for ``alternative="greater"`` with sampled
        relabelings, #(null >= observed) / n! with the complete enumeration (`p_from_null`).
    """
    method = _check_method(method)
    a, b = np.atleast_2d(np.asarray(rdms_a, float)), np.atleast_2d(np.asarray(rdms_b, float))
    if a.shape != b.shape:
        raise ValueError(f"rdms_a and rdms_b differ in shape: {a.shape} vs {b.shape}")
    n_pairs = a.shape[1]
    n_items = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n_items * (n_items - 1) // 2 != n_pairs:
        raise ValueError(f"{n_pairs} entries is not a condensed RDM (n (n - 1) / 2 for some n)")
    if permutations is None:
        perms, exact = permutation_set(n_items, n_perm, seed)
    else:
        perms = np.atleast_2d(permutations)
        exact = is_complete_enumeration(perms)
    if perms.shape[1] != n_items:
        raise ValueError(f"permutations: expected rows of {n_items} items, found {perms.shape[1]}")
    n_perm = len(perms)
    null = np.empty((len(a), n_perm))
    if method == "kendall_tau_a":
        observed = correlate_rows(a, b, method)
        signs_a = _square_signs(a)
        signs_b = _square_signs(b)
        n_total = n_pairs * (n_pairs - 1)
        # permutations in small batches: each gathers an (n_pairs x n_pairs) sign matrix per set
        batch = max(1, int(2**24 // max(1, len(a) * n_pairs * n_pairs)))
        for start in range(0, n_perm, batch):
            index = pair_permutation_indices(perms[start:start + batch])  # (c, n_pairs)
            gathered = signs_b[:, index[:, :, None], index[:, None, :]]  # (n_sets, c, n_pairs, n_pairs)
            null[:, start:start + len(index)] = np.einsum("sij,scij->sc", signs_a, gathered) / n_total
    else:
        za, zb = normalize_rows(a, method), normalize_rows(b, method)
        observed = np.einsum("si,si->s", za, zb)
        null = _relabeled_products(za, zb, perms, n_items, memory_budget_bytes(memory_gb), chunk)
    return PermutationResult(observed, null, p_from_null(observed, null, alternative, exact=exact), exact)


def _to_square(condensed: np.ndarray, n_items: int) -> np.ndarray:
    """Condensed rows (n_sets, n_pairs) as symmetric matrices (n_sets, n, n) with a zero diagonal."""
    square = np.zeros((len(condensed), n_items, n_items))
    start = 0
    for i in range(n_items - 1):  # row by row: no index arrays as long as the condensed RDMs
        stop = start + n_items - 1 - i
        square[:, i, i + 1:] = condensed[:, start:stop]
        square[:, i + 1:, i] = condensed[:, start:stop]
        start = stop
    return square


def _relabeled_products(za, zb, perms, n_items, budget, max_perms):
    """null[s, k] = sum over i < j of za[s, (i, j)] zb[s, (p_k[i], p_k[j])], streamed in chunks.

    Both normalized RDMs are held as square matrices; under a relabeling p the second is
    gathered row block by row block (``zb[p[block]][:, p]``), multiplied with the first's rows
    and summed along each row, then over rows, halving the symmetric double count. Each
    relabeled row is summed on its own and the row sums in one fixed order, so the result is the
    same, bit for bit, whatever the chunk sizes the budget chooses: sets per group, relabelings
    per chunk (at most ``max_perms``), rows per block. Memory: two squares of the sets in a
    group plus the gathered block, at most about ``budget`` bytes (never less than one set's two
    squares and one row of one relabeling).
    """
    n_sets, n_perm, n = len(za), len(perms), n_items
    null = np.empty((n_sets, n_perm))
    matrix = 8 * n * n
    group = int(max(1, min(n_sets, budget // 2 // (2 * matrix))))  # the squares take at most half
    left = max(budget - 2 * group * matrix, 0)
    # a gathered row of n values (its product is taken in place) and the row sums
    # larger gathers buy no speed (they leave the cache) and, in numpy, hold the GIL for longer
    rows_at_once = max(1, min(left // (2 * 8 * n * group), _GATHER_CAP // (n * group)))
    if n >= _LARGE_RDM:
        # one relabeling of one set at a time, gathered in cache-sized row blocks: the Python loop
        # is nothing beside an n x n gather, and np.take along a row block is the fastest gather
        block = int(max(1, min(n, rows_at_once, _GATHER_ELEMENTS // n)))
        per_chunk = 1
    else:
        block = n
        per_chunk = int(max(1, min(n_perm, max_perms, rows_at_once // n)))
    for first_set in range(0, n_sets, group):
        sets = slice(first_set, first_set + group)
        square_a, square_b = _to_square(za[sets], n), _to_square(zb[sets], n)
        set_index = np.arange(len(square_b))[:, None, None, None]
        for start in range(0, n_perm, per_chunk):
            chunk = perms[start:start + per_chunk]
            sums = np.empty((len(square_a), len(chunk), n))
            if n >= _LARGE_RDM:
                for s in range(len(square_a)):
                    for top in range(0, n, block):
                        rows = slice(top, top + block)
                        gathered = np.take(square_b[s][chunk[0, rows]], chunk[0], axis=1)
                        gathered *= square_a[s, rows]
                        sums[s, 0, rows] = gathered.sum(axis=-1)
            else:  # every index advanced, so the result is C-ordered (g, c, n, n)
                gathered = square_b[set_index, chunk[None, :, :, None], chunk[None, :, None, :]]
                # C order matters: only then is each row summed along itself, in one fixed order
                gathered = np.ascontiguousarray(gathered)
                gathered *= square_a[:, None]
                sums[:] = gathered.sum(axis=-1)
            null[sets, start:start + len(chunk)] = 0.5 * sums.sum(axis=-1)
    return null


# RDMs over this many items and more are gathered one relabeling at a time, in row blocks of
# about _GATHER_ELEMENTS values; smaller ones many relabelings at once
_LARGE_RDM = 256
_GATHER_ELEMENTS = 2**18
_GATHER_CAP = 2**22


def _square_signs(rows: np.ndarray) -> np.ndarray:
    # sign(x_k - x_l) for all k, l: (n_sets, n, n)
    return np.sign(rows[:, :, None] - rows[:, None, :])


def bootstrap_indices(n_items: int, n_boot: int, seed=None, *, fraction: float = 1.0,
                      replace: bool = True) -> np.ndarray:
    """Resampling indices: int array (n_boot, k), k = round(fraction * n_items).

    ``replace=True`` is the classic bootstrap; ``replace=False`` with ``fraction=0.8`` is the
    subsampling the study used over vertices (80% without replacement).
    """
    return np.concatenate(list(_index_chunks(n_items, n_boot, seed, fraction=fraction, replace=replace)))


def _index_chunks(n_items: int, n_boot: int, seed=None, *, fraction: float = 1.0, replace: bool = True,
                  chunk: int | None = None):
    """`bootstrap_indices` drawn ``chunk`` resamples at a time (all at once when None).

    A Generator draws the same stream in pieces as in one call, so the chunks concatenate to
    exactly ``bootstrap_indices(n_items, n_boot, seed, ...)``, whatever ``chunk`` is.
    """
    check_resampling(n_boot=n_boot)
    if not 0 < fraction <= 1 and replace is False:
        raise ValueError(f"fraction: expected (0, 1] without replacement, found {fraction}")
    rng = as_generator(seed)
    size = max(1, int(round(fraction * n_items)))
    chunk = max(1, n_boot if chunk is None else int(chunk))
    if n_boot == 0:
        yield np.empty((0, size), dtype=np.int64)
        return
    for start in range(0, n_boot, chunk):
        count = min(chunk, n_boot - start)
        if replace:
            yield rng.integers(0, n_items, size=(count, size))
        else:
            yield np.argsort(rng.random((count, n_items)), axis=1)[:, :size]


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n_items: int, *, n_boot: int = 1000,
              fraction: float = 1.0, replace: bool = True, seed=None, batch_size: int = 100,
              progress=None) -> np.ndarray:
    """Evaluate a vectorized statistic on bootstrap resamples of ``n_items`` items.

    Parameters
    ----------
    statistic : callable
        Takes an int array (batch, k) of resampled item indices and returns an array
        (batch, ...) of statistics, one per resample.
    n_items, n_boot, fraction, replace, seed
        See `bootstrap_indices`.
    batch_size : int
        Resamples drawn and passed to ``statistic`` at once (bounds memory: the indices of the
        other resamples are never held). The result does not depend on it.
    progress : tqdm-like, optional
        Updated with the number of finished resamples.

    Returns
    -------
    array (n_boot, ...)
    """
    parts = []
    # indices are drawn batch by batch (never all n_boot x k at once); the stream is the same
    for indices in _index_chunks(n_items, n_boot, seed, fraction=fraction, replace=replace,
                                 chunk=batch_size):
        if not len(indices):
            continue
        parts.append(np.asarray(statistic(indices)))
        if progress is not None:
            progress.update(len(parts[-1]))
    if not parts:
        return np.asarray(statistic(np.empty((0, max(1, int(round(fraction * n_items)))), dtype=np.int64)))
    return np.concatenate(parts)


def percentile_ci(samples: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile confidence interval of bootstrap ``samples`` along ``axis``: (low, high)."""
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), found {level}")
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=axis)
    return low, high


SUBSAMPLE_CI_METHOD = "subsampling, centred on the full-sample estimate, spread rescaled by sqrt(k / (n - k))"


def subsample_ci(samples: np.ndarray, estimate, n_items: int, n_sub: int, level: float = 0.95,
                 axis: int = 0, bounds: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval from statistics on subsamples of ``n_sub`` of ``n_items`` items.

    The study resampled 80% of an ROI's vertices without replacement and took percentiles of
    the subsample statistics. Those percentiles describe a statistic on fewer items: they are
    off-centre when the statistic depends on the number of items (an RDM correlation rises with
    the number of vertices that average out noise) and too narrow, because subsamples of 80%
    share most of their items. This interval keeps the study's resampling and corrects both:

    - it is centred on the full-sample ``estimate``: the subsample quantiles are taken as
      deviations from the subsamples' median, and reflected around ``estimate`` (the basic,
      or pivotal, bootstrap interval);
    - the deviations are rescaled by ``sqrt(n_sub / (n_items - n_sub))``, the delete-d
      jackknife's variance factor (Shao & Wu 1989; for 80% subsamples a factor 2), which
      turns the spread of subsample statistics into the spread of the full-sample statistic.

    The interval always contains ``estimate``; its coverage is checked by simulation in the
    test suite (planted vertex populations, 68% and 95%). The rescaled deviations can reach past
    the range a statistic can take (with few vertices, a correlation's interval past 1);
    ``bounds`` clips the interval to that range, so no reader sees an impossible value.

    Parameters
    ----------
    samples : array (n_boot, ...)
        The statistic on each subsample (along ``axis``).
    estimate : float or array (...)
        The statistic on all ``n_items`` items.
    n_items, n_sub : int
        Items in the full sample and in each subsample (``0 < n_sub < n_items``).
    level : float
    axis : int
    bounds : (float, float), optional
        The range of the statistic, e.g. ``(-1, 1)`` for a correlation.

    Returns
    -------
    low, high : arrays (...)
    """
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), found {level}")
    deviations = subsample_deviations(np.moveaxis(np.asarray(samples, float), axis, 0), n_items, n_sub)
    tail = (1 - level) / 2 * 100
    lower_q, upper_q = np.nanpercentile(deviations, [tail, 100 - tail], axis=0)
    estimate = np.asarray(estimate, float)
    low, high = estimate - upper_q, estimate - lower_q
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return low, high


def subsample_deviations(samples: np.ndarray, n_items: int, n_sub: int) -> np.ndarray:
    """Subsample statistics as draws of (full-sample estimate - truth): ``sqrt(k / (n - k))``
    times their deviations from the subsamples' median, along axis 0 (see `subsample_ci`)."""
    if not 0 < n_sub < n_items:
        raise ValueError(f"subsample size: expected 0 < k < n = {n_items} (a fraction below 1), found k = {n_sub}; "
                         "with every item in every subsample there is no spread to measure")
    samples = np.asarray(samples, float)
    return np.sqrt(n_sub / (n_items - n_sub)) * (samples - np.nanmedian(samples, axis=0))


def subsample_p(samples: np.ndarray, estimate, n_items: int, n_sub: int, null_value: float = 0.0,
                alternative: str = "two-sided") -> np.ndarray:
    """p-value of ``estimate`` against ``null_value`` from subsample statistics along axis 0.

    The subsamples' rescaled deviations (`subsample_deviations`) stand for the sampling error of
    the estimate under H0; for H1 "greater" the p-value is
    (1 + #(deviation >= estimate - null_value)) / (1 + n_subsamples), "less" mirrors it and
    "two-sided" doubles the smaller (capped at 1). It rejects at level alpha exactly when
    `subsample_ci` at level 1 - 2 alpha (one-sided) excludes ``null_value``.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {ALTERNATIVES}, found {alternative!r}")
    deviations = subsample_deviations(samples, n_items, n_sub)
    shift = np.asarray(estimate, float) - null_value
    n = np.sum(~np.isnan(deviations), axis=0)
    greater = (1.0 + np.sum(deviations >= shift, axis=0)) / (1.0 + n)
    less = (1.0 + np.sum(deviations <= shift, axis=0)) / (1.0 + n)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return np.minimum(1.0, 2 * np.minimum(greater, less))


def bootstrap_p(samples: np.ndarray, null_value: float = 0.0, alternative: str = "greater", axis: int = 0) -> np.ndarray:
    """Bootstrap p-value of a statistic against ``null_value``.

    For ``alternative="greater"`` (H1: statistic > null_value) it is
    (1 + #(samples <= null_value)) / (1 + n_boot); "less" mirrors it; "two-sided" doubles the
    smaller tail (capped at 1).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {ALTERNATIVES}, found {alternative!r}")
    samples = np.asarray(samples, float)
    n = np.sum(~np.isnan(samples), axis=axis)
    at_or_below = (1.0 + np.sum(samples <= null_value, axis=axis)) / (1.0 + n)
    at_or_above = (1.0 + np.sum(samples >= null_value, axis=axis)) / (1.0 + n)
    if alternative == "greater":
        return at_or_below
    if alternative == "less":
        return at_or_above
    return np.minimum(1.0, 2 * np.minimum(at_or_below, at_or_above))


def direction_label(difference: float, first: str, second: str) -> str:
    """Which side of a comparison is larger, in words: ``"RE-AI > RE-AN"`` for a positive
    ``difference`` = first - second, ``"<"`` for a negative one, ``"="`` for a tie or NaN."""
    if difference > 0:
        return f"{first} > {second}"
    if difference < 0:
        return f"{first} < {second}"
    return f"{first} = {second}"
