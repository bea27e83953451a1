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
original pairs. The ranks are integers or halves, exact in float64, so the result is the
correlation of the gathered, re-ranked resample to rounding.
"""

from __future__ import annotations

import numpy as np

from .._memory import memory_budget_bytes
from ._correlation import _check_method, kendall_tau_a
from ._resampling import bootstrap_indices, check_resampling

__all__ = ["image_bootstrap_rdm_correlations", "kept_pair_counts"]

# resamples whose pair weights are built at once: at most this many bytes of them (each resample
# is then handled on its own; a larger batch only saves Python loop steps, no speed)
_MAX_BATCH_BYTES = 2**28


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


def _pair_weights(counts: np.ndarray) -> np.ndarray:
    """Copies of each original pair in each resample, c_u c_v, in condensed order: (batch, n_pairs).

    Built image row by image row, so no (n_pairs,) index array is needed."""
    n_boot, n = counts.shape
    weights = np.empty((n_boot, n * (n - 1) // 2))
    start = 0
    for i in range(n - 1):
        stop = start + n - 1 - i
        np.multiply(counts[:, i, None], counts[:, i + 1:], out=weights[:, start:stop])
        start = stop
    return weights


class _SortedRDMs:
    """RDMs prepared once for any number of resamples: sorted (Spearman) or as they are."""

    def __init__(self, rdms: np.ndarray, method: str):
        self.rdms, self.method = rdms, method
        self.order, self.runs = [], []
        if method != "spearman":
            return
        for row in rdms:
            order = np.argsort(row, kind="stable")
            ordered = row[order]
            tied = ordered[1:] == ordered[:-1]
            runs = None
            if tied.any():
                # each sorted position's run of equal values: first and last position (+ 1)
                position = np.arange(len(row))
                first_in_run = np.ones(len(row), bool)
                first_in_run[1:] = ~tied
                first = np.maximum.accumulate(np.where(first_in_run, position, 0))
                last_in_run = np.ones(len(row), bool)
                last_in_run[:-1] = ~tied
                end = np.minimum.accumulate(np.where(last_in_run, position, len(row))[::-1])[::-1] + 1
                runs = (first, end)
            self.order.append(order)
            self.runs.append(runs)

    def centred(self, r: int, weights: np.ndarray, total: float) -> np.ndarray:
        """RDM ``r``'s values (ranks for Spearman) on one resample, minus their weighted mean:
        (n_pairs,) in condensed order; ``weights`` (n_pairs,) the resample's copies of each pair,
        ``total`` their sum."""
        values = self.rdms[r]
        if self.method == "pearson":
            return values - np.dot(weights, values) / total
        if self.method == "cosine":
            return values
        order, runs = self.order[r], self.runs[r]
        ordered = np.take(weights, order)
        through = np.empty(len(ordered) + 1)  # kept entries before each sorted position
        through[0] = 0.0
        np.cumsum(ordered, out=through[1:])
        if runs is None:
            # rank: (entries up to and including it) - (w - 1) / 2; minus the mean rank (N + 1) / 2
            ordered *= -0.5
            ordered += through[1:]
            ordered -= total / 2
        else:  # a tied run's entries share the mean of its ranks
            first, end = runs
            ordered = np.take(through, first)
            ordered += np.take(through, end)
            ordered -= total
            ordered /= 2
        centred = np.empty_like(ordered)
        centred[order] = ordered
        return centred


def _weighted_correlations(sorted_a: _SortedRDMs, sorted_b: _SortedRDMs, counts: np.ndarray) -> np.ndarray:
    """Correlations (batch, n_a, n_b) on resamples given by their draw ``counts`` (batch, n).

    Each resample is computed on its own, row by row, so its value does not depend on the
    others in its batch (the batch size, set by the memory budget, changes nothing)."""
    out = np.empty((len(counts), len(sorted_a.rdms), len(sorted_b.rdms)))
    # a resample with < 2 kept entries, or a constant RDM on it: NaN, silently
    with np.errstate(invalid="ignore", divide="ignore"):
        for s, weights in enumerate(_pair_weights(counts)):
            total = float(weights.sum())
            zb = [sorted_b.centred(j, weights, total) for j in range(len(sorted_b.rdms))]
            norm_b = np.sqrt([np.dot(z * weights, z) for z in zb])
            for i in range(len(sorted_a.rdms)):
                za = sorted_a.centred(i, weights, total)
                weighted = za * weights
                norm_a = np.sqrt(np.dot(weighted, za))
                out[s, i] = [np.dot(weighted, z) / (norm_a * nb) for z, nb in zip(zb, norm_b, strict=True)]
    return out


def image_bootstrap_rdm_correlations(rdms_a, rdms_b, *, method: str = "spearman", n_boot: int = 1000,
                                     seed=None, batch_size: int | None = None,
                                     indices: np.ndarray | None = None,
                                     memory_gb: float | None = None) -> np.ndarray:
    """Correlation of every RDM in ``rdms_a`` with every RDM in ``rdms_b`` on image bootstrap samples.

    All pairs see the same resampled images, so the samples of different models (layers) are
    paired: the share of samples in which a layer wins is a bootstrap of which layer is best.
    Each RDM is sorted once; a resample costs a few passes over the original pairs (see the
    module's text), and nothing of size (n_boot x n_pairs) is held.

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
        Samples handled at once; default from the memory budget. Results do not depend on it.
    indices : int array (n_boot, k), optional
        The resampled images (e.g. shared with other calls; k may differ from n, as in a
        subsample); default n images drawn with replacement from ``seed``.
    memory_gb : float, optional
        Memory a batch may take, in GiB (default: `brainprobe.stats.memory_budget`).

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
    if batch_size is None:
        # per resample held at once: its pair weights; one resample at a time: the centred values
        # of the b RDMs and a few temporaries
        per_resample = 8 * a.shape[1]
        batch_size = max(1, (memory_budget_bytes(memory_gb) - 8 * a.shape[1] * (len(b) + 4)) // per_resample)
        batch_size = int(max(1, min(batch_size, _MAX_BATCH_BYTES // per_resample)))
    sorted_a, sorted_b = _SortedRDMs(a, method), _SortedRDMs(b, method)
    out = np.empty((len(indices), len(a), len(b)))
    for start in range(0, len(indices), batch_size):
        counts = _draw_counts(indices[start:start + batch_size], n_items)
        out[start:start + len(counts)] = _weighted_correlations(sorted_a, sorted_b, counts)
    return out


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
