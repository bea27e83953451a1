"""Inference over images and subjects: image relabeling tests of a difference between two image
kinds, trend tests over layers that keep the layers' dependence, and multiplicity corrections
per family of tests.

Why these exist: a vertex (or network-unit) subsample holds the images fixed and treats
neighbouring vertices as independent, so its intervals and tests do not generalize to new
images and are too narrow under spatially smooth data. The tests here resample images (the
random factor of a stimulus set) and are exact under exchangeability, whatever the spatial
dependence of the responses.

- `paired_swap_relabelings`: relabelings of two kinds of images paired by source (e.g. the AI
  and AN image made from one RE photo): within every pair the two images may trade labels.
- `relabeling_test`: the p-value of a statistic of two groups of images against its
  distribution over such relabelings.
- `accuracy_difference_test`: encoding accuracy on one kind minus another, tested by relabeling
  images (the image moves with its prediction).
- `trend_bootstrap_test`: a linear trend over ordered sets (layers) from image-bootstrap samples
  of every set's score, each resample recomputing all layers, so the null keeps the layers'
  correlation.
- `fdr_by_family`: Benjamini-Hochberg q-values within each family of a table's tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ._accuracy import ACCURACY_DEFINITIONS
from ._ceiling import sign_flips
from ._resampling import ALTERNATIVES, PermutationResult, p_from_null, permutation_set
from ._tests import fdr_bh

__all__ = ["paired_swap_relabelings", "relabeling_test", "accuracy_difference_test", "batched_accuracy",
           "trend_bootstrap_test", "fdr_by_family", "jackknife_ci", "leave_one_out", "JACKKNIFE_CI_METHOD", "RESAMPLED_IMAGES", "RESAMPLED_SUBJECTS",
           "RESAMPLED_VERTICES", "RESAMPLED_UNITS"]

# what the ``resampled`` column of a result table says
RESAMPLED_IMAGES = "images"
RESAMPLED_SUBJECTS = "subjects"
RESAMPLED_VERTICES = "vertices (paper; assumes independent vertices, fixed images)"
RESAMPLED_UNITS = "network units (descriptive: a network's units are not a sample)"


def paired_swap_relabelings(n_pairs: int, n_perm: int, seed=None) -> tuple[np.ndarray, bool]:
    """Relabelings of 2 x ``n_pairs`` images where pair ``i`` is (``i``, ``n_pairs + i``).

    Each relabeling is an index array over the pooled images whose first ``n_pairs`` entries
    are the images labelled "first" and last ``n_pairs`` those labelled "second"; within a pair
    the two images keep their source and may trade labels. All 2^n_pairs when that is at most
    ``n_perm`` (identity included: exact p), else ``n_perm`` random ones.

    Returns
    -------
    relabelings : int array (n_used, 2 n_pairs)
    exact : bool
    """
    flips, exact = sign_flips(n_pairs, n_perm, seed)
    swapped = flips < 0
    own = np.arange(n_pairs)
    first = np.where(swapped, own + n_pairs, own)
    second = np.where(swapped, own, own + n_pairs)
    return np.concatenate([first, second], axis=1).astype(np.int64), exact


def relabeling_test(statistic: Callable[[np.ndarray], np.ndarray], relabelings: np.ndarray, *, exact: bool = False,
                    alternative: str = "two-sided", batch_size: int = 100) -> PermutationResult:
    """Test a statistic of two image groups against its distribution over relabelings.

    Parameters
    ----------
    statistic : callable
        Takes int array (batch, n_total) of pooled-image indices, the first ``n_first`` of a
        row being the "first" group, and returns (batch, n_tests) statistics.
    relabelings : int array (n_perm, n_total)
        From `paired_swap_relabelings` (paired kinds) or `permutation_set` (unpaired).
    exact : bool
        The relabelings are the complete enumeration (the identity among them).
    alternative : {"two-sided", "greater", "less"}
        Two-sided compares absolute values (the null of a difference is symmetric about 0 when
        the groups are exchangeable).
    batch_size : int

    Returns
    -------
    PermutationResult
        ``observed`` (n_tests,), ``null`` (n_tests, n_perm), ``p`` (n_tests,).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {ALTERNATIVES}, found {alternative!r}")
    relabelings = np.atleast_2d(relabelings)
    identity = np.arange(relabelings.shape[1])[None, :]
    observed = np.asarray(statistic(identity), float).reshape(1, -1)[0]
    null = np.concatenate([np.asarray(statistic(relabelings[start:start + batch_size]), float).reshape(
        len(relabelings[start:start + batch_size]), -1) for start in range(0, len(relabelings), batch_size)]).T
    return PermutationResult(observed, null, p_from_null(observed, null, alternative, exact=exact), exact)


def batched_accuracy(predicted: np.ndarray, measured: np.ndarray, per: str = "centered") -> np.ndarray:
    """`prediction_accuracy` of many (predicted, measured) sets at once.

    Parameters
    ----------
    predicted, measured : array (batch, n_images, n_vertices)
    per : {"centered", "pattern", "vertex"}

    Returns
    -------
    array (batch,)
    """
    if per not in ACCURACY_DEFINITIONS:
        raise ValueError(f"per: expected one of {ACCURACY_DEFINITIONS}, found {per!r}")
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    axes = (1, 2) if per == "pattern" else (1,)
    p = p - p.mean(axis=axes, keepdims=True)
    m = m - m.mean(axis=axes, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        if per == "vertex":
            r = (p * m).sum(axis=1) / np.sqrt((p * p).sum(axis=1) * (m * m).sum(axis=1))
            return r.mean(axis=1)
        return (p * m).sum(axis=(1, 2)) / np.sqrt((p * p).sum(axis=(1, 2)) * (m * m).sum(axis=(1, 2)))


def accuracy_difference_test(predicted_first, measured_first, predicted_second, measured_second, *,
                             per: str = "centered", n_perm: int = 1000, paired: bool = True,
                             alternative: str = "two-sided", seed=None) -> PermutationResult:
    """Accuracy on the first kind of images minus the second, tested over images.

    Under H0 the images of the two kinds are exchangeable (drawn from one distribution); a
    relabeling moves each image, with its prediction and its measured response, to the other
    group (within its source pair when ``paired``) and both accuracies are recomputed. The
    test generalizes over images and holds its size whatever the spatial correlation of the
    vertices (simulated in ``tests/stats/test_inference.py``).

    Parameters
    ----------
    predicted_first, measured_first : array (n_first, n_vertices)
    predicted_second, measured_second : array (n_second, n_vertices)
        With ``paired``, row i of each is made from the same source image (n_first = n_second).
    per : {"centered", "pattern", "vertex"}
    n_perm : int
        Relabelings; all of them when 2^n_pairs <= n_perm (paired).
    paired : bool
    alternative : {"two-sided", "greater", "less"}
        "greater": first more accurate than second.
    seed : int, Generator or None

    Returns
    -------
    PermutationResult
        ``observed`` and ``p`` of shape (1,).
    """
    pf, mf, ps, ms = (np.asarray(a, float) for a in (predicted_first, measured_first, predicted_second, measured_second))
    if pf.shape != mf.shape or ps.shape != ms.shape or pf.shape[1:] != ps.shape[1:]:
        raise ValueError(f"predicted/measured: expected (n_images, n_vertices) arrays with one vertex count, found "
                         f"{pf.shape}, {mf.shape}, {ps.shape}, {ms.shape}")
    n_first = len(pf)
    if paired:
        if len(pf) != len(ps):
            raise ValueError(f"paired: expected as many first as second images, found {len(pf)} and {len(ps)}")
        relabelings, exact = paired_swap_relabelings(n_first, n_perm, seed)
    else:
        relabelings, exact = permutation_set(n_first + len(ps), n_perm, seed)
    pooled_p, pooled_m = np.concatenate([pf, ps]), np.concatenate([mf, ms])

    def difference(index):
        first, second = index[:, :n_first], index[:, n_first:]
        return (batched_accuracy(pooled_p[first], pooled_m[first], per)
                - batched_accuracy(pooled_p[second], pooled_m[second], per))[:, None]

    batch = int(max(1, 2**23 // max(1, pooled_p.size)))
    return relabeling_test(difference, relabelings, exact=exact, alternative=alternative, batch_size=batch)


def trend_bootstrap_test(samples, observed, *, n_images: int | None = None, alternative: str = "two-sided") -> dict:
    """Linear trend over ordered sets (layers) tested with image-bootstrap samples of all sets.

    The statistic is the least-squares slope of the scores on the set's position (0, 1, ...).
    Every bootstrap resample of images recomputes every layer's score, so the resamples carry
    the correlation between layers that a test treating the layers as independent draws (as
    Mann-Kendall does) ignores. The slope's standard error is the bootstrap spread, scaled by
    sqrt(n / (n - 1)) for ``n_images`` (the bootstrap's small-sample shrinkage), and the p-value
    is that of t = slope / se on n_images - 1 degrees of freedom (with ``n_images`` None: the
    normal distribution).

    Parameters
    ----------
    samples : array (n_boot, n_sets)
        Each set's score on each image resample (rows with NaN are dropped).
    observed : array (n_sets,)
        The scores on all images.
    n_images : int, optional
        The number of images resampled.
    alternative : {"two-sided", "increasing", "decreasing"}

    Returns
    -------
    dict
        ``slope``, ``slope_se``, ``slope_ci95_low``, ``slope_ci95_high``, ``p``, ``n_boot``.
    """
    from scipy import stats as _scipy_stats

    samples = np.asarray(samples, float)
    observed = np.asarray(observed, float)
    if samples.ndim != 2 or samples.shape[1] != len(observed) or len(observed) < 3:
        raise ValueError(f"samples: expected (n_boot, {len(observed)} >= 3 sets), found {samples.shape}")
    samples = samples[np.isfinite(samples).all(axis=1)]
    position = np.arange(len(observed), dtype=float)
    position -= position.mean()
    weights = position / (position**2).sum()
    slope = float(observed @ weights)
    spread = float(np.std(samples @ weights, ddof=1)) if len(samples) > 1 else np.nan
    if n_images is not None:
        spread *= np.sqrt(n_images / (n_images - 1))
        reference = _scipy_stats.t(n_images - 1)
    else:
        reference = _scipy_stats.norm()
    statistic = slope / spread if spread > 0 else np.nan
    if alternative in ("increasing", "greater"):
        p = reference.sf(statistic)
    elif alternative in ("decreasing", "less"):
        p = reference.cdf(statistic)
    elif alternative == "two-sided":
        p = 2 * reference.sf(abs(statistic))
    else:
        raise ValueError(f"alternative: expected 'two-sided', 'increasing' or 'decreasing', found {alternative!r}")
    half = reference.ppf(0.975) * spread
    return {"slope": slope, "slope_se": spread, "slope_ci95_low": slope - half, "slope_ci95_high": slope + half,
            "p": float(p), "n_boot": len(samples)}


JACKKNIFE_CI_METHOD = "delete-one-image jackknife, t(n_images - 1) quantiles"


def leave_one_out(n_items: int) -> np.ndarray:
    """Index arrays (n_items, n_items - 1): row i holds every item but i."""
    if n_items < 3:
        raise ValueError(f"a jackknife needs at least 3 items, found {n_items}")
    full = np.tile(np.arange(n_items), (n_items, 1))
    return full[~np.eye(n_items, dtype=bool)].reshape(n_items, n_items - 1)


def jackknife_ci(estimate, leave_one_out_values, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Delete-one jackknife interval: estimate +- t(n - 1) quantile x jackknife standard error.

    Parameters
    ----------
    estimate : float or array (...)
        The statistic on all n items.
    leave_one_out_values : array (n, ...)
        The statistic with each item left out in turn.
    level : float

    Returns
    -------
    low, high : arrays (...)

    Notes
    -----
    Measured on RDM similarities of 12 images under spatially smooth vertices (image draws
    with the brain fixed; ``tests/stats/test_inference.py``): 95% intervals cover 95%, where
    the percentile image bootstrap (pairs of an image with its copy dropped) covers 98%.
    """
    from scipy import stats as _scipy_stats

    values = np.asarray(leave_one_out_values, float)
    n = len(values)
    se = np.sqrt((n - 1) / n * ((values - values.mean(axis=0)) ** 2).sum(axis=0))
    half = _scipy_stats.t.ppf(0.5 + level / 2, n - 1) * se
    estimate = np.asarray(estimate, float)
    return estimate - half, estimate + half


def fdr_by_family(table: pd.DataFrame, p_column: str, family: Sequence[str] | None = None,
                  q_column: str | None = None) -> pd.DataFrame:
    """Add Benjamini-Hochberg q-values of ``p_column`` computed within each family of tests.

    Parameters
    ----------
    table : DataFrame
    p_column : str
        Uncorrected p-values (kept as they are).
    family : sequence of str, optional
        Columns whose values define a family (e.g. ``["subject", "test_kind"]``: all ROI x layer
        tests of one subject and kind are corrected together); default the whole table.
    q_column : str, optional
        Default ``"q_" + p_column`` (or ``"q_fdr"`` for ``p_column = "p"``).

    Returns
    -------
    DataFrame
        A copy with the q column and ``<q_column>_family`` saying which tests were corrected
        together.
    """
    q_column = q_column or ("q_fdr" if p_column == "p" else f"q_{p_column.removeprefix('p_')}")
    out = table.copy()
    if p_column not in out or out.empty:
        return out
    q = np.full(len(out), np.nan)
    keys = list(family or [])
    groups = out.groupby(keys, sort=False, dropna=False).indices.values() if keys else [np.arange(len(out))]
    for rows in groups:
        q[rows] = fdr_bh(pd.to_numeric(out[p_column].iloc[rows], errors="coerce").to_numpy(float))
    out[q_column] = q
    described = "all tests of the table" if not keys else "each " + " x ".join(keys)
    out[f"{q_column}_family"] = f"Benjamini-Hochberg FDR within {described}"
    return out
