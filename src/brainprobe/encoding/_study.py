"""Study-level encoding analyses (paper 001, Fig. 6 and Supplementary Note 1)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import KFold

from .._internal import (
    JACKKNIFE_CI_METHOD,
    RESAMPLED_IMAGES,
    RESAMPLED_VERTICES,
    SUBSAMPLE_CI_METHOD,
    as_generator,
    batched_accuracy,
    bootstrap_indices,
    check_resampling,
    direction_label,
    p_from_null,
)
from .._memory import check_allocation
from .._progress import tqdm
from ..stats import (
    accuracy_difference_test,
    accuracy_permutation_test,
    accuracy_vertex_bootstrap,
    jackknife_ci,
    leave_one_out,
    paired_ttest,
    prediction_accuracy,
    subsample_ci,
    subsample_p,
)
from ._estimators import ROMP, OMPEncoder, RidgeCVEncoder, stores_dual

__all__ = ["EncodingModels", "fit_encoding_models", "generalization", "best_layer", "best_layer_proportions",
           "best_layer_tests"]


@dataclass
class EncodingModels:
    """Fitted encoding models, one per (subject, ROI, layer).

    Attributes
    ----------
    models : dict of (subject, roi, layer) to a fitted estimator
        Each predicts the ROI's selected vertices (in ``columns`` order) from the layer's units.
    columns : dict of (subject, roi) to int array
        The Responses columns each ROI's models predict.
    train_images : dict of subject to list of str
    layers, rois, subjects : lists
    heldout : dict
        Cross-validated predictions of the training images, fitted once per (subject, roi, layer,
        cv, measurement, estimator) and shared by `best_layer`, `heldout_accuracy` and the
        synthesis step (`heldout_predictions`).
    """

    models: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)
    train_images: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)
    rois: list = field(default_factory=list)
    subjects: list = field(default_factory=list)
    heldout: dict = field(default_factory=dict, repr=False)

    def __getitem__(self, key):
        return self.models[key]

    def __len__(self) -> int:
        return len(self.models)

    def __repr__(self) -> str:  # compact: the generated one lists every column index of every ROI
        vertices = {roi: sorted({len(c) for (_, r), c in self.columns.items() if r == roi}) for roi in self.rois}
        per_roi = ", ".join(f"{roi}: {'/'.join(map(str, n)) or '?'}" for roi, n in vertices.items())
        return (f"EncodingModels({len(self.models)} models: subjects {self.subjects}, ROIs {self.rois}, "
                f"layers {self.layers}; vertices per ROI {{{per_roi}}})")

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the models and their cached held-out predictions to one ``.npz`` file (no pickle).

        A JSON manifest (array ``manifest``) lists subjects, ROIs, layers, each model's
        estimator class and parameters, and the (subject, roi, layer, cv, measurement, estimator)
        of each held-out prediction; the arrays hold each model's fitted attributes
        (``coef_`` (n_vertices, n_units), dense or sparse, or a tuned ridge's dual form:
        ``dual_coef_`` (n_train_images, n_vertices), ``X_fit_`` and ``x_mean_``, the features
        written once for all ROIs of a fit; ``intercept_`` (n_vertices,) ...),
        each ROI's columns (n_vertices,), each subject's training images and the held-out
        predictions (n_train_images, n_vertices). `EncodingModels.load` gives back an equal
        object; the brainprobe encoders (`ROMP`, `OMPEncoder`, `KernelRidgeEncoder`,
        `RidgeCVEncoder`) can be stored.

        Parameters
        ----------
        path : path to a ``.npz`` file
        overwrite : bool
            Replace an existing file; otherwise that is an error.

        Returns
        -------
        Path
        """
        from ._io import save_models

        return save_models(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> EncodingModels:
        """Read a file written by `EncodingModels.save` (``allow_pickle=False``).

        The held-out predictions come back too: `heldout_accuracy` and `best_layer` on the
        loaded object refit no fold they were computed for.

        Raises
        ------
        brainprobe.InputFileError
            Not an EncodingModels ``.npz`` file, or a field missing or inconsistent (the
            message names the file and the field).
        """
        from ._io import load_models

        return load_models(path, cls)

    def subset(self, *, rois: Sequence[str] | None = None, layers: Sequence[str] | None = None) -> EncodingModels:
        """The models of some ROIs and layers (in the order given), sharing the fitted estimators
        and the held-out predictions already computed for them."""
        rois = list(self.rois if rois is None else rois)
        layers = list(self.layers if layers is None else layers)
        missing = [(s, r, layer) for s in self.subjects for r in rois for layer in layers
                   if (s, r, layer) not in self.models]
        if missing:
            raise KeyError(f"EncodingModels.subset: no models for (subject, roi, layer) {missing[:5]}; ROIs {self.rois}, "
                           f"layers {self.layers}")
        keep = {(s, r, layer) for s in self.subjects for r in rois for layer in layers}
        return EncodingModels(models={k: v for k, v in self.models.items() if k in keep},
                              columns={k: v for k, v in self.columns.items() if k[1] in rois},
                              train_images=dict(self.train_images), layers=layers, rois=rois,
                              subjects=list(self.subjects),
                              heldout={k: v for k, v in self.heldout.items() if k[:3] in keep})

    def cross_validate(self, activations, responses, *, cv: int = 5, layers: Sequence[str] | None = None
                       ) -> EncodingModels:
        """Compute (once) the ``cv``-fold held-out predictions of every (subject, roi, layer) of
        ``layers`` (default all) on its training images, as `heldout_accuracy` and `best_layer`
        use them (mean over repeats, the fitted estimator). Returns self."""
        subjects = _as_subjects(responses)
        for subject in self.subjects:
            self._cross_validate_subject(subject, *subjects[subject].average_repeats(), activations, cv, layers)
        return self


    def _cross_validate_subject(self, subject: str, patterns: np.ndarray, table: pd.DataFrame, activations, cv: int,
                                layers: Sequence[str] | None = None) -> None:
        """`cross_validate` for one subject, from its repeat-averaged ``patterns`` and ``table``."""
        ids = self.train_images[subject]
        rows = pd.Series(np.arange(len(table)), index=table["image_id"].tolist()).loc[ids].to_numpy()
        measured = patterns[rows]
        for layer in self.layers if layers is None else layers:
            pending = [roi for roi in self.rois if _heldout_key(subject, roi, layer, cv) not in self.heldout]
            if pending:
                self._cross_validate_jointly(subject, pending, layer, layer_rows(activations, layer, ids), measured, cv)

    def _cross_validate_jointly(self, subject: str, rois: Sequence[str], layer: str, X: np.ndarray,
                                measured: np.ndarray, cv: int) -> None:
        """The held-out predictions of several ROIs from one fit per fold, every selected vertex a
        target (as `fit_encoding_models` fits them): the estimators fit each target on its own
        (one penalty or support per vertex), so a joint fit predicts what separate fits would, with
        one pass over the layer per fold instead of one per ROI."""
        models = [self[(subject, roi, layer)] for roi in rois]
        if len({repr(model.get_params()) for model in models}) > 1:  # not one fit's slices: one by one
            for roi in rois:
                heldout_predictions(self, subject, roi, layer, X, measured[:, self.columns[(subject, roi)]], cv)
            return
        columns = [self.columns[(subject, roi)] for roi in rois]
        predicted = cross_validated_predictions(models[0], X, measured[:, np.concatenate(columns)], cv)
        offset = 0
        for roi, chosen in zip(rois, columns, strict=True):
            self.heldout[_heldout_key(subject, roi, layer, cv)] = predicted[:, offset:offset + len(chosen)]
            offset += len(chosen)


def _as_subjects(responses) -> dict:
    return dict(responses) if isinstance(responses, Mapping) else {getattr(responses, "subject", "sub-01"): responses}


def layer_rows(activations, layer: str, image_ids: Sequence[str]) -> np.ndarray:
    """(n_images, n_units) of ``layer`` for ``image_ids``, in their order.

    When those images are consecutive rows of the stored array (every image, or one kind stored
    together), the result is a view: a memory-mapped layer stays on disk, and a 10^5-unit layer of
    10,000 images (5.6 GB in float32) is not copied. Otherwise the rows are copied.
    """
    rows = _activation_rows(activations, image_ids)
    values = np.asarray(activations[layer])
    values = values.reshape(len(values), -1)
    if len(rows) and (np.diff(rows) == 1).all():
        return values[rows[0]:rows[-1] + 1]
    return values[rows]


def _activation_rows(activations, image_ids: Sequence[str]) -> np.ndarray:
    ids = getattr(activations, "image_ids", None)
    if ids is None:
        raise ValueError("activations: need image_ids (extract them from a StimulusSet) to align with responses")
    position = pd.Series(np.arange(len(ids)), index=list(ids))
    missing = [i for i in image_ids if i not in position.index]
    if missing:
        raise ValueError(f"activations lack images {missing[:5]} that have responses")
    return position.loc[list(image_ids)].to_numpy()


ESTIMATOR_NAMES = {"romp": ROMP, "omp": OMPEncoder, "ridge": RidgeCVEncoder}


def estimator_from_name(estimator):
    """An estimator given by its study-file name (``"romp"``, ``"omp"``, ``"ridge"``) built with
    its defaults; None: ``ROMP()``; anything else as it is."""
    if estimator is None:
        return ROMP()
    if isinstance(estimator, str):
        if estimator not in ESTIMATOR_NAMES:
            raise ValueError(f"estimator: expected one of {sorted(ESTIMATOR_NAMES)} or a scikit-learn regressor, "
                             f"found {estimator!r}")
        return ESTIMATOR_NAMES[estimator]()
    return estimator


def cross_validated_predictions(estimator, X: np.ndarray, measured: np.ndarray, cv: int) -> np.ndarray:
    """Predictions (n_images, n_vertices) of each image by a clone of ``estimator`` fitted on the
    other folds of ``cv``-fold cross-validation (contiguous folds, no shuffling)."""
    folds = list(KFold(n_splits=min(cv, len(X))).split(X))
    if hasattr(estimator, "cross_val_predict"):  # e.g. RidgeCVEncoder: one pass over X serves every fold
        return clone(estimator).cross_val_predict(X, measured, folds).reshape(measured.shape)
    predicted = np.empty_like(measured, dtype=np.float64)
    for train, test in folds:
        fold = clone(estimator).fit(X[train], measured[train])
        predicted[test] = fold.predict(X[test]).reshape(len(test), -1)
    return predicted


def heldout_predictions(models: EncodingModels, subject: str, roi: str, layer: str, X: np.ndarray,
                        measured: np.ndarray, cv: int, estimator=None, measurement: str = "mean") -> np.ndarray:
    """`cross_validated_predictions` of one (subject, roi, layer), computed once and kept in
    ``models.heldout``: every caller that scores held-out images reuses the same folds' fits."""
    key = _heldout_key(subject, roi, layer, cv, measurement, estimator)
    if key not in models.heldout:
        base = estimator if estimator is not None else models[(subject, roi, layer)]
        models.heldout[key] = cross_validated_predictions(base, X, measured, cv)
    return models.heldout[key]


def _heldout_key(subject: str, roi: str, layer: str, cv: int, measurement: str = "mean", estimator=None) -> tuple:
    return (subject, roi, layer, int(cv), measurement, None if estimator is None else repr(estimator))


def _roi_columns(responses, roi, vertices) -> np.ndarray:
    if vertices is not None and roi in vertices:
        chosen = np.asarray(vertices[roi])
        return np.flatnonzero(chosen) if chosen.dtype == bool else chosen.astype(np.int64)
    return np.flatnonzero(responses.roi_mask(roi))


def _slice_targets(model, columns: slice):
    """A fitted multi-target model restricted to a range of its targets: views of the joint fit's
    rows (a ROI's weights on a 10^5-unit layer are not copied, nor gathered across rows)."""
    part = copy.copy(model)
    if stores_dual(model):  # the dual coefficients' columns; the training features are shared
        part.dual_coef_ = model.dual_coef_[:, columns]
    else:
        part.coef_ = model.coef_[columns] if sp.issparse(model.coef_) else np.asarray(model.coef_)[columns]
    part.intercept_ = np.asarray(model.intercept_)[columns]
    if np.ndim(getattr(model, "alpha_", None)) == 1:  # a tuned ridge's penalty per target
        part.alpha_ = np.asarray(model.alpha_)[columns]
    if hasattr(model, "support_"):
        part.support_ = list(model.support_[columns])
    for name in ("n_iter_", "stop_reason_"):
        if hasattr(model, name):
            setattr(part, name, np.asarray(getattr(model, name))[columns])
    part._single_output = False
    return part


def fit_encoding_models(activations, responses, rois: Sequence[str], layers: Sequence[str] | None = None, *,
                        train_kind: str | None = "RE", vertices: Mapping | None = None, estimator=None,
                        progress: bool | None = None) -> EncodingModels:
    """Fit one encoding model per (subject, ROI, layer) on the images of ``train_kind``.

    All ROIs of a subject share one fit per layer (every vertex is a target of one batched fit),
    which is then split into per-ROI models.

    Parameters
    ----------
    activations : Activations
        ``{layer: (n_images, n_units)}`` with ``image_ids``.
    responses : Responses or mapping of subject to Responses
        Betas; repeats are averaged per image.
    rois : sequence of str
        ROI columns of the Responses' vertex tables.
    layers : sequence of str, optional
        Default: every layer in ``activations``.
    train_kind : str or None
        The kind of images the models learn from (paper 001's design: RE); None: every image
        with responses (a general design, scored by `heldout_accuracy`'s cross-validation).
    vertices : mapping of ROI to column indices or masks, optional
        E.g. the selected vertices of `brainprobe.roi.select_reliable_vertices`; default all ROI
        vertices. One mapping for all subjects, or a mapping of subject to such mappings.
    estimator : scikit-learn regressor or {"romp", "omp", "ridge"}, optional
        Default ``ROMP()`` (s = 5, brainprobe's one ROMP default; ``ROMP(n_nonzero="cv")``
        chooses s by cross-validation). Any multi-output regressor with ``coef_`` and
        ``intercept_`` works (`OMPEncoder`, `KernelRidgeEncoder` ...). A name is the study
        file's ``[encoding] estimator``: ``ROMP()``, ``OMPEncoder()`` or ``RidgeCVEncoder()``
        (one penalty per vertex).

    Returns
    -------
    EncodingModels
    """
    estimator = estimator_from_name(estimator)
    layers = list(activations) if layers is None else list(layers)
    subjects = _as_subjects(responses)
    result = EncodingModels(layers=layers, rois=list(rois), subjects=list(subjects))
    jobs = [(s, layer) for s in subjects for layer in layers]
    bar = tqdm(jobs, desc="encoding models", unit="fit", disable=(len(jobs) < 2 or None) if progress is None else not progress)
    for subject, layer in bar:
        data = subjects[subject]
        patterns, table = data.average_repeats()
        train = np.ones(len(table), bool) if train_kind is None else (table["kind"] == train_kind).to_numpy()
        if train.sum() < 3:
            which = "images" if train_kind is None else f"images of kind {train_kind!r}"
            raise ValueError(f"{subject}: only {train.sum()} {which} to train on")
        image_ids = table.loc[train, "image_id"].tolist()
        subject_vertices = vertices.get(subject, vertices) if isinstance(vertices, Mapping) else None
        columns = {roi: _roi_columns(data, roi, subject_vertices) for roi in rois}
        empty = [roi for roi, found in columns.items() if len(found) == 0]
        if empty:
            raise ValueError(f"{subject}: ROIs {empty} hold no vertices (or none selected); nothing to fit")
        all_columns = np.concatenate([columns[r] for r in rois])
        X = layer_rows(activations, layer, image_ids)
        fitted = clone(estimator).fit(X, patterns[train][:, all_columns])
        offset = 0
        for roi in rois:
            n = len(columns[roi])
            result.models[(subject, roi, layer)] = _slice_targets(fitted, slice(offset, offset + n))
            result.columns[(subject, roi)] = columns[roi]
            offset += n
        result.train_images[subject] = image_ids
    return result


def _predict(model, X) -> np.ndarray:
    if stores_dual(model):
        return model._linear_predict(X)
    coef = model.coef_
    predicted = (coef @ X.T).T if sp.issparse(coef) else X @ np.asarray(coef).T
    return np.asarray(predicted) + np.asarray(model.intercept_)


def generalization(models: EncodingModels, activations, responses, *, test_kinds: Sequence[str] = ("AN", "AI"),
                   per: str = "centered", n_perm: int = 1000, n_boot: int = 1000, boot_fraction: float = 0.8,
                   level: float = 0.95, compare: tuple[str, str] | None = ("AI", "AN"),
                   alternative: str = "two-sided", seed=0, ci: str = "images",
                   compare_over: str = "images") -> pd.DataFrame:
    """How well models trained on one kind predict responses to other kinds (paper 001, Fig. 6).

    Parameters
    ----------
    models : EncodingModels
    activations : Activations with image_ids
    responses : Responses or mapping of subject to Responses
    test_kinds : sequence of str
    per : {"centered", "pattern", "vertex"}
        Accuracy definition (`brainprobe.stats.prediction_accuracy`). "centered" (default)
        removes each vertex's mean over the test images first, so vertex baselines earn no
        credit; "pattern" is the study's flattened-pattern r, which they dominate.
    n_perm : int
        Image-label permutations for p-values (0: none; all of them when n_images! <= n_perm).
    n_boot : int
        Resamples for the CI (0: none): of images (``ci="images"``) or of vertices.
    boot_fraction : float
        In (0, 1): the share of vertices in each vertex subsample.
    compare : (str, str) or None
        Two test kinds compared, first minus second.
    alternative : {"two-sided", "greater", "less"}
        H1 of the comparison, reported as ``p_compare``; "greater": first > second.
    seed : int or Generator
    ci : {"images", "vertex_subsample"}
        ``"images"`` (default): delete-one-image jackknife interval with t quantiles
        (`brainprobe.stats.jackknife_ci`; generalizes to new images from the same
        distribution; ``n_boot`` > 0 only switches it on). ``"vertex_subsample"``: the
        paper's ``boot_fraction`` subsamples of vertices without replacement, centred and
        rescaled (`brainprobe.stats.subsample_ci`); it holds the images fixed and assumes
        independent vertices, which spatially smooth fMRI data are not (its 95% intervals cover
        ~70% there).
    compare_over : {"images", "vertices"}
        ``"images"`` (default): the two kinds' images are relabelled (`n_perm` times, within
        their source pairs when every image of one kind has a partner of the other by
        ``source_id``) and the difference recomputed: a permutation test over images that
        holds its size under spatially smooth data. ``"vertices"``: the paper's vertex
        subsamples (`brainprobe.stats.subsample_p`), which need ``n_boot`` and assume fixed
        images and independent vertices.

    Returns
    -------
    DataFrame
        One row per (subject, roi, layer, test_kind): ``accuracy``, ``accuracy_definition``,
        ``p_perm``, ``ci95_low``, ``ci95_high``, ``ci_method``, ``resampled`` (what the CI
        resampled), ``n_images``, ``n_vertices``, and on the first compared kind's rows
        ``difference`` (first minus second), ``direction``, ``p_compare`` (of
        ``alternative``), ``p_compare_greater``, ``p_compare_less``, ``compare_resampled``.
    """
    check_resampling(n_perm=n_perm, n_boot=n_boot, boot_fraction=boot_fraction)
    if ci not in ("images", "vertex_subsample"):
        raise ValueError(f"ci: expected 'images' or 'vertex_subsample', found {ci!r}")
    if compare_over not in ("images", "vertices"):
        raise ValueError(f"compare_over: expected 'images' or 'vertices', found {compare_over!r}")
    if n_boot and not 0 < boot_fraction < 1:
        raise ValueError(f"boot_fraction: expected a value in (0, 1), found {boot_fraction}")
    rng = as_generator(seed)
    subjects = _as_subjects(responses)
    records = []
    tail = f"ci{round(level * 100)}"
    for subject in models.subjects:
        patterns, table = subjects[subject].average_repeats()
        for roi in models.rois:
            columns = models.columns[(subject, roi)]
            by_vertices = n_boot and (ci == "vertex_subsample" or compare_over == "vertices")
            if by_vertices:  # the subsample indices (int64) and a sample of scores per resample
                check_allocation(n_boot * (8 * len(columns) + 8 * 4), f"generalization with n_boot = {n_boot} on "
                                 f"{len(columns)} vertices", "lower n_boot ([encoding] n_boot in a study file)")
            shared = bootstrap_indices(len(columns), n_boot, rng, fraction=boot_fraction, replace=False) if by_vertices else None
            if by_vertices and shared.shape[1] >= len(columns):
                raise ValueError(f"{subject} {roi}: {len(columns)} vertices is too few to subsample "
                                 f"{boot_fraction:.0%} of them; set n_boot = 0")
            for layer in models.layers:
                model = models[(subject, roi, layer)]
                samples, by_kind, images = {}, {}, {}
                for kind in test_kinds:
                    rows = (table["kind"] == kind).to_numpy()
                    ids = table.loc[rows, "image_id"].tolist()
                    if len(ids) < 3:
                        raise ValueError(f"{subject}: only {len(ids)} images of kind {kind!r} to test on")
                    X = layer_rows(activations, layer, ids)
                    predicted, measured = _predict(model, X), patterns[rows][:, columns]
                    p = (accuracy_permutation_test(predicted, measured, per=per, n_perm=n_perm, seed=rng)[2]
                         if n_perm else np.nan)
                    accuracy = prediction_accuracy(predicted, measured, per=per)
                    record = {"subject": subject, "roi": roi, "layer": layer, "test_kind": kind,
                              "accuracy": accuracy, "accuracy_definition": per,
                              "p_perm": p, "n_images": len(ids), "n_vertices": len(columns)}
                    images[kind] = (predicted, measured, table.loc[rows, "source_id"].tolist()
                                    if "source_id" in table else None)
                    if by_vertices:
                        samples[kind] = accuracy_vertex_bootstrap(predicted, measured, per=per, indices=shared)
                    if n_boot and ci == "vertex_subsample":
                        low, high = subsample_ci(samples[kind], accuracy, len(columns), shared.shape[1], level,
                                                 bounds=(-1.0, 1.0))
                        record.update({f"{tail}_low": float(low), f"{tail}_high": float(high),
                                       "ci_method": SUBSAMPLE_CI_METHOD, "resampled": RESAMPLED_VERTICES})
                    elif n_boot:
                        low, high = _image_jackknife_ci(predicted, measured, accuracy, per, level)
                        record.update({f"{tail}_low": low, f"{tail}_high": high,
                                       "ci_method": JACKKNIFE_CI_METHOD, "resampled": RESAMPLED_IMAGES})
                    records.append(record)
                    by_kind[kind] = record
                if compare and compare_over == "vertices" and n_boot and all(k in samples for k in compare):
                    _add_comparison(by_kind[compare[0]], by_kind[compare[1]], samples[compare[0]] - samples[compare[1]],
                                    len(columns), shared.shape[1], alternative)
                    by_kind[compare[0]]["compare_resampled"] = RESAMPLED_VERTICES
                elif compare and compare_over == "images" and n_perm and all(k in images for k in compare):
                    _add_image_comparison(by_kind[compare[0]], by_kind[compare[1]], images[compare[0]],
                                          images[compare[1]], per, n_perm, alternative, rng)
    return pd.DataFrame.from_records(records)


def _add_comparison(first: dict, second: dict, difference: np.ndarray, n_vertices: int, n_sub: int,
                    alternative: str) -> None:
    """The vertex-subsample comparison of two test kinds, written on the first kind's row.

    The p-values use the same rescaled subsample deviations as the intervals
    (`brainprobe.stats.subsample_p`), so a p below 0.05 two-sided goes with a 95% interval of
    the difference that excludes 0.
    """
    observed = first["accuracy"] - second["accuracy"]
    p = {side: float(subsample_p(difference, observed, n_vertices, n_sub, 0.0, side))
         for side in {alternative, "greater", "less"}}
    _write_comparison(first, second, observed, p, alternative)


def _write_comparison(first: dict, second: dict, observed: float, p: dict, alternative: str, **extra) -> None:
    """The difference of two test kinds, its direction and its p-values, on the first kind's row."""
    first.update({
        "difference": observed,
        "direction": direction_label(observed, first["test_kind"], second["test_kind"]),
        "p_compare": p[alternative],
        "p_compare_greater": p["greater"],
        "p_compare_less": p["less"],
        **extra,
    })


def _image_jackknife_ci(predicted, measured, accuracy: float, per: str, level: float) -> tuple[float, float]:
    """Delete-one-image jackknife interval of the accuracy (t quantiles; `brainprobe.stats.jackknife_ci`)."""
    kept = leave_one_out(len(predicted))
    values = batched_accuracy(predicted[kept], measured[kept], per)
    low, high = jackknife_ci(accuracy, values, level)
    return float(np.clip(low, -1, 1)), float(np.clip(high, -1, 1))


def _add_image_comparison(first: dict, second: dict, first_images, second_images, per: str, n_perm: int,
                          alternative: str, rng) -> None:
    """The image relabeling comparison of two test kinds, written on the first kind's row.

    Paired by source when both kinds have one image per source, over the same sources
    (AI and AN images made from the same RE photo); otherwise the kinds' images are pooled and
    relabelled freely.
    """
    (pf, mf, sources_f), (ps, ms, sources_s) = first_images, second_images
    paired = (sources_f is not None and sources_s is not None and len(set(sources_f)) == len(sources_f)
              and sorted(sources_f) == sorted(sources_s))
    if paired:
        order = pd.Series(np.arange(len(sources_s)), index=sources_s).loc[sources_f].to_numpy()
        ps, ms = ps[order], ms[order]
    result = accuracy_difference_test(pf, mf, ps, ms, per=per, n_perm=n_perm, paired=paired,
                                      alternative=alternative, seed=rng)
    observed = float(result.observed[0])
    p = {side: float(p_from_null(result.observed, result.null, side, exact=result.exact)[0])
         for side in {alternative, "greater", "less"}}
    _write_comparison(first, second, observed, p, alternative,
                      compare_resampled=RESAMPLED_IMAGES + (" (relabelled within source pairs)" if paired else " (relabelled)"))


def _per_vertex_r(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    p = predicted - predicted.mean(axis=0)
    m = measured - measured.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p * m).sum(axis=0) / np.sqrt((p * p).sum(axis=0) * (m * m).sum(axis=0))


def best_layer(models: EncodingModels, activations, responses, *, on: str = "RE", cv: int = 5,
               repeats: Sequence[int] | None = None, estimator=None) -> pd.DataFrame:
    """For every vertex, the layer whose model predicts it best (paper 001, Supplementary Note 1).

    Parameters
    ----------
    models : EncodingModels
    activations, responses
    on : str
        ``"RE"`` (or the training kind): per-vertex r on held-out training images, by ``cv``-fold
        cross-validation (models refitted on each fold with ``estimator``, default the one used
        by ``models``). Any other kind: per-vertex r of the fitted models on those images.
    repeats : sequence of int, optional
        Score each repeat separately (the study: each of the two presentations is one
        measurement); default the mean over repeats.

    Returns
    -------
    DataFrame
        One row per (subject, measurement, roi, column): ``best_layer``, ``best_r``, and one
        ``r_<layer>`` column per layer.
    """
    subjects = _as_subjects(responses)
    records = []
    for subject in models.subjects:
        data = subjects[subject]
        measurements = [("mean", None)] if repeats is None else [(f"repeat{r}", [r]) for r in repeats]
        for label, chosen in measurements:
            patterns, table = data.average_repeats(chosen)
            rows = (table["kind"] == on).to_numpy()
            ids = table.loc[rows, "image_id"].tolist()
            if chosen is None and estimator is None and ids == models.train_images[subject]:
                models._cross_validate_subject(subject, patterns, table, activations, cv)  # every ROI per fit
            for roi in models.rois:
                columns = models.columns[(subject, roi)]
                measured = patterns[rows][:, columns]
                scores = np.empty((len(models.layers), len(columns)))
                for k, layer in enumerate(models.layers):
                    X = layer_rows(activations, layer, ids)
                    model = models[(subject, roi, layer)]
                    if ids == models.train_images[subject]:
                        predicted = heldout_predictions(models, subject, roi, layer, X, measured, cv, estimator,
                                                        measurement=label)
                    else:
                        predicted = _predict(model, X)
                    scores[k] = _per_vertex_r(predicted, measured)
                filled = np.where(np.isnan(scores), -np.inf, scores)
                best = filled.argmax(axis=0)
                frame = pd.DataFrame({"subject": subject, "measurement": label, "roi": roi, "column": columns,
                                      "best_layer": [models.layers[b] for b in best],
                                      "best_r": scores[best, np.arange(len(columns))]})
                for k, layer in enumerate(models.layers):
                    frame[f"r_{layer}"] = scores[k]
                records.append(frame)
    return pd.concat(records, ignore_index=True)


def best_layer_proportions(best: pd.DataFrame, layers: Sequence[str]) -> pd.DataFrame:
    """Proportion of each ROI's vertices best predicted by each layer, per subject and measurement
    (and per ``test_kind`` when the table has that column: the supplement's AN and AI panels).

    Returns
    -------
    DataFrame
        One row per ([test_kind,] subject, measurement, roi, layer): ``proportion`` (0 for a
        layer that is best nowhere).
    """
    keys = (["test_kind"] if "test_kind" in best else []) + ["subject", "measurement", "roi"]
    counts = (best.groupby(keys, sort=False)["best_layer"].value_counts(normalize=True)
              .rename("proportion").reset_index())
    present = best[keys].drop_duplicates()
    full = present.merge(pd.DataFrame({"best_layer": list(layers)}), how="cross")
    return (full.merge(counts, on=[*keys, "best_layer"], how="left").fillna({"proportion": 0.0})
            .rename(columns={"best_layer": "layer"}))


def best_layer_tests(proportions: pd.DataFrame, *, low: Sequence[str], high: Sequence[str],
                     early_roi: str = "V1", late_roi: str = "LO", unit: str = "subjects") -> pd.DataFrame:
    """The paired t-tests of the study's supplement.

    - ``low vs high``: the proportion of vertices (over all ROIs) best predicted by the ``low``
      layers against the ``high`` layers;
    - ``early vs late ROI``: the proportion of ``high``-layer vertices in ``early_roi`` against
      ``late_roi``.

    Parameters
    ----------
    unit : {"subjects", "measurements"}
        ``"subjects"`` (default): the measurements of a subject (its repeats) are averaged
        first and the test is over subjects (df = n_subjects - 1): repeats of one subject are
        not independent samples of the population. ``"measurements"``: the paper's test, each
        subject x repeat one pair (df = n_subjects x n_repeats - 1), which treats repeats as if
        they were subjects.

    Returns
    -------
    DataFrame
        One row per test: ``test``, ``mean_difference``, ``t``, ``df``, ``p``, ``n``,
        ``resampled`` (what the t-test's df count).
    """
    if unit not in ("subjects", "measurements"):
        raise ValueError(f"unit: expected 'subjects' or 'measurements', found {unit!r}")
    keyed = proportions.assign(group=np.where(proportions["layer"].isin(low), "low",
                                              np.where(proportions["layer"].isin(high), "high", "other")))
    per_measure = keyed.groupby(["subject", "measurement", "roi", "group"])["proportion"].sum().unstack("group", fill_value=0)
    for group in ("low", "high"):
        if group not in per_measure:
            per_measure[group] = 0.0
    if unit == "subjects":
        per_measure = per_measure.groupby(["subject", "roi"]).mean()
        paired_by, label = ["subject"], "subjects"
    else:
        paired_by, label = ["subject", "measurement"], "subject x repeat measurements (paper; repeats counted as pairs)"
    averaged = per_measure.groupby(paired_by).mean()
    rows = [{"test": f"layers {'+'.join(low)} vs {'+'.join(high)}", **_defined_ttest(averaged["low"], averaged["high"])}]
    high_by_roi = per_measure["high"].unstack("roi")
    if early_roi in high_by_roi and late_roi in high_by_roi:
        rows.append({"test": f"high layers: {late_roi} vs {early_roi}",
                     **_defined_ttest(high_by_roi[late_roi], high_by_roi[early_roi])})
    return pd.DataFrame(rows).assign(resampled=label)


def _defined_ttest(a, b) -> dict:
    """A paired t-test, with t and p NaN where it is undefined: differences without spread (e.g.
    two subjects with the same difference) give t = +-inf and p = 0, which is no evidence."""
    result = paired_ttest(a, b)
    if not np.isfinite(result["t"]):
        result.update(t=np.nan, p=np.nan)
    return result
