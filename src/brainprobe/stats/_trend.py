"""Mann-Kendall trend test and Sen's slope."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm

__all__ = ["mann_kendall", "MannKendallResult", "mann_kendall_exact_distribution", "sens_slope"]

_EXACT_MAX_N_TIES = 9  # enumeration of n! orderings when there are ties
_EXACT_MAX_N_REPORTED = 60  # p_exact is reported beside the normal p up to this n (no ties)


@dataclass
class MannKendallResult:
    """Result of `mann_kendall`.

    Attributes
    ----------
    s : int
        Sum over i < j of sign(x_j - x_i).
    tau : float
        Kendall's tau-a of x against time, s / (n (n - 1) / 2).
    var_s : float
        Variance of s under H0, with the tie correction.
    z : float
        Normal score with continuity correction, (S - sign(S)) / sqrt(var_s).
    p : float
        The p-value of ``method``.
    method : str
        Which p-value ``p`` is: ``"exact"`` (S's exact null distribution) or ``"normal"`` (the
        normal approximation with continuity correction, as pymannkendall and most papers,
        paper 001 among them, compute it).
    p_exact : float
        The exact p-value (NaN when there are ties and n > 9, where it is not enumerated).
    p_normal : float
        The normal-approximation p-value.
    alternative : str
    slope, intercept : float
        Sen's slope (median pairwise slope) and the intercept median(x) - slope * median(t).
    n : int
    trend : str
        ``"increasing"``, ``"decreasing"`` or ``"no trend"`` at ``alpha``.
    """

    s: int
    tau: float
    var_s: float
    z: float
    p: float
    method: str
    p_exact: float
    p_normal: float
    alternative: str
    slope: float
    intercept: float
    n: int
    trend: str

    def to_dict(self) -> dict:
        return asdict(self)


def _s_statistic(x: np.ndarray) -> int:
    i, j = np.triu_indices(len(x), 1)
    return int(np.sign(x[j] - x[i]).sum())


def _variance_s(x: np.ndarray) -> float:
    n = len(x)
    _, counts = np.unique(x, return_counts=True)
    ties = counts[counts > 1]
    return (n * (n - 1) * (2 * n + 5) - np.sum(ties * (ties - 1) * (2 * ties + 5))) / 18.0


@lru_cache(maxsize=64)
def _mahonian(n: int) -> np.ndarray:
    """Counts of permutations of n distinct items by number of inversions (0 .. n(n-1)/2)."""
    counts = np.array([1], dtype=object)  # Python ints: exact for any n
    for m in range(2, n + 1):
        new = np.zeros(len(counts) + m - 1, dtype=object)
        for shift in range(m):
            new[shift:shift + len(counts)] += counts
        counts = new
    return counts


def mann_kendall_exact_distribution(x) -> tuple[np.ndarray, np.ndarray]:
    """Exact null distribution of S for the values in ``x`` (all orderings equally likely).

    Without ties S = n(n-1)/2 - 2 * inversions, whose counts (Mahonian numbers) come from a
    recursion, so any n is exact and fast. With ties every ordering of the values is enumerated
    (n <= 9).

    Returns
    -------
    values : int array
        Possible values of S, ascending.
    probabilities : float array
    """
    x = np.asarray(x, float)
    n = len(x)
    if len(np.unique(x)) == n:
        counts = _mahonian(n)
        max_s = n * (n - 1) // 2
        values = max_s - 2 * np.arange(len(counts))
        total = sum(counts)
        order = np.argsort(values)
        return values[order], np.array([c / total for c in counts], dtype=float)[order]
    if n > _EXACT_MAX_N_TIES:
        raise ValueError(f"exact distribution with ties is enumerated for n <= {_EXACT_MAX_N_TIES}; found n = {n}")
    i, j = np.triu_indices(n, 1)
    orders = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    arranged = x[orders]
    s_values = np.sign(arranged[:, j] - arranged[:, i]).sum(axis=1).astype(int)
    values, counts = np.unique(s_values, return_counts=True)
    return values, counts / counts.sum()


def sens_slope(x, t=None) -> tuple[float, float]:
    """Sen's slope (median of pairwise slopes) and intercept median(x) - slope * median(t)."""
    x = np.asarray(x, float)
    t = np.arange(len(x), dtype=float) if t is None else np.asarray(t, float)
    i, j = np.triu_indices(len(x), 1)
    slope = float(np.median((x[j] - x[i]) / (t[j] - t[i])))
    return slope, float(np.median(x) - slope * np.median(t))


def _normal_p(z: float, alternative: str) -> float:
    if alternative == "increasing":
        return float(norm.sf(z))
    if alternative == "decreasing":
        return float(norm.cdf(z))
    return float(2 * norm.sf(abs(z)))


def _exact_p(x: np.ndarray, s: int, alternative: str) -> float:
    values, probabilities = mann_kendall_exact_distribution(x)
    if alternative == "increasing":
        return float(probabilities[values >= s].sum())
    if alternative == "decreasing":
        return float(probabilities[values <= s].sum())
    return float(probabilities[np.abs(values) >= abs(s)].sum())


def mann_kendall(x, *, alternative: str = "two-sided", exact: bool | str = "auto", alpha: float = 0.05) -> MannKendallResult:
    """Mann-Kendall test for a monotonic trend in a sequence (e.g. a statistic over layers).

    Parameters
    ----------
    x : array (n,)
        Values in order (layer 1 .. layer n). NaN is not allowed.
    alternative : {"two-sided", "increasing", "decreasing"}
        ``"greater"``/``"less"`` are accepted as synonyms of increasing/decreasing.
    exact : bool or "auto"
        Which p-value is ``p``: the exact null distribution of S (see
        `mann_kendall_exact_distribution`) or the normal approximation with tie-corrected
        variance and continuity correction. ``"auto"``: exact for n <= 10 without ties and
        n <= 9 with ties. Both are always reported (``p_exact``, ``p_normal``).
    alpha : float
        Level used only for the ``trend`` label.

    Returns
    -------
    MannKendallResult

    Examples
    --------
    >>> from brainprobe.stats import mann_kendall
    >>> result = mann_kendall([0.1, 0.2, 0.25, 0.4, 0.38, 0.5, 0.6, 0.7])
    >>> result.s, round(result.p, 4), result.method
    (26, 0.0004, 'exact')
    >>> round(result.p_normal, 4)  # the normal approximation, as pymannkendall gives it
    0.002
    """
    try:
        x = np.asarray(x, float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"x: expected numbers, found {type(error).__name__}: {error}") from None
    if x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x: expected a 1-D sequence of at least 3 values, found shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x: contains NaN or infinite values")
    alternative = {"greater": "increasing", "less": "decreasing"}.get(alternative, alternative)
    if alternative not in ("two-sided", "increasing", "decreasing"):
        raise ValueError(f"alternative: expected two-sided, increasing or decreasing, found {alternative!r}")
    n = len(x)
    s = _s_statistic(x)
    var_s = _variance_s(x)
    z = 0.0 if s == 0 or var_s == 0 else (s - np.sign(s)) / np.sqrt(var_s)
    has_ties = len(np.unique(x)) < n
    if exact == "auto":
        exact = n <= (_EXACT_MAX_N_TIES if has_ties else 10)
    if exact not in (True, False):
        raise ValueError(f"exact: expected True, False or 'auto', found {exact!r}")
    if exact and has_ties and n > _EXACT_MAX_N_TIES:
        raise ValueError(f"exact: the exact distribution with ties is enumerated for n <= {_EXACT_MAX_N_TIES}; "
                         f"found n = {n}; use exact=False")
    p_normal = min(1.0, _normal_p(z, alternative))
    enumerable = n <= (_EXACT_MAX_N_TIES if has_ties else _EXACT_MAX_N_REPORTED)
    p_exact = min(1.0, _exact_p(x, s, alternative)) if enumerable or exact else float("nan")
    p, method = (p_exact, "exact") if exact else (p_normal, "normal")
    slope, intercept = sens_slope(x)
    trend = "no trend"
    if p < alpha:
        trend = "increasing" if s > 0 else "decreasing" if s < 0 else "no trend"
    return MannKendallResult(
        s=s, tau=s / (n * (n - 1) / 2), var_s=float(var_s), z=float(z), p=p, method=method,
        p_exact=p_exact, p_normal=p_normal, alternative=alternative, slope=slope, intercept=intercept, n=n,
        trend=trend,
    )
