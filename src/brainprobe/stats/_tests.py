"""Paired t-tests and multiple-comparison corrections."""

from __future__ import annotations

import numpy as np
from scipy import stats as _scipy_stats

from ._resampling import p_from_null

__all__ = ["paired_ttest", "two_sample_ttest", "fdr_bh", "fwe_max_statistic", "fwe_from_null_maxima"]


def paired_ttest(a, b, *, alternative: str = "two-sided") -> dict:
    """Paired t-test of a - b (scipy's ``ttest_rel``), returned as a table row.

    Parameters
    ----------
    a, b : array (n,)
        Paired measurements (e.g. proportions of layers 1-2 vs 7-8 per subject and trial).

    Returns
    -------
    dict with ``mean_difference``, ``t``, ``df``, ``p``, ``n``.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b: expected paired 1-D arrays of equal length, found {a.shape} and {b.shape}")
    result = _scipy_stats.ttest_rel(a, b, alternative=alternative)
    return {"mean_difference": float(np.mean(a - b)), "t": float(result.statistic), "df": len(a) - 1,
            "p": float(result.pvalue), "n": len(a)}


def fdr_bh(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), same shape as the input; NaN stays NaN."""
    p = np.asarray(p_values, float)
    flat = p.ravel()
    valid = ~np.isnan(flat)
    q = np.full_like(flat, np.nan)
    values = flat[valid]
    m = len(values)
    if m:
        order = np.argsort(values)
        scaled = values[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.minimum(adjusted, 1.0)
        q[valid] = out
    return q.reshape(p.shape)


def fwe_max_statistic(observed, null, *, alternative: str = "greater", exact: bool = False) -> np.ndarray:
    """Family-wise error corrected p-values by the maximum statistic over tests.

    Parameters
    ----------
    observed : array (n_tests,)
    null : array (n_tests, n_perm)
        Null statistics from the same permutations for every test.
    alternative : {"greater", "two-sided"}
    exact : bool
        The null holds every relabeling, the identity included (see `p_from_null`).

    Returns
    -------
    array (n_tests,)
        (1 + #(max over tests of null >= observed)) / (1 + n_perm), or without the 1s when exact.
    """
    observed = np.asarray(observed, float)
    null = np.asarray(null, float)
    if alternative == "two-sided":
        observed, null = np.abs(observed), np.abs(null)
    elif alternative != "greater":
        raise ValueError(f"alternative: expected 'greater' or 'two-sided', found {alternative!r}")
    return fwe_from_null_maxima(observed, np.nanmax(null, axis=0), exact=exact)


def fwe_from_null_maxima(observed, null_maxima, *, exact: bool = False) -> np.ndarray:
    """FWE-corrected p-values from the maximum over tests of each permutation's statistic.

    For when the nulls are too large to keep (searchlights): accumulate the per-permutation
    maximum over chunks of tests, then call this. NaN observations get NaN.

    Parameters
    ----------
    observed : array (n_tests,)
    null_maxima : array (n_perm,)
    exact : bool
        The permutations were the complete enumeration (see `p_from_null`).
    """
    observed = np.asarray(observed, float)
    null_maxima = np.asarray(null_maxima, float)
    p = p_from_null(observed, null_maxima[None, :], "greater", exact=exact)
    return np.where(np.isnan(observed), np.nan, p)


def two_sample_ttest(a, b, *, equal_var: bool = True, alternative: str = "two-sided"):
    """Vectorized two-sample t-test along axis 0 (scipy's ``ttest_ind``).

    Parameters
    ----------
    a : array (n_a, n_tests)
    b : array (n_b, n_tests)

    Returns
    -------
    t, p : arrays (n_tests,)
    """
    result = _scipy_stats.ttest_ind(np.asarray(a, float), np.asarray(b, float), axis=0,
                                    equal_var=equal_var, alternative=alternative)
    return np.asarray(result.statistic), np.asarray(result.pvalue)
