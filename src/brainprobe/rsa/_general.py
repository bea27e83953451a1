"""RSA for any image set: brain RDMs against candidate RDMs (network layers, category models,
any user matrix), per subject with image-level inference and across subjects with a noise
ceiling, random effects and a bootstrap over subjects of the best layer.

The RE/AN/AI design of paper 001 (`kind_similarity`) asks a different question (how far a
representation moves under adversarial images); this module asks the common one: which
candidate RDM matches each ROI's RDM, and how close to the noise ceiling it comes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._internal import as_generator, correlate_pairwise, correlate_rows, permutation_set
from ..stats import (
    image_bootstrap_rdm_correlations,
    layer_sweep,
    noise_ceiling,
    percentile_ci,
    random_effects_test,
    rdm_permutation_test,
)
from ._searchlight import searchlight_rdms

__all__ = ["category_rdm", "compare_to_candidates", "group_comparison", "searchlight_candidates"]


def category_rdm(labels: Sequence) -> np.ndarray:
    """Condensed model RDM of a labelling: 0 for two images of one label, 1 for different labels.

    Parameters
    ----------
    labels : sequence (n_images,)
        A category (or animacy, or any condition) label per image.

    Returns
    -------
    array (n_images (n_images - 1) / 2,)

    Examples
    --------
    >>> from brainprobe.rsa import category_rdm
    >>> category_rdm(["face", "face", "house"]).tolist()
    [0.0, 1.0, 1.0]
    """
    labels = np.asarray([str(v) for v in labels])
    rows, cols = np.triu_indices(len(labels), 1)
    return (labels[rows] != labels[cols]).astype(np.float64)


def _stack(named: Mapping[str, np.ndarray], what: str) -> tuple[list[str], np.ndarray]:
    names = [str(n) for n in named]
    if not names:
        raise ValueError(f"{what}: empty; give at least one condensed RDM")
    arrays = [np.asarray(named[n], dtype=np.float64).ravel() for n in named]
    sizes = {a.size for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"{what}: RDMs of different sizes {dict(zip(names, [a.size for a in arrays], strict=True))}; "
                         "all must be over the same images")
    return names, np.stack(arrays)


def compare_to_candidates(brain: Mapping[str, np.ndarray], candidates: Mapping[str, np.ndarray], *,
                          method: str = "spearman", n_perm: int = 1000, n_boot: int = 1000, level: float = 0.95,
                          layers: Sequence[str] | None = None, seed=None) -> dict[str, pd.DataFrame]:
    """One subject's brain RDMs against candidate RDMs, with image-level inference.

    Parameters
    ----------
    brain : mapping of str to array (n_pairs,)
        Condensed RDM of each ROI (or searchlight, or any unit set), over n images.
    candidates : mapping of str to array (n_pairs,)
        Condensed candidate RDMs over the same images in the same order: network layers, model
        RDMs (`category_rdm`), user matrices.
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
    n_perm : int
        Image relabelings of the candidate RDM (one shared set for every pair); when
        n_images! <= n_perm every relabeling is enumerated and p is exact. 0 skips the test.
    n_boot : int
        Image bootstrap samples (an image drawn twice adds no self-pair, as in rsatoolbox);
        0 skips the intervals.
    level : float
    layers : sequence of str, optional
        The candidates that are network layers, shallow to deep: the best of them per ROI, and
        a bootstrap interval of its position, go into ``best``. Default: every candidate.
    seed : int, Generator or None

    Returns
    -------
    dict
        ``comparison``: one row per (roi, candidate): ``r``, ``p`` (relabeling test,
        greater), ``p_exact``, ``ci_low``, ``ci_high`` (image bootstrap), ``n_images``,
        ``n_perm``, ``n_boot``, ``method``, ``resampled`` (what the inference generalizes over).
        ``best``: one row per roi: ``best_layer``, ``r``, ``best_layer_low``,
        ``best_layer_high`` (percentile interval of the best layer's position over the
        bootstrap samples), ``best_frequency``.
    """
    rng = as_generator(seed)
    rois, a = _stack(brain, "brain")
    names, b = _stack(candidates, "candidates")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"brain and candidates: RDMs over different image sets ({a.shape[1]} and {b.shape[1]} pairs)")
    layers = names if layers is None else [str(layer) for layer in layers]
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        raise ValueError(f"layers: {unknown} are not among the candidates {names}")
    n_items = int(round((1 + np.sqrt(1 + 8 * a.shape[1])) / 2))
    observed = correlate_pairwise(a, b, method)  # (n_rois, n_candidates)
    p = np.full(observed.shape, np.nan)
    exact = False
    used_perm = 0
    if n_perm:
        perms, exact = permutation_set(n_items, n_perm, rng)
        used_perm = len(perms)
        chunk = max(1, int(2**22 // max(1, len(a) * len(b) * a.shape[1])))
        # one (roi, candidate) pair at a time, on the same relabelings: each pair's null does not
        # depend on the others (nor on the chunk), and the ROIs repeated against every candidate were
        # (n_rois x n_candidates) copies of 50 million pairs at 10,000 images, twice, normalized twice
        for i in range(len(a)):
            for j in range(len(b)):
                p[i, j] = rdm_permutation_test(a[i], b[j], method=method, permutations=perms, chunk=chunk).p[0]
    low = high = np.full(observed.shape, np.nan)
    samples = None
    if n_boot:
        samples = image_bootstrap_rdm_correlations(a, b, method=method, n_boot=n_boot, seed=rng)
        low, high = percentile_ci(samples, level)
    frame = pd.DataFrame({
        "roi": np.repeat(rois, len(names)), "candidate": np.tile(names, len(rois)), "r": observed.ravel(),
        "p": p.ravel(), "p_exact": exact, "ci_low": np.ravel(low), "ci_high": np.ravel(high), "n_images": n_items,
        "n_perm": used_perm, "n_boot": n_boot, "method": method, "resampled": "images"})
    frame["is_layer"] = frame["candidate"].isin(layers)
    return {"comparison": frame, "best": _best_over_images(rois, names, layers, observed, samples, level)}


def searchlight_candidates(patterns, neighbourhoods, candidates: Mapping[str, np.ndarray], *,
                           metric: str = "correlation", method: str = "spearman", chunk: int = 2048,
                           runs=None, conditions=None) -> pd.DataFrame:
    """The RDM of every searchlight (disk or sphere) against every candidate RDM: a map per candidate.

    Parameters
    ----------
    patterns : array (n_images, n_vertices)
        One pattern per image, in the candidates' image order (single trials for crossnobis).
    neighbourhoods : sparse matrix (n_centers, n_vertices)
        Row c marks the vertices around centre c (`brainprobe.roi.neighbourhoods_for_columns`).
    candidates : mapping of str to array (n_pairs,)
    metric, method : str
    runs, conditions : array (n_trials,), ``metric = "crossnobis"`` only
        Each trial's run (fold) and image; the candidates' images are then the sorted conditions.
    chunk : int
        Centres per chunk (memory about chunk x n_pairs x 8 bytes).

    Returns
    -------
    DataFrame
        One row per centre: ``center`` and one ``r_<candidate>`` column per candidate (NaN where
        a searchlight's RDM is undefined), ``best`` (the candidate of highest r).
    """
    names, stacked = _stack(candidates, "candidates")
    n_centers = neighbourhoods.shape[0]
    scores = np.full((n_centers, len(names)), np.nan)
    for start in range(0, n_centers, chunk):
        rdms = searchlight_rdms(patterns, neighbourhoods[start:start + chunk], metric, runs=runs, conditions=conditions)
        defined = np.isfinite(rdms).all(axis=1) & (np.nanstd(rdms, axis=1) > 0)
        if defined.any():
            for k in range(len(names)):
                scores[start:start + chunk][defined, k] = correlate_rows(rdms[defined], stacked[k][None, :], method)
    frame = pd.DataFrame({"center": np.arange(n_centers)})
    for k, name in enumerate(names):
        frame[f"r_{name}"] = scores[:, k]
    filled = np.where(np.isnan(scores), -np.inf, scores)
    frame["best"] = np.where(np.isnan(scores).all(axis=1), "", np.asarray(names)[filled.argmax(axis=1)])
    return frame


def _best_over_images(rois, names, layers, observed, samples, level) -> pd.DataFrame:
    positions = [names.index(layer) for layer in layers]
    rows = []
    tail = (1 - level) / 2 * 100
    for i, roi in enumerate(rois):
        scores = observed[i, positions]
        best = int(np.argmax(scores))
        row = {"roi": roi, "best_layer": layers[best], "r": float(scores[best]), "best_layer_low": "",
               "best_layer_high": "", "best_frequency": np.nan, "resampled": "images"}
        if samples is not None:
            winners = np.nanargmax(np.where(np.isnan(samples[:, i, positions]), -np.inf, samples[:, i, positions]), axis=1)
            row["best_layer_low"] = layers[int(np.percentile(winners, tail, method="lower"))]
            row["best_layer_high"] = layers[int(np.percentile(winners, 100 - tail, method="higher"))]
            row["best_frequency"] = float(np.mean(winners == best))
        rows.append(row)
    return pd.DataFrame(rows)


def group_comparison(comparison: pd.DataFrame, brain_rdms: Mapping[str, Mapping[str, np.ndarray]], *,
                     layers: Sequence[str], method: str = "spearman", n_boot: int = 1000, level: float = 0.95,
                     test: str = "t", seed=None) -> dict[str, pd.DataFrame]:
    """Across subjects: noise ceiling per ROI, random-effects test per (roi, candidate), best layer.

    Parameters
    ----------
    comparison : DataFrame
        `compare_to_candidates`'s ``comparison`` rows of every subject, with a ``subject`` column.
    brain_rdms : mapping of subject to (mapping of roi to array (n_pairs,))
        Each subject's ROI RDMs over the same images in the same order (for the
        leave-one-subject-out ceiling, `brainprobe.stats.noise_ceiling`).
    layers : sequence of str
        Network layers among the candidates, shallow to deep.
    method, level
    n_boot : int
        Bootstrap samples of subjects for the best layer's interval (`brainprobe.stats.layer_sweep`).
    test : {"t", "sign_flip"}
        Random-effects test of each candidate's mean r against 0 (greater).
    seed : int, Generator or None

    Returns
    -------
    dict
        ``group``: one row per (roi, candidate): ``mean``, ``sem``, ``t``, ``df``, ``p``,
        ``ceiling_lower``, ``ceiling_upper``, ``percent_of_ceiling`` (mean / lower bound, in %),
        ``n_subjects``. ``group_best``: one row per roi: ``best_layer``, ``r``,
        ``best_layer_low``, ``best_layer_high``, ``best_frequency``, ``ceiling_lower``,
        ``ceiling_upper``, ``percent_of_ceiling``. Empty with fewer than 2 subjects.
    """
    rng = as_generator(seed)
    subjects = list(dict.fromkeys(comparison["subject"]))
    if len(subjects) < 2:
        return {}
    group_rows, best_rows = [], []
    for roi, part in comparison.groupby("roi", sort=False):
        scores = part.pivot(index="subject", columns="candidate", values="r").loc[subjects]
        ceiling = _ceiling(roi, subjects, brain_rdms, method)
        tests = random_effects_test(scores.to_numpy(), method=test, alternative="greater", seed=rng)
        for k, candidate in enumerate(scores.columns):
            mean = float(tests["mean"].iloc[k])
            group_rows.append({"roi": roi, "candidate": candidate, "mean": mean, "sem": float(tests["sem"].iloc[k]),
                               "t": float(tests["t"].iloc[k]), "df": int(tests["df"].iloc[k]),
                               "p": float(tests["p"].iloc[k]), "test": test, **ceiling,
                               "percent_of_ceiling": 100 * mean / ceiling["ceiling_lower"],
                               "n_subjects": len(subjects), "resampled": "subjects",
                               "is_layer": candidate in layers})
        present = [layer for layer in layers if layer in scores.columns]
        if len(present) >= 1:
            sweep = layer_sweep(scores[present].to_numpy(), present, n_boot=n_boot, level=level, test=test, seed=rng)
            r = float(sweep.table.set_index("layer").loc[sweep.best_layer, "mean"])
            best_rows.append({"roi": roi, "best_layer": sweep.best_layer, "r": r,
                              "best_layer_low": sweep.best_layer_ci[0], "best_layer_high": sweep.best_layer_ci[1],
                              "best_frequency": float(sweep.table.set_index("layer").loc[sweep.best_layer,
                                                                                         "best_frequency"]),
                              **ceiling, "percent_of_ceiling": 100 * r / ceiling["ceiling_lower"],
                              "n_subjects": len(subjects), "resampled": "subjects"})
    return {"group": pd.DataFrame(group_rows), "group_best": pd.DataFrame(best_rows)}


def _ceiling(roi: str, subjects: list, brain_rdms: Mapping, method: str) -> dict:
    rows = [np.asarray(brain_rdms[s][roi], dtype=np.float64) for s in subjects if roi in brain_rdms.get(s, {})]
    if len(rows) < 2 or len({r.size for r in rows}) != 1:
        return {"ceiling_lower": np.nan, "ceiling_upper": np.nan}
    bounds = noise_ceiling(np.stack(rows), method=method)
    return {"ceiling_lower": bounds["lower"], "ceiling_upper": bounds["upper"]}
