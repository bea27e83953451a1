"""Prediction accuracy of encoding models, with permutation and vertex-bootstrap tests.

Three definitions of accuracy for predicted and measured responses P, M (n_images, n_vertices):

- ``"centered"`` (the default): each vertex's mean over the test images is removed from P and
  from M, then one Pearson r over all images x vertices entries. Vertex baselines (a vertex that
  always responds more than another) carry no credit: a model that predicts only each vertex's
  mean scores ~0, and the score measures how well image-to-image differences are predicted.
- ``"pattern"`` (the study's words, taken literally): Pearson r between the flattened response
  patterns, all entries of P against all entries of M. Vertex baselines dominate it: a model
  that predicts only each vertex's mean can score r = 0.7.
- ``"vertex"``: Pearson r across images for each vertex, averaged over vertices.

All are linear in the image-by-image cross-products of standardized P and M, so the label
permutation null is a gather over one (n_images, n_images) matrix; vertex subsamples are sums of
per-vertex statistics. Nothing is refitted or re-predicted.
"""

from __future__ import annotations

import numpy as np

from ._resampling import as_generator, bootstrap_indices, p_from_null, permutation_set

__all__ = ["ACCURACY_DEFINITIONS", "prediction_accuracy", "accuracy_permutation_test", "accuracy_vertex_bootstrap"]

ACCURACY_DEFINITIONS = ("centered", "pattern", "vertex")


def _check(predicted, measured, per):
    if per not in ACCURACY_DEFINITIONS:
        raise ValueError(f"per: expected one of {ACCURACY_DEFINITIONS}, found {per!r}")
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    if predicted.shape != measured.shape or predicted.ndim != 2:
        raise ValueError(f"predicted and measured: expected equal (n_images, n_vertices) shapes, found "
                         f"{predicted.shape} and {measured.shape}")
    return predicted, measured


def _standardize(values: np.ndarray, per: str) -> np.ndarray:
    # centred over: all entries ("pattern") or each vertex's images ("centered", "vertex");
    # scaled over: all entries ("pattern", "centered") or each vertex ("vertex")
    centred = values - (values.mean() if per == "pattern" else values.mean(axis=0, keepdims=True))
    if per == "vertex":
        norm = np.sqrt((centred**2).sum(axis=0, keepdims=True))
    else:
        norm = np.sqrt((centred**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / norm


def _cross(predicted, measured, per) -> np.ndarray:
    """C[i, j] = <P_i, M_j> of standardized rows; the accuracy is trace(C) (divided by V for 'vertex')."""
    p, m = _standardize(predicted, per), _standardize(measured, per)
    scale = 1.0 / predicted.shape[1] if per == "vertex" else 1.0
    return (p @ m.T) * scale


def prediction_accuracy(predicted, measured, *, per: str = "centered") -> float:
    """Accuracy of predicted responses (see the module docstring for the three definitions).

    Parameters
    ----------
    predicted, measured : array (n_images, n_vertices)
    per : {"centered", "pattern", "vertex"}

    Returns
    -------
    float
        NaN when the prediction does not vary (e.g. a model that predicts only baselines).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> baseline = rng.normal(0, 3, size=200)            # each vertex's own mean response
    >>> measured = baseline + rng.normal(size=(40, 200))   # 40 images
    >>> mean_only = baseline + 0.01 * rng.normal(size=(40, 200))
    >>> round(prediction_accuracy(mean_only, measured, per="pattern"), 1)  # rewards baselines
    0.9
    >>> abs(prediction_accuracy(mean_only, measured)) < 0.05                 # "centered"
    True
    """
    predicted, measured = _check(predicted, measured, per)
    # the diagonal of _cross, summed elementwise: a matrix product's rounding can depend on the
    # BLAS thread count, and results must be byte-identical across processes
    total = float(np.sum(_standardize(predicted, per) * _standardize(measured, per)))
    return total / predicted.shape[1] if per == "vertex" else total


def accuracy_permutation_test(predicted, measured, *, per: str = "centered", n_perm: int = 1000, seed=None,
                              alternative: str = "greater"):
    """Permutation test of prediction accuracy: image labels of the predictions shuffled.

    When ``n_images! <= n_perm`` every relabeling is enumerated and the p-value is exact
    (`brainprobe.stats.permutation_set`).

    Returns
    -------
    observed : float
    null : array (n_perm,) or (n_images!,)
    p : float
        (1 + #(null >= observed)) / (1 + n_perm), or #(null >= observed) / n_images! when
        every relabeling was enumerated.
    """
    predicted, measured = _check(predicted, measured, per)
    cross = _cross(predicted, measured, per)
    perms, exact = permutation_set(len(cross), n_perm, seed)
    null = cross[perms, np.arange(len(cross))[None, :]].sum(axis=1)
    observed = float(np.trace(cross))
    return observed, null, float(p_from_null(observed, null, alternative, exact=exact))


def accuracy_vertex_bootstrap(predicted, measured, *, per: str = "centered", n_boot: int = 1000,
                              fraction: float = 0.8, seed=None, indices: np.ndarray | None = None) -> np.ndarray:
    """Accuracy recomputed on random subsets of vertices (the study: 80% without replacement, 1000x).

    Parameters
    ----------
    predicted, measured : array (n_images, n_vertices)
    per : {"centered", "pattern", "vertex"}
    n_boot, fraction, seed
    indices : int array (n_boot, k), optional
        Vertex subsets to use (share them between two test kinds to compare them pairwise).

    Returns
    -------
    array (n_boot,)
    """
    predicted, measured = _check(predicted, measured, per)
    n_images, n_vertices = predicted.shape
    if indices is None:
        indices = bootstrap_indices(n_vertices, n_boot, as_generator(seed), fraction=fraction, replace=False)
    if per == "vertex":
        r = np.einsum("iv,iv->v", _standardize(predicted, "vertex"), _standardize(measured, "vertex"))
        return np.nanmean(r[indices], axis=1)
    if per == "centered":
        # each vertex is centred over images once (a vertex subset does not change its mean)
        p, m = predicted - predicted.mean(axis=0), measured - measured.mean(axis=0)
        pm, pp, mm = ((a * b).sum(axis=0)[indices].sum(axis=1) for a, b in ((p, m), (p, p), (m, m)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return pm / np.sqrt(pp * mm)
    # pattern r over a vertex subset from per-vertex sums (n = n_images x k entries)
    sums = {
        "p": predicted.sum(axis=0), "m": measured.sum(axis=0),
        "pp": (predicted**2).sum(axis=0), "mm": (measured**2).sum(axis=0), "pm": (predicted * measured).sum(axis=0),
    }
    total = {key: value[indices].sum(axis=1) for key, value in sums.items()}
    count = n_images * indices.shape[1]
    covariance = total["pm"] - total["p"] * total["m"] / count
    variance_p = total["pp"] - total["p"] ** 2 / count
    variance_m = total["mm"] - total["m"] ** 2 / count
    with np.errstate(invalid="ignore", divide="ignore"):
        return covariance / np.sqrt(variance_p * variance_m)
