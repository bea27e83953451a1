"""Permutation and bootstrap machinery: index draws, p-values, confidence intervals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._correlation import _check_method, correlate_rows, normalize_rows

__all__ = [
    "as_generator",
    "permutation_indices",
    "pair_permutation_indices",
    "p_from_null",
    "rdm_permutation_test",
    "PermutationResult",
    "bootstrap_indices",
    "bootstrap",
    "percentile_ci",
    "bootstrap_p",
    "check_resampling",
]

ALTERNATIVES = ("greater", "less", "two-sided")


def as_generator(seed) -> np.random.Generator:
    """A numpy Generator from a seed, a Generator (returned as is) or None (fresh entropy)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


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


def p_from_null(observed, null, alternative: str = "greater") -> np.ndarray:
    """Permutation p-value, (1 + #null at least as extreme) / (1 + n_null).

    Parameters
    ----------
    observed : array (...,)
    null : array (..., n_null)
    alternative : {"greater", "less", "two-sided"}
        Two-sided compares absolute values (for statistics symmetric about 0 under the null).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {ALTERNATIVES}, found {alternative!r}")
    observed = np.asarray(observed, float)[..., None]
    null = np.asarray(null, float)
    # values equal up to float rounding (a different summation order) count as ties
    tolerance = 1e-12 * np.maximum(1.0, np.abs(observed))
    if alternative == "greater":
        extreme = null >= observed - tolerance
    elif alternative == "less":
        extreme = null <= observed + tolerance
    else:
        extreme = np.abs(null) >= np.abs(observed) - tolerance
    return (1.0 + extreme.sum(axis=-1)) / (1.0 + null.shape[-1])


@dataclass
class PermutationResult:
    """Observed statistics, their permutation null and p-values.

    Attributes
    ----------
    observed : array (n_sets,)
    null : array (n_sets, n_perm)
    p : array (n_sets,)
    """

    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray


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
) -> PermutationResult:
    """Test the similarity of two RDMs by shuffling the item labels of the second.

    Ranks and norms are computed once; each permutation only gathers entries of the
    condensed vector (`pair_permutation_indices`) and takes a dot product, so no RDM is rebuilt.
    Every pair of RDMs (row k of ``rdms_a`` with row k of ``rdms_b``) sees the same permutations.

    Parameters
    ----------
    rdms_a, rdms_b : array (n_sets, n_pairs) or (n_pairs,)
        Condensed RDMs over the same n items, in the same item order.
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
    n_perm : int
    seed : int, Generator or None
    alternative : {"greater", "less", "two-sided"}
    chunk : int
        Permutations gathered at once (bounds memory at n_sets x chunk x n_pairs).
    permutations : int array (n_perm, n_items), optional
        Use these permutations instead of drawing ``n_perm`` from ``seed`` (to share one set of
        permutations across calls, e.g. searchlight chunks, for max-statistic corrections).

    Returns
    -------
    PermutationResult
        p = (1 + #(null >= observed)) / (1 + n_perm) for ``alternative="greater"``.
    """
    method = _check_method(method)
    a, b = np.atleast_2d(np.asarray(rdms_a, float)), np.atleast_2d(np.asarray(rdms_b, float))
    if a.shape != b.shape:
        raise ValueError(f"rdms_a and rdms_b differ in shape: {a.shape} vs {b.shape}")
    n_pairs = a.shape[1]
    n_items = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n_items * (n_items - 1) // 2 != n_pairs:
        raise ValueError(f"{n_pairs} entries is not a condensed RDM (n (n - 1) / 2 for some n)")
    perms = permutation_indices(n_items, n_perm, seed) if permutations is None else np.atleast_2d(permutations)
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
        for start in range(0, n_perm, chunk):
            index = pair_permutation_indices(perms[start:start + chunk])  # (c, n_pairs)
            null[:, start:start + len(index)] = np.einsum("si,sci->sc", za, zb[:, index])
    return PermutationResult(observed, null, p_from_null(observed, null, alternative))


def _square_signs(rows: np.ndarray) -> np.ndarray:
    # sign(x_k - x_l) for all k, l: (n_sets, n, n)
    return np.sign(rows[:, :, None] - rows[:, None, :])


def bootstrap_indices(n_items: int, n_boot: int, seed=None, *, fraction: float = 1.0,
                      replace: bool = True) -> np.ndarray:
    """Resampling indices: int array (n_boot, k), k = round(fraction * n_items).

    ``replace=True`` is the classic bootstrap; ``replace=False`` with ``fraction=0.8`` is the
    subsampling the study used over vertices (80% without replacement).
    """
    check_resampling(n_boot=n_boot)
    if not 0 < fraction <= 1 and replace is False:
        raise ValueError(f"fraction: expected (0, 1] without replacement, found {fraction}")
    rng = as_generator(seed)
    size = max(1, int(round(fraction * n_items)))
    if replace:
        return rng.integers(0, n_items, size=(n_boot, size))
    return np.argsort(rng.random((n_boot, n_items)), axis=1)[:, :size]


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
        Resamples passed to ``statistic`` at once (bounds memory).
    progress : tqdm-like, optional
        Updated with the number of finished resamples.

    Returns
    -------
    array (n_boot, ...)
    """
    indices = bootstrap_indices(n_items, n_boot, seed, fraction=fraction, replace=replace)
    parts = []
    for start in range(0, n_boot, batch_size):
        parts.append(np.asarray(statistic(indices[start:start + batch_size])))
        if progress is not None:
            progress.update(len(parts[-1]))
    return np.concatenate(parts)


def percentile_ci(samples: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile confidence interval of bootstrap ``samples`` along ``axis``: (low, high)."""
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), found {level}")
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=axis)
    return low, high


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
