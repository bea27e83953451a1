"""Image bootstrap of RDM correlations: images resampled with replacement, as rsatoolbox does.

An image drawn twice would put a pair of one image with itself into the resampled RDM; such
pairs have no dissimilarity and are left out of every correlation (rsatoolbox's
``bootstrap_sample_pattern`` with ``subsample_pattern`` marks them NaN and its comparisons skip
NaN entries).
"""

from __future__ import annotations

import numpy as np

from ._correlation import _check_method, kendall_tau_a, rank_rows
from ._resampling import bootstrap_indices, check_resampling

__all__ = ["image_bootstrap_rdm_correlations"]


def _pair_index(n_items: int) -> np.ndarray:
    """Square (n, n) map from an image pair to its position in the condensed RDM (diagonal -1)."""
    index = np.full((n_items, n_items), -1, dtype=np.int64)
    rows, cols = np.triu_indices(n_items, 1)
    index[rows, cols] = np.arange(len(rows))
    index[cols, rows] = index[rows, cols]
    return index


def _masked_standardized(values: np.ndarray, keep: np.ndarray, method: str) -> np.ndarray:
    """Rows (..., n) turned into unit-norm vectors over the kept entries (0 elsewhere), so that
    a dot product of two of them is their correlation under ``method``."""
    if method == "spearman":
        values = rank_rows(np.where(keep, values, np.inf).reshape(-1, values.shape[-1])).reshape(values.shape)
    weight = keep.astype(np.float64)
    if method in ("spearman", "pearson"):
        count = weight.sum(axis=-1, keepdims=True)
        values = values - (values * weight).sum(-1, keepdims=True) / count
    values = values * weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return values / np.sqrt((values * values).sum(-1, keepdims=True))


def image_bootstrap_rdm_correlations(rdms_a, rdms_b, *, method: str = "spearman", n_boot: int = 1000,
                                     seed=None, batch_size: int | None = None,
                                     indices: np.ndarray | None = None) -> np.ndarray:
    """Correlation of every RDM in ``rdms_a`` with every RDM in ``rdms_b`` on image bootstrap samples.

    All pairs see the same resampled images, so the samples of different models (layers) are
    paired: the share of samples in which a layer wins is a bootstrap of which layer is best.

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
        Samples handled at once; default keeps each batch near 32 MB.
    indices : int array (n_boot, k), optional
        The resampled images (e.g. shared with other calls; k may differ from n, as in a
        subsample); default n images drawn with replacement from ``seed``.

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
    pair_index = _pair_index(n_items)
    rows, cols = np.triu_indices(indices.shape[1], 1)
    n_pairs = len(rows)
    if batch_size is None:
        batch_size = max(1, int(2**22 // max(1, (len(a) + len(b)) * n_pairs)))
    out = np.empty((len(indices), len(a), len(b)))
    for start in range(0, len(indices), batch_size):
        chosen = indices[start:start + batch_size]
        gathered = pair_index[chosen[:, rows], chosen[:, cols]]  # (batch, n_pairs); -1: an image with itself
        keep = gathered >= 0
        safe = np.where(keep, gathered, 0)
        if method == "kendall_tau_a":
            for s in range(len(chosen)):
                kept = safe[s][keep[s]]
                out[start + s] = kendall_tau_a(a[:, kept], b[:, kept])
            continue
        za = _masked_standardized(a[:, safe], keep[None], method)  # (n_a, batch, n_pairs)
        zb = _masked_standardized(b[:, safe], keep[None], method)
        out[start:start + len(chosen)] = np.einsum("ist,jst->sij", za, zb)
    return out
