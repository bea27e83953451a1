"""Comparing RDMs."""

from __future__ import annotations

import numpy as np

from .._internal import correlate_pairwise
from ..stats import CORRELATION_METHODS

__all__ = ["COMPARE_METHODS", "compare"]

COMPARE_METHODS = CORRELATION_METHODS


def compare(a, b, method: str = "spearman"):
    """Similarity of every RDM in ``a`` with every RDM in ``b``.

    Parameters
    ----------
    a : array (n_pairs,) or (n_a, n_pairs)
        Condensed RDMs.
    b : array (n_pairs,) or (n_b, n_pairs)
    method : {"spearman", "pearson", "kendall_tau_a", "cosine"}
        Spearman's rho (average ranks for ties), Pearson's r, Kendall's tau-a (no tie
        adjustment) or cosine similarity; all as in rsatoolbox's ``compare``.

    Returns
    -------
    float when both are single RDMs, else array (n_a, n_b).

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.rsa import compare
    >>> x = np.arange(10.0)
    >>> compare(x, x ** 2)
    1.0
    """
    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    for name, value in (("a", a_arr), ("b", b_arr)):
        if value.ndim not in (1, 2):
            raise ValueError(f"{name}: expected condensed RDMs (n_pairs,) or (n_rdms, n_pairs), found {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"{name}: contains NaN or infinite dissimilarities")
    result = correlate_pairwise(a_arr, b_arr, method)
    return float(result[0, 0]) if a_arr.ndim == 1 and b_arr.ndim == 1 else result
