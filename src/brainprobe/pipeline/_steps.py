"""The study's steps as plain functions: inputs in, tables out (no caching, no files here).

`Study` (in ``_study.py``) chains them, caches their outputs and runs the per-subject ones in
parallel. Keeping them free of I/O lets a user call any one of them on their own objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .._errors import BrainprobeInputError, MissingFileError
from ..data import Responses, kinds_from_stimuli, load_responses, load_trial_table, simulate_subject
from ..encoding import (
    EncodingModels,
    best_layer,
    best_layer_proportions,
    fit_encoding_models,
    generalization,
)
from ..encoding._study import estimator_from_name
from ..models import Activations, LayeredModel
from ..roi import (
    add_atlas_rois,
    geodesic_neighbourhoods,
    label_image_rois,
    load_mesh,
    localizer_mask,
    neighbourhoods_for_columns,
    select_reliable_vertices,
    spherical_neighbourhoods,
    standard_meshes,
)
from ..rsa import (
    align_kinds,
    kind_difference,
    kind_similarity,
    layer_trend,
    rdm,
    searchlight_kind_similarity,
    square_rdm,
)
from ..stimuli import StimulusSet, open_stimuli, sample_images
from ._inference import image_rsa, re_rdms

__all__ = [
    "add_rois",
    "brain_rsa",
    "classical_mds",
    "encoding_analysis",
    "encoding_models",
    "load_subject",
    "make_stimuli",
    "network_layers",
    "network_rdm_tables",
    "network_rsa",
    "prepare_subject",
    "read_subject",
    "searchlight_map",
    "selection_tables",
    "simulated_subject",
    "study_meshes",
]

KINDS = ("RE", "AN", "AI")


def network_layers(model: LayeredModel, network: Mapping) -> list[str]:
    """A network's configured layers (an entry of `StudyConfig.networks`), or all but the softmax."""
    layers = list(network["layers"]) or [n for n in model.layer_names if n != "prob"]
    unknown = [n for n in layers if n not in model.layer_names]
    if unknown:
        raise ValueError(f"network {network['label']!r}: layers {unknown} are not layers of {model.name}; "
                         f"layers are {model.layer_names}")
    return layers


def make_stimuli(model: LayeredModel, config, *, progress: bool | None = None) -> tuple[StimulusSet, pd.DataFrame]:
    """RE images from the configured source, their AN and AI images, and what the network says.

    Returns
    -------
    stimuli : StimulusSet
    table : DataFrame
        The stimulus table with the network's ``top1_class``, ``top1_name``, ``p_top1`` and
        the probability of the image's true class ``p_true`` and target ``p_target``.
    """
    from ..adversarial import paper_design

    settings = config["stimuli"]
    size = model.input_size
    source = settings["source"]
    regular = sample_images(settings["n_images"], size=size) if source == "samples" else open_stimuli(source, size=size)
    has_kinds = set(regular.table["kind"]) >= {"AN", "AI"}
    if settings["re_threshold"] > 0:
        regular = screen_regular_images(model, regular, settings["re_threshold"], settings["on_low_confidence"])
    if settings["generate"] and not has_kinds and config["design"]["kind"] != "general":
        regular = regular.with_table(regular.table.assign(kind="RE"))
        options = {"max_iter": settings["max_iter"]}
        if config["network"]["batch_size"]:
            options["batch_size"] = config["network"]["batch_size"]
        stimuli = paper_design(model, regular, seed=config.seed, threshold=settings["threshold"],
                               an_options=options, ai_options=options, progress=progress)
    else:
        stimuli = regular
    missing = [k for k in KINDS if k not in set(stimuli.table["kind"])]
    if missing and not is_general(config, stimuli.table):
        raise ValueError(f"[stimuli] source {source}: no {missing} images for [design] kind = "
                         f"{config['design']['kind']!r}; set [design] kind = \"general\" (any images: each ROI's "
                         "RDM against each layer's), or generate = true, or provide them (a folder saved by "
                         "brainprobe with kinds RE, AN and AI)")
    return stimuli, describe_stimuli(model, stimuli)


def may_be_general(config) -> bool:
    """Before the stimuli are known: whether the general design is possible (trials of any kind kept)."""
    kind = config["design"]["kind"]
    return kind == "general" or (kind == "auto" and not config["stimuli"]["generate"])


def is_general(config, stimulus_table: pd.DataFrame | None = None) -> bool:
    """Whether the study runs the general design (see the module docstring)."""
    kind = config["design"]["kind"]
    if kind != "auto":
        return kind == "general"
    if config["stimuli"]["generate"]:
        return False
    return stimulus_table is not None and not {"AN", "AI"} <= set(stimulus_table["kind"].astype(str))


def screen_regular_images(model: LayeredModel, stimuli: StimulusSet, threshold: float,
                          on_low_confidence: str = "raise") -> StimulusSet:
    """Keep RE images the network classifies confidently, as the study did (top-1 p >= 0.99).

    Images below ``threshold`` are an error that lists each with its top-1 class and p, are
    dropped with a warning (``on_low_confidence="drop"``), or are kept with a warning
    (``"keep"``: a photo set that cannot meet the study's rule, such as the 12 bundled photos,
    still runs; the stimulus table's top-1 p says which images fall below). Only RE rows are
    screened.
    """
    import warnings

    regular = (stimuli.table["kind"] == "RE").to_numpy()
    probabilities = model.predict_proba(stimuli.images[torch.as_tensor(np.flatnonzero(regular))])
    top1 = probabilities.argmax(axis=1)
    p_top1 = probabilities[np.arange(len(top1)), top1]
    low = np.flatnonzero(p_top1 < threshold)
    if not len(low):
        return stimuli
    ids = stimuli.table.loc[regular, "image_id"].to_numpy()
    listed = ", ".join(f"{ids[i]} ({model.class_name(int(top1[i]))}, p = {p_top1[i]:.3f})" for i in low[:10])
    more = f" and {len(low) - 10} more" if len(low) > 10 else ""
    message = (f"[stimuli] re_threshold = {threshold}: {len(low)} of {len(ids)} RE images are classified below it: "
               f"{listed}{more}")
    if on_low_confidence == "raise":
        raise ValueError(message + "; replace them, lower re_threshold, or set on_low_confidence = \"drop\"")
    if on_low_confidence == "keep":
        warnings.warn(message + "; kept (on_low_confidence = \"keep\")", stacklevel=2)
        return stimuli
    if len(low) == len(ids):
        raise ValueError(message + "; no RE image would be left (on_low_confidence = \"keep\" keeps them)")
    warnings.warn(message + "; dropped", stacklevel=2)
    keep = np.ones(len(stimuli), bool)
    keep[np.flatnonzero(regular)[low]] = False
    return stimuli[np.flatnonzero(keep)]


def describe_stimuli(model: LayeredModel, stimuli: StimulusSet) -> pd.DataFrame:
    """The stimulus table plus the network's top-1 class and probabilities for every image."""
    probabilities = model.predict_proba(stimuli.images)
    rows = np.arange(len(stimuli))
    top1 = probabilities.argmax(axis=1)
    table = stimuli.table.copy()
    table["top1_class"] = top1
    table["top1_name"] = [model.class_name(int(t)) for t in top1]
    table["p_top1"] = probabilities[rows, top1]
    for column, name in (("class_index", "p_true"), ("target_class", "p_target")):
        if column in table:
            index = pd.to_numeric(table[column], errors="coerce").fillna(-1).astype(int).to_numpy()
            table[name] = np.where(index >= 0, probabilities[rows, np.clip(index, 0, None)], np.nan)
    return table


def network_rsa(activations: Activations, stimuli_table: pd.DataFrame, layers: Sequence[str], config) -> dict:
    """RE-AN / RE-AI similarity of every layer (Fig. 5), its trend over layers and AI-vs-AN test."""
    rsa = config["rsa"]
    patterns = {layer: np.asarray(activations[layer]) for layer in layers}
    common = {"metric": rsa["metric"], "method": rsa["method"]}
    similarity = kind_similarity(patterns, stimuli_table, n_perm=rsa["n_perm"], n_boot=rsa["n_boot"],
                                 seed=config.seed, progress=False, unit="layer", **common)
    trend = layer_trend(similarity, order=list(layers),
                        # "exact" where it can be enumerated (ties over > 9 layers cannot): p_method says which
                        exact="auto" if rsa["trend_p"] == "exact" else False)
    difference = kind_difference(patterns, stimuli_table, n_boot=rsa["n_boot"], seed=config.seed,
                                 alternative=rsa["alternative"], unit="layer", **common)
    # intervals over images by default; the trend also tested with image resamples of every layer
    images = image_rsa(similarity, difference, patterns, stimuli_table, config,
                       config.seed, units="units", order=list(layers))
    if "trend_images" in images:
        trend = trend.merge(images["trend_images"].drop(columns="resampled"), on="pair", how="left").assign(
            resampled="Mann-Kendall (paper): layers as independent values; slope, p_boot_trend: images")
    return {"network_rsa": images["similarity"], "network_trend": trend, "network_difference": images["difference"]}


def network_rdm_tables(activations: Activations, stimuli_table: pd.DataFrame, layers: Sequence[str],
                       metric: str) -> dict:
    """The tables behind the network's RDM figure: each layer's RDM of every kind and a 2-D MDS.

    Returns
    -------
    dict
        ``network_rdms``: one row per layer x kind x pair of sources (``layer``, ``kind``,
        ``source_a``, ``source_b``, ``dissimilarity``), the upper triangle row by row over the
        sources in the order of the RE rows; ``network_mds``: one row per layer x image
        (``layer``, ``image_id``, ``kind``, ``source_id``, ``x``, ``y``), the classical MDS of
        the RDM of all the images of the three kinds.
    """
    sources, rows = align_kinds(stimuli_table)
    upper_a, upper_b = np.triu_indices(len(sources), k=1)
    names = np.asarray([str(s) for s in sources], dtype=object)
    every = np.concatenate(list(rows.values()))
    kinds = np.concatenate([[kind] * len(index) for kind, index in rows.items()])
    rdm_frames, mds_frames = [], []
    for layer in layers:
        values = np.asarray(activations[layer])
        for kind, index in rows.items():
            rdm_frames.append(pd.DataFrame({"layer": layer, "kind": kind, "source_a": names[upper_a],
                                            "source_b": names[upper_b], "dissimilarity": rdm(values[index], metric)}))
        square = square_rdm(rdm(values[every], metric))
        xy = classical_mds(np.nan_to_num((square + square.T) / 2))
        mds_frames.append(pd.DataFrame({"layer": layer, "image_id": stimuli_table["image_id"].to_numpy()[every],
                                        "kind": kinds, "source_id": np.concatenate([names] * len(rows)),
                                        "x": xy[:, 0], "y": xy[:, 1]}))
    return {"network_rdms": pd.concat(rdm_frames, ignore_index=True),
            "network_mds": pd.concat(mds_frames, ignore_index=True)}


def classical_mds(square: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Torgerson's classical MDS of a dissimilarity matrix (n, n): coordinates (n, n_components).

    Double-centre the squared dissimilarities and keep the leading eigenvectors scaled by the
    square roots of their (positive) eigenvalues; deterministic, up to each axis' sign.
    """
    n = len(square)
    centring = np.eye(n) - np.full((n, n), 1.0 / n)
    inner = -0.5 * centring @ (np.asarray(square, float) ** 2) @ centring
    values, vectors = np.linalg.eigh(inner)
    order = np.argsort(values)[::-1][:n_components]
    return vectors[:, order] * np.sqrt(np.clip(values[order], 0, None))


# -- subjects ----------------------------------------------------------------------------------------
def study_meshes(mesh: str | Mapping, surface: str = "midthickness") -> dict:
    """Meshes per hemisphere: a template name (`standard_meshes`) or a mapping of hemi to file."""
    if isinstance(mesh, Mapping):
        return {hemi: load_mesh(path) for hemi, path in mesh.items()}
    return standard_meshes(mesh, surface)


def simulated_subject(stimuli: StimulusSet, config, index: int, features: Mapping | None = None) -> Responses:
    """A simulated subject; ``features`` (ROI -> (n_images, n_features)) plants what each ROI reads."""
    settings = config["subjects"]
    responses, _ = simulate_subject(
        stimuli, mesh=settings["mesh"], rois=config["rois"]["names"], vertices=settings["vertices"], features=features,
        snr=settings["snr"], n_repeats=settings["n_repeats"], seed=np.random.default_rng([config.seed, index]),
        subject=f"sub-{index + 1:02d}", fwhm_mm=settings["fwhm_mm"],
    )
    return responses


def read_subject(entry: Mapping) -> tuple[Responses, bool]:
    """One ``[[subject]]``'s files read into `Responses` (all trials, no ROIs yet), and whether
    its trial (or condition) table gives the trials' kinds; errors name the subject and file.

    A ``vertices`` CSV (one row per column of the betas) may give ``hemi`` and ``vertex`` (the
    place of each column on the subject's meshes) and, with ``[rois] atlas = "columns"``, one
    boolean column per ROI. A GLMsingle output takes its trials from ``conditions`` and
    DESIGNINFO (runs from its ``numtrialrun``).
    """
    where = f"[[subject]] {entry['id']}"
    meshes = study_meshes(entry["meshes"]) if entry["meshes"] else None
    try:
        trials = load_trial_table(entry["trials"]) if entry["trials"] else None
        conditions = load_trial_table(entry["conditions"]) if entry.get("conditions") else None
        described = conditions if conditions is not None else trials
        has_kinds = described is not None and "kind" in described and bool(
            described["kind"].notna().all() and (described["kind"].astype(str) != "").all())
        responses = load_responses(
            entry["betas"], trials, mask=entry["mask"] or None, meshes=meshes, vertices=entry["vertices"] or None,
            designinfo=entry.get("designinfo") or None, conditions=conditions,
            glmsingle_model=entry.get("glmsingle_model", "TYPED"), allow_pickle=entry.get("allow_pickle", False),
            on_bad_vertices=entry["on_bad_vertices"], subject=entry["id"])
    except (ValueError, KeyError, FileNotFoundError) as error:
        # the library's error (a parser's line, a corrupt HDF5 file) stays in the traceback as the cause
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        kind = (type(error) if isinstance(error, BrainprobeInputError) else
                MissingFileError if isinstance(error, FileNotFoundError) else BrainprobeInputError)
        raise kind(f"{where}: {message}") from error
    if meshes and (responses.vertices["hemi"] == "").all():
        sizes = {h: m.n_vertices for h, m in meshes.items()}
        raise ValueError(f"{where}: cannot place the {responses.n_vertices} columns of {entry['betas']} on the meshes "
                         f"({sizes} vertices): give a vertices table (hemi, vertex: one row per column)")
    return responses, has_kinds


def prepare_subject(responses: Responses, entry: Mapping, config, stimulus_table: pd.DataFrame | None = None,
                    *, has_kinds: bool = True, general: bool = False) -> Responses:
    """A subject's trial kinds checked against (or taken from) the stimulus table, its ROIs added,
    and its RE/AN/AI trials kept (blank, fixation and localizer trials leave the analysis)."""
    where = f"[[subject]] {entry['id']}"
    trials = responses.trials if has_kinds else responses.trials.drop(
        columns="kind").assign(kind=responses.trials["kind"].where(~_image_trials(responses.trials), None))
    if stimulus_table is not None:
        try:
            trials = kinds_from_stimuli(trials, stimulus_table, source=f"{where} trials")
        except ValueError as error:
            raise ValueError(str(error)) from None
    elif not has_kinds:
        raise ValueError(f"{where} trials: no 'kind' column; kinds come from the stimulus table (pass it)")
    if trials is not responses.trials:
        responses = Responses(responses.betas, trials, responses.vertices, meshes=responses.meshes,
                              source=responses.source, subject=responses.subject)
    add_rois(responses, entry, config)
    study_trials = responses.trials["kind"].isin(KINDS).to_numpy()
    if general:  # any image, any kind: every image trial is a study trial
        study_trials = _image_trials(responses.trials).to_numpy() & responses.trials["image_id"].notna().to_numpy()
        if stimulus_table is not None:
            study_trials &= responses.trials["image_id"].isin(stimulus_table["image_id"].astype(str)).to_numpy()
    if not study_trials.any():
        raise ValueError(f"{where} trials: no trials of kinds {KINDS}; kinds are {sorted(set(responses.trials['kind']))}")
    re_repeats = set(responses.trials.loc[responses.trials["kind"] == "RE", "repeat"].tolist())
    if config["selection"]["enabled"] and not {1, 2} <= re_repeats:  # said now, not after the network steps
        raise ValueError(f"{where} trials {entry.get('trials') or entry.get('betas')}: vertex selection compares "
                         f"repeats 1 and 2 of the RE images; its RE trials have repeats {sorted(re_repeats)} "
                         "(give a repeat column, or set [selection] enabled = false)")
    # blanks and localizer blocks have served (ROIs); the analyses read the RE/AN/AI trials only
    return responses.subset(trials=study_trials)


def _image_trials(trials: pd.DataFrame) -> pd.Series:
    return trials["is_image"].astype(bool) if "is_image" in trials else pd.Series(True, index=trials.index)


def load_subject(entry: Mapping, config, stimulus_table: pd.DataFrame | None = None) -> Responses:
    """One ``[[subject]]``'s responses with its ROI columns (`read_subject` then `prepare_subject`).

    Without a ``kind`` column in its trial (or condition) table, the kinds come from
    ``stimulus_table``, which is then required; with one, a kind that contradicts the stimulus
    table is an error.
    """
    responses, has_kinds = read_subject(entry)
    return prepare_subject(responses, entry, config, stimulus_table, has_kinds=has_kinds)


def add_rois(responses: Responses, entry: Mapping, config) -> None:
    """Add the configured ROIs as boolean vertex columns (MMP1.0 atlas, label files or a table)."""
    names, atlas = config["rois"]["names"], config["rois"]["atlas"]
    where = f"[[subject]] {entry['id']}"
    if atlas == "columns":
        missing = [n for n in names if n not in responses.vertices]
        if missing:
            raise ValueError(f"{where} vertices {entry['vertices']}: no column for ROIs {missing}; "
                             f"columns are {list(responses.vertices.columns)}")
        for name in names:
            responses.add_roi(name, responses.vertices[name].to_numpy(), where=f"{where} vertices {entry['vertices']}")
        _apply_localizers(responses, config, where)  # honoured with table ROIs too
        return
    try:
        labels = entry["labels"] if atlas == "labels" else None
        if isinstance(labels, str) and labels.lower().endswith((".nii", ".nii.gz")):
            # a volume's label image: ROI k of [rois] names is label value k (1, 2, ...)
            for name, mask in label_image_rois(responses.vertices, labels,
                                               {n: k + 1 for k, n in enumerate(names)}).items():
                responses.add_roi(name, mask)
        else:
            add_atlas_rois(responses, names, labels=labels)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    _apply_localizers(responses, config, where)
    empty = [n for n in names if not responses.vertices[n].any()]
    if empty:
        raise ValueError(f"{where}: ROIs {empty} contain none of the subject's vertices")


def _apply_localizers(responses: Responses, config, where: str) -> None:
    """Keep, in each ROI with a localizer, the vertices where condition > baseline (two-sample t,
    two-tailed p < ``[rois] localizer_alpha``), and drop those of an ``exclude`` contrast: the
    study's LO is intact > scrambled objects minus hMT+ (moving > static)."""
    for name, contrast in config["rois"]["localizers"].items():
        keep = responses.vertices[name].to_numpy() & _localizer(responses, name, contrast["include"], config, where)
        if contrast["exclude"]:
            keep &= ~_localizer(responses, name, contrast["exclude"], config, where)
        responses.add_roi(name, keep)


def _localizer(responses: Responses, name: str, contrast: str, config, where: str) -> np.ndarray:
    kinds = responses.trials["kind"].to_numpy()
    condition, baseline = (part.strip() for part in contrast.split(">"))
    missing = [k for k in (condition, baseline) if not (kinds == k).sum() >= 2]
    if missing:
        raise ValueError(f"{where}: [rois] localizers {name} = {contrast!r}: fewer than 2 trials of kind {missing}; "
                         f"kinds are {sorted(set(kinds))}")
    mask, _ = localizer_mask(responses.betas[kinds == condition], responses.betas[kinds == baseline],
                             alpha=config["rois"]["localizer_alpha"])
    return mask


def volume_neighbourhoods(responses: Responses, config) -> dict | None:
    """Spheres of ``[selection] radius_mm`` on a volume's voxel grid (None for data without voxel mm)."""
    vertices = responses.vertices
    if responses.meshes or not (vertices["hemi"] == "").all() or not {"x", "y", "z"} <= set(vertices.columns):
        return None
    return spherical_neighbourhoods(vertices, config["selection"]["radius_mm"])


def neighbourhoods(meshes: Mapping, config, cache_dir) -> dict:
    """Geodesic disks (``[selection] radius_mm``) on each hemisphere's mesh."""
    settings = config["selection"]
    return {hemi: geodesic_neighbourhoods(mesh, settings["radius_mm"], method=settings["method"],
                                          cache_dir=cache_dir, progress=False)
            for hemi, mesh in meshes.items()}


def selection_tables(responses: Responses, disks: Mapping | None, config, *, too_few: str = "raise") -> pd.DataFrame:
    """Reliability of every ROI vertex and the selected ones (or every ROI vertex, unselected).

    ``too_few``: see `select_reliable_vertices` (Fig. S2 keeps a small ROI whole, with a warning).
    """
    frames = []
    for roi in config["rois"]["names"]:
        if config["selection"]["enabled"]:
            # crossnobis needs runs as folds; a disk's reliability reads correlation distances instead
            metric = "correlation" if config["rsa"]["metric"] == "crossnobis" else config["rsa"]["metric"]
            table = select_reliable_vertices(responses, roi, disks, n_per_hemi=config["selection"]["n_per_hemi"],
                                             metric=metric, method=config["rsa"]["method"],
                                             split=config["selection"]["split"], seed=config.seed,
                                             too_few=too_few)
        else:
            columns = np.flatnonzero(responses.roi_mask(roi))
            table = responses.vertices.loc[columns, ["hemi", "vertex"]].reset_index(drop=True)
            table.insert(0, "column", columns)
            table = table.assign(reliability=np.nan, rank=0, selected=True)
        frames.append(table.assign(subject=responses.subject, roi=roi))
    return pd.concat(frames, ignore_index=True)


def selected_columns(selection: pd.DataFrame) -> dict[str, np.ndarray]:
    chosen = selection[selection["selected"]]
    return {roi: part["column"].to_numpy() for roi, part in chosen.groupby("roi", sort=False)}


def check_images(responses: Responses, stimuli_table: pd.DataFrame) -> None:
    """Every image the subject saw must be in the stimulus set (checked before heavy work)."""
    unknown = sorted(set(responses.trials["image_id"]) - set(stimuli_table["image_id"]))
    if unknown:
        raise ValueError(f"{responses.subject}: trials show images that are not in the stimulus set: {unknown[:5]}")


def image_patterns(responses: Responses, stimuli_table: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Mean pattern per image (n_images, n_vertices), with the stimulus table's rows for those images."""
    check_images(responses, stimuli_table)
    patterns, table = responses.average_repeats()
    return patterns, stimuli_table.set_index("image_id").loc[table["image_id"]].reset_index()


def brain_rsa(averaged: tuple[np.ndarray, pd.DataFrame], selection: pd.DataFrame, subject: str, config,
              seed) -> dict:
    """RE-AN / RE-AI similarity in every ROI (Fig. 3) and the AI-vs-AN bootstrap test.

    ``averaged`` is `image_patterns`'s output: one pattern per image and its stimulus rows.
    """
    rsa = config["rsa"]
    patterns, table = averaged
    sets = {roi: patterns[:, columns] for roi, columns in selected_columns(selection).items()}
    common = {"metric": rsa["metric"], "method": rsa["method"]}
    similarity = kind_similarity(sets, table, n_perm=rsa["n_perm"], n_boot=rsa["n_boot"], seed=seed,
                                 progress=False, unit="roi", **common)
    difference = kind_difference(sets, table, n_boot=rsa["n_boot"], seed=seed, alternative=rsa["alternative"],
                                 unit="roi", **common)
    images = image_rsa(similarity, difference, sets, table, config, seed, units="vertices")
    # whether a hemisphere had fewer than n_per_hemi vertices to select from (then all of them were
    # kept: Fig. S2's 200 per hemisphere in a small atlas ROI); n_units says how many were read
    roi_of = images["similarity"]["roi"]
    chosen = selection[selection["selected"]]
    per_hemi = chosen.groupby(["roi", "hemi"]).size().groupby(level="roi").min()
    whole = roi_of.map(per_hemi < config["selection"]["n_per_hemi"]).fillna(False).astype(bool) \
        if config["selection"]["enabled"] else False
    return {"brain_rsa": images["similarity"].assign(whole_roi=whole, subject=subject),
            "brain_difference": images["difference"].assign(subject=subject),
            "brain_rdms": re_rdms(sets, table, rsa["metric"], subject)}


def searchlight_map(responses: Responses, averaged: tuple[np.ndarray, pd.DataFrame], disks: Mapping, config, seed,
                    *, n_jobs: int = 1) -> pd.DataFrame:
    """RE-AN / RE-AI similarity in the disk around every vertex (Fig. 4).

    Blocks of centres run through joblib (``n_jobs``; on the Dask cluster when the study has a
    scheduler); they share one set of relabelings, so the family-wise p-values cover every
    centre and the table does not depend on ``n_jobs``.
    """
    patterns, table = averaged
    members = neighbourhoods_for_columns(responses.vertices, disks)
    result = searchlight_kind_similarity(patterns, table, members, metric=config["rsa"]["metric"],
                                         method=config["rsa"]["method"], n_perm=config["searchlight"]["n_perm"],
                                         seed=seed, progress=False, n_jobs=n_jobs)
    centers = result["center"].to_numpy()
    result.insert(0, "hemi", responses.vertices["hemi"].to_numpy()[centers])
    result.insert(1, "vertex", responses.vertices["vertex"].to_numpy()[centers])
    return result.assign(subject=responses.subject)


def make_estimator(config):
    settings = config["encoding"]
    # ridge: one penalty per vertex by leave-one-out error (a fixed alpha = 1 fits no data set well)
    estimator = estimator_from_name(settings["estimator"])
    if settings["estimator"] in ("romp", "omp"):
        estimator.set_params(n_nonzero=settings["n_nonzero"])
    return estimator


def encoding_models(responses: Responses, selection: pd.DataFrame, activations: Activations, layers: Sequence[str],
                    config, heldout_layers: Sequence[str] = (), train_kind: str | None = "RE") -> EncodingModels:
    """The study's encoding models: one per selected ROI x layer, trained on ``train_kind``
    (paper 001: RE; the general design: None, every image), with the ``[best_layer] cv``-fold
    held-out predictions of ``heldout_layers`` computed once (what `best_layer` on RE, the
    general design's held-out accuracy and the synthesis step's `heldout_accuracy` read)."""
    columns = selected_columns(selection)
    models = fit_encoding_models(activations, responses, list(columns), list(layers), vertices=columns,
                                 estimator=make_estimator(config), progress=False, train_kind=train_kind)
    if heldout_layers:
        models.cross_validate(activations, responses, cv=config["best_layer"]["cv"], layers=list(heldout_layers))
    return models


def encoding_analysis(responses: Responses, selection: pd.DataFrame, activations: Activations,
                      layers: Sequence[str], config, seed, models: EncodingModels | None = None) -> dict:
    """Encoding models per ROI x layer trained on RE (Fig. 6) and the best layer per vertex (Fig. S1).

    ``models``: the fitted `encoding_models` (default: fitted here).
    """
    settings = config["encoding"]
    if models is None:
        models = encoding_models(responses, selection, activations, layers, config)
    out = {}
    if settings["enabled"]:
        accuracy = generalization(models, activations, responses, per=settings["per"], n_perm=settings["n_perm"],
                                  n_boot=settings["n_boot"], alternative=settings["alternative"], seed=seed,
                                  ci=settings["ci"], compare_over=settings["compare_over"])
        out["encoding"] = accuracy
    if config["best_layer"]["enabled"]:
        settings = config["best_layer"]
        repeats = sorted(responses.trials["repeat"].unique().tolist()) if settings["per_repeat"] else None
        best = pd.concat([best_layer(models, activations, responses, on=kind, cv=settings["cv"],
                                     repeats=None if kind == "RE" else repeats).assign(test_kind=kind)
                          for kind in settings["on"]], ignore_index=True)
        out["best_layer"] = best
        out["best_layer_proportions"] = best_layer_proportions(best, list(layers))
    return out
