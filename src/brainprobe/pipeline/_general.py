"""The general design: any image set, each ROI's RDM against each layer's RDM and each model RDM.

`Study` calls these when ``[design] kind = "general"`` (or ``"auto"`` and the stimuli hold no AN
and AI images and ``[stimuli] generate = false``). Steps are plain functions, as in ``_steps``:
inputs in, tables out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import EXACT_FLOATS
from ..data import Responses, values_to_gifti, values_to_nifti
from ..encoding import EncodingModels, heldout_accuracy
from ..roi import neighbourhoods_for_columns
from ..rsa import (
    category_rdm,
    compare_to_candidates,
    condensed_rdm,
    from_rsatoolbox,
    group_comparison,
    rdm,
    searchlight_candidates,
    square_rdm,
)
from ..rsa._rdm import layer_rdm
from ._steps import is_general, may_be_general, selected_columns

__all__ = ["BrainRdms", "LONG_RDM_MAX_PAIRS", "is_general", "may_be_general", "general_rsa", "general_rsa_from_rdms", "candidate_rdms", "general_searchlight", "searchlight_volumes", "searchlight_surfaces", "read_rdms", "check_rdm_subjects", "general_encoding", "general_group", "rdms_by_subject", "candidate_name"]

def candidate_name(network: str, layer: str, several: bool) -> str:
    return f"{network}:{layer}" if several else layer


def _model_rdms(table: pd.DataFrame, config) -> dict[str, np.ndarray]:
    """Model RDMs from the stimulus-table columns named in ``[design] models`` (0 same label, 1 not)."""
    models = {}
    for column in config["design"]["models"]:
        if column not in table:
            continue  # e.g. "category" on images without categories: nothing to model
        labels = table[column].astype(str)
        if labels.nunique() < 2 or labels.nunique() == len(labels):
            continue  # one label, or one per image: the model RDM is constant
        models[f"model:{column}"] = category_rdm(labels)
    return models


def general_rsa(averaged: tuple[np.ndarray, pd.DataFrame], selection: pd.DataFrame, networks: Sequence[Mapping],
                activations: Mapping, subject: str, config, seed, *, responses: Responses | None = None
                ) -> dict[str, pd.DataFrame]:
    """One subject: ROI RDMs, their comparison with every layer and model RDM, the best layer per ROI.

    Parameters
    ----------
    averaged : (patterns (n_images, n_vertices), table)
        `image_patterns`'s output: one pattern per image and its stimulus-table rows.
    selection : DataFrame
        The vertex selection (``selected`` rows give each ROI's columns).
    networks : sequence of dict with ``label`` and ``layers``
    activations : mapping of network label to Activations
    responses : Responses, optional
        The single trials, for ``[rsa] metric = "crossnobis"``: each ROI's RDM is the
        leave-one-run-out cross-validated distance of its trials (runs as folds; rows in the order
        of ``averaged``), and the layers' RDMs are squared Euclidean distances per unit (what
        crossnobis estimates without noise).

    Returns
    -------
    dict
        ``general_rsa`` (one row per roi x candidate), ``general_best`` (one row per roi),
        ``brain_rdms`` (one row per roi x image pair: ``image_a``, ``image_b``, ``dissimilarity``).
    """
    metric = config["rsa"]["metric"]
    patterns, table = averaged
    columns = selected_columns(selection)
    if metric == "crossnobis":
        brain = _crossnobis_rdms(responses, columns, table["image_id"].astype(str).tolist())
    else:
        brain = {roi: rdm(patterns[:, chosen], metric) for roi, chosen in columns.items()}
    given = {"rdms": brain, "image_ids": table["image_id"].astype(str).tolist(), "metric": metric}
    return general_rsa_from_rdms(given, networks, activations, table, subject, config, seed)


def general_rsa_from_rdms(given: Mapping, networks: Sequence[Mapping], activations: Mapping,
                          stimulus_table: pd.DataFrame, subject: str, config, seed) -> dict[str, pd.DataFrame]:
    """`general_rsa` on ROI RDMs that are given: ``{"rdms": {roi: condensed}, "image_ids": [...],
    "metric": str}`` (e.g. `read_rdms`); layer and model RDMs are made over the same images in
    the same order."""
    rsa = config["rsa"]
    image_ids = [str(i) for i in given["image_ids"]]
    candidates, layers = candidate_rdms(networks, activations, stimulus_table, image_ids, config)
    method = "kendall_tau_a" if rsa["method"] == "kendall" else rsa["method"]
    result = compare_to_candidates(given["rdms"], candidates, method=method, n_perm=rsa["n_perm"],
                                   n_boot=rsa["n_boot"], layers=layers, seed=seed)
    found = {"general_rsa": result["comparison"].assign(subject=subject),
             "general_best": result["best"].assign(subject=subject)}
    n_pairs = len(image_ids) * (len(image_ids) - 1) // 2
    if n_pairs > LONG_RDM_MAX_PAIRS:  # 50 million rows an ROI at 10,000 images: arrays, not a table
        found["brain_rdms"] = BrainRdms(subject, {roi: np.asarray(values, dtype=np.float64)
                                                  for roi, values in given["rdms"].items()},
                                        image_ids, given.get("metric", ""))
        return found
    rows_, cols_ = np.triu_indices(len(image_ids), 1)
    ids = np.asarray(image_ids)
    rdms = pd.concat([pd.DataFrame({"roi": roi, "image_a": ids[rows_], "image_b": ids[cols_],
                                    "dissimilarity": np.asarray(values, dtype=np.float64),
                                    "metric": given.get("metric", "")})
                      for roi, values in given["rdms"].items()], ignore_index=True)
    found["brain_rdms"] = rdms.assign(subject=subject)
    return found


# above this many image pairs an RDM (about 1,400 images) a subject's ROI RDMs are kept as arrays
# (`BrainRdms`, results/brain_rdms/<subject>.npz), not as rows of results/brain_rdms.csv: at 10,000
# images the table would hold 50 million rows an ROI (gigabytes in memory, more as CSV text)
LONG_RDM_MAX_PAIRS = 1_000_000


@dataclass
class BrainRdms:
    """One subject's ROI RDMs as arrays: what ``brain_rdms.csv`` holds for smaller image sets.

    Saved as ``<subject>.npz`` in the layout `read_rdms` reads (one condensed array per ROI,
    ``image_ids``, ``metric``): a later study can take it as a ``[[subject]] rdms`` file.

    Attributes
    ----------
    subject : str
    rdms : dict of ROI to array (n_pairs,)
        Condensed (upper triangle, row-major), pairs of ``image_ids``.
    image_ids : list of str
    metric : str
    """

    subject: str
    rdms: dict
    image_ids: list
    metric: str = ""

    def save(self, path) -> Path:
        from .._npz import write_npz

        arrays = {roi: np.asarray(values, dtype=np.float64) for roi, values in self.rdms.items()}
        clash = sorted(set(arrays) & {"image_ids", "metric"})
        if clash:
            raise ValueError(f"ROI names {clash} are reserved in the RDM .npz layout; rename them")
        arrays["image_ids"] = np.asarray(self.image_ids, dtype=str)
        arrays["metric"] = np.asarray(self.metric, dtype=str)
        return write_npz(path, arrays)

    @classmethod
    def load(cls, path, subject: str) -> BrainRdms:
        found = _rdms_from_npz(Path(path))
        return cls(subject, found["rdms"], found["image_ids"], found["metric"])


# the last layer RDMs `candidate_rdms` made, by (activations key, layer, metric, rows): every subject
# that saw the same images compares with the same layer RDMs (at 10,000 images conv2's is minutes of
# work); at most this many (400 MB each at 10,000 images), read-only
_LAYER_RDMS: dict = {}
_LAYER_RDMS_SIZE = 4


def candidate_rdms(networks: Sequence[Mapping], activations: Mapping, stimulus_table: pd.DataFrame,
                   image_ids: Sequence[str], config) -> tuple[dict, list]:
    """Every layer's RDM and every ``[design] models`` RDM over ``image_ids``; and the layer names.

    With ``[rsa] metric = "crossnobis"`` the layers' RDMs are squared Euclidean distances per
    unit (what crossnobis estimates from noisy data).
    """
    metric = config["rsa"]["metric"]
    layer_metric = "squared_euclidean" if metric == "crossnobis" else metric
    several = len(networks) > 1
    candidates, layers = {}, []
    for network in networks:
        found = activations[network["label"]]
        position = pd.Series(np.arange(len(found.image_ids)), index=[str(i) for i in found.image_ids])
        rows = position.loc[list(image_ids)].to_numpy()
        for layer in network["layers"]:
            name = candidate_name(network["label"], layer, several)
            # the layer as it is (a memory map when streamed), read a block of units at a time when wide;
            # the same for every subject that saw the same images (kept for the next one)
            key = (network.get("key"), layer, layer_metric, rows.tobytes())
            if network.get("key") is None or key not in _LAYER_RDMS:
                found_rdm = layer_rdm(found[layer].reshape(len(found.image_ids), -1), layer_metric, rows=rows)
                found_rdm.setflags(write=False)
                if network.get("key") is None:
                    candidates[name] = found_rdm
                    layers.append(name)
                    continue
                if len(_LAYER_RDMS) >= _LAYER_RDMS_SIZE:
                    _LAYER_RDMS.pop(next(iter(_LAYER_RDMS)))
                _LAYER_RDMS[key] = found_rdm
            candidates[name] = _LAYER_RDMS[key]
            layers.append(name)
    table = stimulus_table.set_index(stimulus_table["image_id"].astype(str)).loc[list(image_ids)].reset_index(drop=True)
    candidates.update(_model_rdms(table, config))
    return candidates, layers


def general_searchlight(responses: Responses, averaged: tuple[np.ndarray, pd.DataFrame], disks: Mapping,
                        networks: Sequence[Mapping], activations: Mapping, config) -> pd.DataFrame:
    """Each searchlight's RDM (disks on a mesh, spheres in a volume) against every layer and model RDM.

    Returns one row per centre: ``subject``, ``hemi``, ``vertex`` (and ``i, j, k``, ``x, y, z``
    for volume data), ``r_<candidate>`` and ``best``. Crossnobis studies map each searchlight's
    crossnobis RDM of the single trials (runs as folds), as their ROI RDMs.
    """
    patterns, table = averaged
    image_ids = table["image_id"].astype(str).tolist()
    metric = config["rsa"]["metric"]
    method = "kendall_tau_a" if config["rsa"]["method"] == "kendall" else config["rsa"]["method"]
    members = neighbourhoods_for_columns(responses.vertices, disks)
    if metric == "crossnobis":
        runs, conditions = _crossnobis_labels(responses)
        # the searchlight's RDM rows are the sorted conditions: the candidates follow them
        candidates, _ = candidate_rdms(networks, activations, table, sorted(set(conditions)), config)
        maps = searchlight_candidates(responses.betas, members, candidates, metric=metric, method=method,
                                      runs=runs, conditions=conditions)
    else:
        candidates, _ = candidate_rdms(networks, activations, table, image_ids, config)
        maps = searchlight_candidates(patterns, members, candidates, metric=metric, method=method)
    place = [c for c in ("hemi", "vertex", "i", "j", "k", "x", "y", "z") if c in responses.vertices]
    out = pd.concat([responses.vertices.loc[maps["center"], place].reset_index(drop=True),
                     maps.drop(columns="center")], axis=1)
    return out.assign(subject=responses.subject)


def searchlight_volumes(table: pd.DataFrame | None, masks: Mapping | None = None) -> dict:
    """Volume subjects' searchlight maps as NIfTI images: one volume per ``r_<candidate>`` column
    (in the table's order), NaN outside the voxels, on the grid and affine of the subject's mask
    (``masks``: subject -> NIfTI path; else the smallest grid and the affine of the voxels' mm);
    surface subjects are left out."""
    import nibabel as nib

    if table is None or not {"i", "j", "k"} <= set(table.columns):
        return {}
    images = {}
    for subject, part in table.groupby("subject", sort=False):
        part = part[part["i"].notna()]
        if part.empty:
            continue
        columns = [c for c in part.columns if c.startswith("r_")]
        voxels = part.astype({"i": int, "j": int, "k": int})
        shape = affine = None
        if masks and subject in masks and str(masks[subject]).lower().endswith((".nii", ".nii.gz")):
            header = nib.load(str(masks[subject]))
            shape, affine = header.shape[:3], header.affine
        images[subject] = values_to_nifti(voxels, part[columns].to_numpy(float).T, shape=shape, affine=affine)
    return images


def searchlight_surfaces(table: pd.DataFrame | None, mesh_sizes: Mapping[str, Mapping[str, int]],
                         columns: Sequence[str] | None = None) -> dict:
    """Surface subjects' searchlight maps as GIfTI: ``{subject: {hemi: GiftiImage}}``, one data
    array per ``r_<candidate>`` column (or per one of ``columns``; named after it without
    ``r_``), NaN off the centres, one value per vertex of the subject's mesh (``mesh_sizes``:
    subject -> hemi -> n_vertices); volume subjects and subjects without a mesh size are left out."""
    if table is None or "hemi" not in table or "vertex" not in table:
        return {}
    images = {}
    for subject, part in table.groupby("subject", sort=False):
        if {"i", "j", "k"} <= set(part.columns):
            part = part[part["i"].isna()]
        part = part[part["hemi"].isin(["L", "R"]) & part["vertex"].notna()]
        if part.empty or subject not in mesh_sizes:
            continue
        shown = list(columns) if columns is not None else [c for c in part.columns if c.startswith("r_")]
        vertices = part[["hemi", "vertex"]].astype({"vertex": np.int64}).reset_index(drop=True)
        images[subject] = values_to_gifti(vertices, mesh_sizes[subject], part[shown].to_numpy(float).T,
                                          names=[c.removeprefix("r_") for c in shown])
    return images


def _crossnobis_rdms(responses: Responses | None, columns: Mapping, image_ids: list) -> dict:
    """Each ROI's crossnobis RDM from its single trials, runs as folds, rows in ``image_ids`` order."""
    if responses is None:
        raise ValueError("[rsa] metric = \"crossnobis\" needs the single trials (responses)")
    runs, conditions = _crossnobis_labels(responses)
    # rdm() orders conditions by their sorted labels; put the rows back in the requested order
    labels = np.unique(conditions)
    square_order = pd.Series(np.arange(len(labels)), index=labels).loc[image_ids].to_numpy()
    out = {}
    for roi, chosen in columns.items():
        values = square_rdm(rdm(responses.betas[:, chosen], "crossnobis", runs=runs, conditions=conditions))
        out[roi] = condensed_rdm(values[np.ix_(square_order, square_order)])
    return out


def _crossnobis_labels(responses: Responses) -> tuple[np.ndarray, np.ndarray]:
    """Each trial's run (the crossnobis folds) and image id; fewer than two runs is an error."""
    runs = responses.trials["run"].to_numpy()
    if len(np.unique(runs)) < 2:
        raise ValueError(f"{responses.subject}: [rsa] metric = \"crossnobis\" needs trials from at least two runs "
                         f"(the folds); the trial table's run column holds {np.unique(runs).tolist()}")
    return runs, responses.trials["image_id"].astype(str).to_numpy()


def read_rdms(entry: Mapping) -> dict:
    """A ``[[subject]]``'s ``rdms`` file: ``{"rdms": {roi: condensed}, "image_ids": [...], "metric": str}``.

    Formats: ``.npz`` with one array per ROI (square (n, n) or condensed) and ``image_ids``
    (optional ``metric``); ``.csv`` in the layout of ``results/brain_rdms.csv`` (``roi``,
    ``image_a``, ``image_b``, ``dissimilarity``, optional ``metric``); ``.h5`` / ``.hdf5``: an
    rsatoolbox ``RDMs`` saved with ``save(..., file_type="hdf5")`` (image ids from its pattern
    descriptor ``image_id``, ``conds`` or ``index``; ROI names from the RDM descriptor ``roi``).
    """
    path = Path(entry["rdms"])
    where = f"[[subject]] {entry['id']} rdms {path}"
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            given = _rdms_from_npz(path)
        elif suffix == ".csv":
            given = _rdms_from_csv(path)
        elif suffix in (".h5", ".hdf5"):
            from rsatoolbox.rdm import load_rdm

            found = from_rsatoolbox(load_rdm(str(path), file_type="hdf5"))
            given = {"rdms": dict(zip(found["names"], found["rdms"], strict=True)), "image_ids": found["image_ids"],
                     "metric": found["metric"]}
        else:
            raise ValueError(f"expected a .npz, .csv or rsatoolbox .hdf5 file, found {suffix or 'no suffix'!r}")
    except (ValueError, KeyError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"{where}: {message}") from None
    n = len(given["image_ids"])
    for roi, values in given["rdms"].items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n * (n - 1) // 2,) or not np.isfinite(values).all():
            raise ValueError(f"{where}: ROI {roi!r}: expected {n * (n - 1) // 2} finite dissimilarities (the pairs of "
                             f"its {n} image ids), found shape {values.shape}")
    if len(set(given["image_ids"])) != n:
        raise ValueError(f"{where}: image ids repeat; each RDM row must be one image")
    return given


def _rdms_from_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as found:
        if "image_ids" not in found:
            raise ValueError(f"no 'image_ids' array (one id per RDM row); arrays are {sorted(found.files)}")
        image_ids = [str(i) for i in found["image_ids"]]
        metric = str(found["metric"]) if "metric" in found else ""
        rdms = {}
        for name in found.files:
            if name in ("image_ids", "metric"):
                continue
            values = np.asarray(found[name], dtype=np.float64)
            if values.ndim == 2:
                if values.shape != (len(image_ids), len(image_ids)):
                    raise ValueError(f"array {name!r}: expected a ({len(image_ids)}, {len(image_ids)}) RDM, found "
                                     f"{values.shape}")
                values = values[np.triu_indices(len(image_ids), 1)]
            rdms[name] = values
    if not rdms:
        raise ValueError("no RDM arrays besides 'image_ids'")
    return {"rdms": rdms, "image_ids": image_ids, "metric": metric}


def _rdms_from_csv(path: Path) -> dict:
    table = pd.read_csv(path, dtype={"roi": str, "image_a": str, "image_b": str}, keep_default_na=False, **EXACT_FLOATS)
    missing = [c for c in ("roi", "image_a", "image_b", "dissimilarity") if c not in table]
    if missing:
        raise ValueError(f"no columns {missing} (one row per ROI and image pair); columns are {list(table.columns)}")
    image_ids = list(dict.fromkeys(list(table["image_a"]) + list(table["image_b"])))
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    n = len(image_ids)
    rdms = {}
    for roi, part in table.groupby("roi", sort=False):
        square = np.full((n, n), np.nan)
        a = part["image_a"].map(position).to_numpy()
        b = part["image_b"].map(position).to_numpy()
        square[a, b] = square[b, a] = pd.to_numeric(part["dissimilarity"], errors="coerce").to_numpy()
        rdms[str(roi)] = square[np.triu_indices(n, 1)]
        if np.isnan(rdms[str(roi)]).any():
            raise ValueError(f"ROI {roi!r}: {int(np.isnan(rdms[str(roi)]).sum())} image pairs have no (numeric) "
                             "dissimilarity")
    metric = str(table["metric"].iloc[0]) if "metric" in table and len(table) else ""
    return {"rdms": rdms, "image_ids": image_ids, "metric": metric}


def check_rdm_subjects(given: Mapping[str, Mapping], stimulus_table: pd.DataFrame, general: bool) -> None:
    """Subjects given as ROI RDMs run the general design only, over images of the stimulus set."""
    if not given:
        return
    if not general:
        raise ValueError(f"[[subject]] {sorted(given)} give ROI RDMs (rdms = ...): they need [design] kind = "
                         "\"general\" (or generate = false and no AN/AI images)")
    known = set(stimulus_table["image_id"].astype(str))
    for subject, found in given.items():
        unknown = [i for i in found["image_ids"] if i not in known]
        if unknown:
            raise ValueError(f"[[subject]] {subject} rdms: image ids {unknown[:5]} are not in the stimulus set "
                             f"(its ids look like {sorted(known)[:3]})")


def rdms_by_subject(brain_rdms: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """The ``brain_rdms`` table back as {subject: {roi: condensed RDM}}, pairs in each subject's order."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for (subject, roi), part in brain_rdms.groupby(["subject", "roi"], sort=False):
        out.setdefault(subject, {})[roi] = part["dissimilarity"].to_numpy(dtype=np.float64)
    return out


def general_group(tables: Mapping[str, pd.DataFrame], layer_order: Sequence[str], config, seed,
                  rdm_sets: Mapping[str, BrainRdms] | None = None) -> dict:
    """Across subjects: noise ceiling, random effects, best layer with a bootstrap over subjects.

    The subjects' ROI RDMs come from ``tables["brain_rdms"]`` and, for large image sets, from
    ``rdm_sets`` (subject -> `BrainRdms`).
    """
    comparison = tables.get("general_rsa")
    if comparison is None or comparison["subject"].nunique() < 2:
        return {}
    method = "kendall_tau_a" if config["rsa"]["method"] == "kendall" else config["rsa"]["method"]
    sets = dict(rdm_sets or {})
    if tables.get("brain_rdms") is not None:  # the subjects whose RDMs were small enough for the table
        for subject, part in tables["brain_rdms"].groupby("subject", sort=False):
            # condensed rows: image_a in first-seen order, then the last image (only ever an image_b)
            ids = list(dict.fromkeys(list(part["image_a"]) + list(part["image_b"])))
            sets[subject] = BrainRdms(subject, rdms_by_subject(part)[subject], ids)
    result = group_comparison(comparison, _common_pairs(sets), layers=list(layer_order), method=method,
                              n_boot=config["rsa"]["n_boot"], seed=seed)
    return {f"general_{name}": frame for name, frame in result.items()}


def _common_pairs(sets: Mapping[str, BrainRdms]) -> dict[str, dict[str, np.ndarray]]:
    """{subject: {roi: condensed RDM}} over one image order: each subject's own when all share it,
    else the images every subject saw, sorted, with each subject's dissimilarities of those pairs."""
    orders = {subject: tuple(found.image_ids) for subject, found in sets.items()}
    if len(set(orders.values())) == 1:
        return {subject: found.rdms for subject, found in sets.items()}
    common = sorted(set.intersection(*(set(order) for order in orders.values())))
    out = {}
    for subject, found in sets.items():
        position = {image_id: i for i, image_id in enumerate(found.image_ids)}
        where = np.asarray([position[image_id] for image_id in common])
        n = len(found.image_ids)
        rows, cols = np.triu_indices(len(common), 1)
        low, high = np.minimum(where[rows], where[cols]), np.maximum(where[rows], where[cols])
        index = low * n - low * (low + 1) // 2 + (high - low - 1)  # the pair's place in the condensed RDM
        out[subject] = {roi: np.asarray(values)[index] for roi, values in found.rdms.items()}
    return out


def general_encoding(models: EncodingModels, responses: Responses, activations, config, seed) -> pd.DataFrame:
    """Cross-validated held-out accuracy of the encoding models per ROI x layer, with a permutation p.

    ``models``: the study's `encoding_models` step, trained on every image with the held-out
    predictions of every layer (the folds the synthesis step reads too). Each image is predicted
    by a model fitted on the other folds (``[best_layer] cv``, contiguous folds); the accuracy
    (`prediction_accuracy` of ``[encoding] per``) is tested by relabeling the held-out images
    (`accuracy_permutation_test`, ``[encoding] n_perm``, greater).
    """
    settings = config["encoding"]
    table = heldout_accuracy(models, activations, responses, cv=config["best_layer"]["cv"], per=settings["per"],
                             n_perm=settings["n_perm"], seed=seed)
    table = table.rename(columns={"accuracy_p": "p"}).assign(n_perm=settings["n_perm"], resampled="images")
    return table[["subject", "roi", "layer", "heldout_accuracy", "p", "accuracy_definition", "cv", "n_images",
                  "n_vertices", "n_perm", "resampled", "accuracy_null95"]]
