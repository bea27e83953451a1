"""Mutual information between two labelings, with bias corrections (paper 003).

Entropies are estimated from counts; the mutual information is H(X) + H(Y) - H(X, Y). The
plug-in estimate is biased upward when bins are few samples each, so four estimators are
offered: the plug-in, Miller-Madow, a shuffle correction, and the NSB estimator of Nemenman,
Shafee & Bialek (2002) that paper 003 used (through the ``ndd`` package; written here from the
published formulas so nothing has to be installed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln, polygamma

from ._resampling import as_generator

__all__ = ["mutual_information", "nsb_entropy", "MI_CORRECTIONS"]

MI_CORRECTIONS = ("nsb", "miller_madow", "shuffle", "none")
_LN2 = np.log(2.0)


def _plugin_entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(float)
    p = counts / counts.sum()
    return -float(np.sum(p * np.log(p)))


def _nsb_log_weight(beta: np.ndarray, occupied: np.ndarray, n: float, k: int) -> np.ndarray:
    """log of p(counts | beta) x d xi / d beta x beta, up to a constant, on a grid of beta (the
    trailing beta: the grid is uniform in log beta)."""
    kb = k * beta
    likelihood = gammaln(kb) - gammaln(n + kb) + (gammaln(occupied[None, :] + beta[:, None])
                                                   - gammaln(beta[:, None])).sum(axis=1)
    prior = np.log(k * polygamma(1, kb + 1) - polygamma(1, beta + 1))
    return likelihood + prior + np.log(beta)


def _posterior_mean_entropy(beta: np.ndarray, occupied: np.ndarray, n: float, k: int) -> np.ndarray:
    """E[H | counts, beta] in nats under a symmetric Dirichlet(beta) prior over ``k`` bins."""
    total = n + k * beta
    occupied_terms = ((occupied[None, :] + beta[:, None]) * digamma(occupied[None, :] + beta[:, None] + 1)).sum(axis=1)
    empty_terms = (k - len(occupied)) * beta * digamma(beta + 1)
    return digamma(total + 1) - (occupied_terms + empty_terms) / total


def nsb_entropy(counts, n_bins: int | None = None) -> float:
    """NSB estimate of the entropy (nats) of a discrete distribution from its counts.

    A mixture of symmetric Dirichlet priors over the ``n_bins`` probabilities, weighted so that
    the prior over the entropy is flat (Nemenman, Shafee & Bialek 2002); the estimate is the
    posterior mean entropy, integrated numerically over the concentration beta.

    Parameters
    ----------
    counts : array of int (n_observed_bins,)
        Counts per bin (zeros allowed).
    n_bins : int, optional
        K, the number of possible bins (default: ``len(counts)``); bins never observed count.

    Returns
    -------
    float
        Entropy in nats.
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 1 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts: expected a 1-D array of non-negative counts")
    k = len(counts) if n_bins is None else int(n_bins)
    occupied = counts[counts > 0]
    if k < len(occupied):
        raise ValueError(f"n_bins: {k} is fewer than the {len(occupied)} occupied bins")
    n = float(occupied.sum())
    if k <= 1 or n == 0:
        return 0.0
    # coarse grid in log beta, then a fine grid where the posterior has its mass
    grid = np.exp(np.linspace(np.log(1e-7), np.log(1e7), 2801))
    log_weight = _nsb_log_weight(grid, occupied, n, k)
    keep = np.nonzero(log_weight > log_weight.max() - 40)[0]
    low, high = grid[max(keep[0] - 1, 0)], grid[min(keep[-1] + 1, len(grid) - 1)]
    grid = np.exp(np.linspace(np.log(low), np.log(high), 4001))
    log_weight = _nsb_log_weight(grid, occupied, n, k)
    weight = np.exp(log_weight - log_weight.max())
    return float(np.sum(weight * _posterior_mean_entropy(grid, occupied, n, k)) / np.sum(weight))


def _entropies(x: np.ndarray, y: np.ndarray, correction: str) -> tuple[float, float, float]:
    """H(X), H(Y), H(X, Y) in nats for integer codes ``x``, ``y``."""
    kx, ky = int(x.max()) + 1, int(y.max()) + 1
    joint = np.bincount(x * ky + y, minlength=kx * ky)
    marginals = (np.bincount(x, minlength=kx), np.bincount(y, minlength=ky))
    if correction == "nsb":
        return nsb_entropy(marginals[0]), nsb_entropy(marginals[1]), nsb_entropy(joint)
    values = [_plugin_entropy(c) for c in (*marginals, joint)]
    if correction == "miller_madow":
        n = len(x)
        values = [v + (np.count_nonzero(c) - 1) / (2 * n) for v, c in zip(values, (*marginals, joint), strict=True)]
    return values[0], values[1], values[2]


def _mi_bits(x, y, correction) -> float:
    hx, hy, hxy = _entropies(x, y, correction)
    return (hx + hy - hxy) / _LN2


def mutual_information(labels, clusters, *, correction: str = "nsb", n_shuffles: int = 200, seed=0) -> dict:
    """Mutual information (bits) between true labels and found clusters, bias-corrected.

    Parameters
    ----------
    labels, clusters : array (n,)
    correction : {"nsb", "miller_madow", "shuffle", "none"}
        ``nsb`` (paper 003): each entropy by `nsb_entropy`, with K the number of label values,
        of cluster values, and their product for the joint. ``miller_madow``: each plug-in
        entropy gets (occupied bins - 1) / (2 n). ``shuffle``: the plug-in MI minus its mean
        over ``n_shuffles`` random pairings (the MI expected by chance). ``none``: plug-in.
        Every estimate is capped at the labels' entropy, which the MI cannot exceed.
    n_shuffles : int
    seed : int or numpy.random.Generator

    Returns
    -------
    dict
        ``mi`` (the estimate), ``mi_plugin``, ``upper_bound`` (the labels' plug-in entropy),
        ``chance`` (mean shuffled plug-in MI; ``shuffle`` only, else NaN), ``n``, ``correction``.
    """
    if correction not in MI_CORRECTIONS:
        raise ValueError(f"correction: expected one of {MI_CORRECTIONS}, found {correction!r}")
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(f"labels and clusters: expected equal 1-D arrays, found {labels.shape} and {clusters.shape}")
    if len(labels) == 0:
        raise ValueError("labels: expected at least one observation")
    x, y = pd.factorize(labels)[0], pd.factorize(clusters)[0]
    plugin = _mi_bits(x, y, "none")
    upper = _plugin_entropy(np.bincount(x)) / _LN2
    chance = float("nan")
    if correction == "shuffle":
        rng = as_generator(seed)
        chance = float(np.mean([_mi_bits(x, rng.permutation(y), "none") for _ in range(n_shuffles)]))
        value = plugin - chance
    else:
        value = _mi_bits(x, y, correction)
    return {"mi": min(value, upper), "mi_plugin": plugin, "upper_bound": upper, "chance": chance, "n": len(x),
            "correction": correction}
