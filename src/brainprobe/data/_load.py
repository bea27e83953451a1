"""Reading betas from arrays, NIfTI, GIfTI, CIFTI-2, GLMsingle outputs and nilearn surface images."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..roi import load_mesh
from ._responses import Responses

__all__ = ["load_responses", "load_trial_table", "paper_trial_table", "trials_from_designinfo", "GLMSINGLE_MODELS"]

GLMSINGLE_MODELS = ("TYPED_FITHRF_GLMDENOISE_RR", "TYPEC_FITHRF_GLMDENOISE", "TYPEB_FITHRF", "TYPEA_ONOFF")
_HEMI_NAMES = {"L": "L", "R": "R", "left": "L", "right": "R", "lh": "L", "rh": "R"}


# -- trial tables --------------------------------------------------------------------------------
def _clean_read_errors(what: str):
    """Decorate a reader so that what a library raises on a corrupt or truncated file becomes one
    ValueError that names the file (the readers' own messages already do and pass through)."""
    import functools

    def decorate(read):
        @functools.wraps(read)
        def wrapper(source, *args, **kwargs):
            try:
                return read(source, *args, **kwargs)
            except (FileNotFoundError, KeyError, TypeError, ImportError, MemoryError):
                raise
            except Exception as error:
                where = str(source) if isinstance(source, (str, os.PathLike, list, tuple, Mapping)) else type(source).__name__
                text = str(error)
                if isinstance(error, ValueError) and (where in text or Path(str(source)).name in text):
                    raise
                raise ValueError(f"{where}: cannot be read as {what}, the file is corrupt, truncated or not what its "
                                 f"name says ({type(error).__name__}: {text.splitlines()[0] if text else 'no detail'})"
                                 ) from None
        return wrapper
    return decorate


@_clean_read_errors("a trial table")
def load_trial_table(path) -> pd.DataFrame:
    """Read a trial table from CSV or a BIDS ``events.tsv``.

    The table needs an ``image_id`` column; for BIDS events it is taken from ``stim_file``
    (file name without extension) or else ``trial_type``. Other columns are kept.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trial table not found: {path}")
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    table = pd.read_csv(path, sep=separator, keep_default_na=False, na_values=["n/a", "NaN"])
    if "image_id" not in table:
        if "stim_file" in table:
            table.insert(0, "image_id", [Path(str(f)).stem for f in table["stim_file"]])
        elif "trial_type" in table:
            table.insert(0, "image_id", table["trial_type"].astype(str))
        else:
            raise ValueError(f"{path}: no image_id, stim_file or trial_type column to identify trials; "
                             f"columns are {list(table.columns)}")
    return table


def paper_trial_table(stimuli, n_repeats: int = 2, *, blank: bool = True) -> pd.DataFrame:
    """The study's beta layout: every image ``n_repeats`` times as its own condition, plus one blank.

    Parameters
    ----------
    stimuli : StimulusSet or DataFrame with image_id, kind and source_id
        The study has 120 images (40 RE + 40 AN + 40 AI) and 2 repeats: 241 conditions.
    n_repeats : int
    blank : bool
        Append one ``kind="blank"`` row for the single blank predictor.

    Returns
    -------
    DataFrame
        One row per beta: repeat 1 of every image, then repeat 2, ..., then the blank;
        columns ``image_id``, ``kind``, ``source_id``, ``repeat``.
    """
    table = stimuli.table if hasattr(stimuli, "table") else pd.DataFrame(stimuli)
    columns = [c for c in ("image_id", "kind", "source_id", "category") if c in table]
    rows = [table[columns].assign(repeat=r) for r in range(1, n_repeats + 1)]
    if blank:
        rows.append(pd.DataFrame({"image_id": ["blank"], "kind": ["blank"], "source_id": ["blank"], "repeat": [1]}))
    return pd.concat(rows, ignore_index=True)


def trials_from_designinfo(stimorder, conditions: pd.DataFrame, *, one_based: bool = False) -> pd.DataFrame:
    """Trial table from GLMsingle's ``stimorder`` (condition of each trial, in time order).

    Parameters
    ----------
    stimorder : int array (n_trials,)
        0-based in GLMsingle's Python outputs, 1-based in its MATLAB outputs (``one_based=True``).
    conditions : DataFrame
        One row per condition (column of the design matrix), with ``image_id`` and any stimulus
        columns. Repeats are numbered by order of appearance.
    """
    order = np.asarray(stimorder).astype(np.int64).ravel() - (1 if one_based else 0)
    if order.min() < 0 or order.max() >= len(conditions):
        raise ValueError(f"stimorder: condition indices {order.min()}..{order.max()} do not fit the "
                         f"{len(conditions)} rows of the condition table")
    trials = pd.DataFrame(conditions).reset_index(drop=True).iloc[order].reset_index(drop=True)
    trials["condition"] = order
    trials["repeat"] = trials.groupby("image_id").cumcount() + 1
    return trials


def _as_trial_table(trials) -> pd.DataFrame | None:
    if trials is None or isinstance(trials, pd.DataFrame):
        return trials
    return load_trial_table(trials)


# -- format readers ------------------------------------------------------------------------------
def _read_numpy(path: Path, allow_pickle: bool) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=allow_pickle)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"{path}: holds pickled objects; load it only if you trust it, with allow_pickle=True") from error
        raise
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = data.files
            key = "betas" if "betas" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: expected a 'betas' array (or a single array), found {keys}")
            return data[key]
    return data


def _volume_vertices(mask: np.ndarray) -> pd.DataFrame:
    i, j, k = np.nonzero(mask)
    return pd.DataFrame({"hemi": "", "vertex": np.ravel_multi_index((i, j, k), mask.shape), "i": i, "j": j, "k": k})


def _read_mask(mask, shape, source) -> np.ndarray:
    import nibabel as nib

    if mask is None:
        raise ValueError(f"{source}: volume data need a mask (a NIfTI file or a boolean array of the volume's shape)")
    array = np.asarray(nib.load(str(mask)).dataobj) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask)
    array = array.astype(bool)
    if array.shape != tuple(shape):
        raise ValueError(f"mask: expected the volume's shape {tuple(shape)}, found {array.shape}")
    if not array.any():
        raise ValueError("mask: selects no voxel")
    return array


def _read_nifti(paths: Sequence[Path], mask) -> tuple[np.ndarray, pd.DataFrame]:
    import nibabel as nib

    images = [nib.load(str(p)) for p in paths]
    if len(images) == 1 and images[0].ndim == 4:
        data = np.asarray(images[0].dataobj, dtype=np.float64)
    else:
        shapes = {img.shape for img in images}
        if any(img.ndim != 3 for img in images) or len(shapes) != 1:
            raise ValueError(f"{paths[0]}: expected one 4-D NIfTI or 3-D NIfTIs of one shape, found shapes {sorted(shapes)}")
        data = np.stack([np.asarray(img.dataobj, dtype=np.float64) for img in images], axis=-1)
    volume = _read_mask(mask, data.shape[:3], paths[0])
    return data[volume].T, _volume_vertices(volume)


def _gifti_matrix(path: Path, n_vertices: int | None, n_trials: int | None) -> np.ndarray:
    import nibabel as nib

    arrays = [np.asarray(a.data) for a in nib.load(str(path)).darrays]
    if not arrays:
        raise ValueError(f"{path}: no data arrays")
    if len(arrays) > 1:
        if any(a.ndim != 1 for a in arrays) or len({len(a) for a in arrays}) != 1:
            raise ValueError(f"{path}: expected one 1-D data array per trial, found shapes {[a.shape for a in arrays[:3]]}")
        return np.stack(arrays).astype(np.float64)
    matrix = arrays[0].astype(np.float64)
    if matrix.ndim == 1:
        return matrix[None, :]
    rows, cols = matrix.shape
    if n_vertices is not None and n_vertices in (rows, cols) and rows != cols:
        return matrix if cols == n_vertices else matrix.T
    if n_trials is not None and n_trials in (rows, cols) and rows != cols:
        return matrix if rows == n_trials else matrix.T
    raise ValueError(f"{path}: cannot tell trials from vertices in a {rows} x {cols} array; pass meshes= or a trial table")


def _read_gifti_pair(paths: Mapping[str, Path], meshes, n_trials) -> tuple[np.ndarray, pd.DataFrame]:
    blocks, tables = [], []
    for hemi, path in paths.items():
        mesh = meshes.get(hemi) if meshes else None
        block = _gifti_matrix(Path(path), mesh.n_vertices if mesh is not None else None, n_trials)
        if mesh is not None and block.shape[1] != mesh.n_vertices:
            raise ValueError(f"{path}: hemisphere {hemi} has {block.shape[1]} vertices, its mesh {mesh.name} has {mesh.n_vertices}")
        blocks.append(block)
        tables.append(pd.DataFrame({"hemi": hemi, "vertex": np.arange(block.shape[1])}))
    if len({b.shape[0] for b in blocks}) != 1:
        raise ValueError(f"GIfTI files disagree on the number of trials: {[b.shape[0] for b in blocks]}")
    return np.concatenate(blocks, axis=1), pd.concat(tables, ignore_index=True)


def _read_cifti(path: Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asarray(image.get_fdata(), dtype=np.float64)
    axis = image.header.get_axis(1)
    blocks, tables, sizes = [], [], {}
    for name, index, model in axis.iter_structures():
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "L", "CIFTI_STRUCTURE_CORTEX_RIGHT": "R"}.get(name)
        if hemi is None:
            continue  # subcortical voxels are not used by the surface analyses
        blocks.append(data[:, index])
        tables.append(pd.DataFrame({"hemi": hemi, "vertex": np.asarray(model.vertex)}))
        sizes[hemi] = int(model.nvertices[name])
    if not blocks:
        raise ValueError(f"{path}: no CIFTI_STRUCTURE_CORTEX_LEFT/RIGHT surface models found")
    return np.concatenate(blocks, axis=1), pd.concat(tables, ignore_index=True), sizes


def _read_glmsingle(path: Path, allow_pickle: bool, model: str):
    """Betas (X, Y, Z, T) or (V, 1, 1, T) from a GLMsingle output, and whether indices are 1-based."""
    if path.is_dir():
        for suffix in (".hdf5", ".npy", ".mat"):
            if (path / f"{model}{suffix}").is_file():
                path = path / f"{model}{suffix}"
                break
        else:
            raise FileNotFoundError(f"{path}: no {model}.hdf5/.npy/.mat GLMsingle output")
    if path.suffix == ".hdf5":
        import h5py

        with h5py.File(path, "r") as handle:
            if "betasmd" not in handle:
                raise ValueError(f"{path}: no 'betasmd' dataset; found {list(handle.keys())}")
            return np.asarray(handle["betasmd"], dtype=np.float64), path
    if path.suffix == ".npy":
        content = _read_numpy(path, allow_pickle)
        content = content.item() if content.dtype == object and content.shape == () else content
        if not isinstance(content, dict) or "betasmd" not in content:
            raise ValueError(f"{path}: expected GLMsingle's dictionary with 'betasmd'")
        return np.asarray(content["betasmd"], dtype=np.float64), path
    if path.suffix == ".mat":
        content = _read_mat(path)
        key = "modelmd" if "modelmd" in content else "betasmd"
        if key not in content:
            raise ValueError(f"{path}: no 'modelmd' or 'betasmd' variable; found {sorted(content)}")
        return np.asarray(content[key], dtype=np.float64), path
    raise ValueError(f"{path}: not a GLMsingle output (.hdf5, .npy or .mat)")


def _read_mat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 files are HDF5, stored transposed
        import h5py

        with h5py.File(path, "r") as handle:
            return {k: np.asarray(v).T for k, v in handle.items() if isinstance(v, h5py.Dataset)}


def _glmsingle_stimorder(designinfo, allow_pickle: bool) -> tuple[np.ndarray, bool]:
    if isinstance(designinfo, Mapping):
        return np.asarray(designinfo["stimorder"]).ravel(), False
    path = Path(designinfo)
    if path.suffix == ".mat":
        return np.asarray(_read_mat(path)["stimorder"]).ravel(), True
    content = _read_numpy(path, allow_pickle)
    content = content.item() if content.dtype == object and content.shape == () else content
    return np.asarray(content["stimorder"]).ravel(), False


def _glmsingle_matrix(betas: np.ndarray, mask, source) -> tuple[np.ndarray, pd.DataFrame]:
    if betas.ndim == 4 and betas.shape[1:3] == (1, 1):
        return betas[:, 0, 0, :].T, pd.DataFrame({"hemi": "", "vertex": np.arange(betas.shape[0])})
    if betas.ndim == 2:
        return betas.T, pd.DataFrame({"hemi": "", "vertex": np.arange(betas.shape[0])})
    if betas.ndim == 4:
        volume = _read_mask(mask, betas.shape[:3], source)
        return betas[volume].T, _volume_vertices(volume)
    raise ValueError(f"{source}: unexpected GLMsingle beta shape {betas.shape}")


def _is_surface_image(obj) -> bool:
    return hasattr(obj, "data") and hasattr(obj.data, "parts") and hasattr(obj, "mesh")


def _read_surface_image(image) -> tuple[np.ndarray, pd.DataFrame, dict]:
    blocks, tables, meshes = [], [], {}
    for part, values in image.data.parts.items():
        hemi = _HEMI_NAMES.get(part, part)
        values = np.asarray(values, dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values
        blocks.append(values.T)
        tables.append(pd.DataFrame({"hemi": hemi, "vertex": np.arange(values.shape[0])}))
        meshes[hemi] = load_mesh(image.mesh.parts[part], name=f"{hemi} mesh")
    return np.concatenate(blocks, axis=1), pd.concat(tables, ignore_index=True), meshes


def _hemisphere_paths(source) -> dict[str, Path] | None:
    if isinstance(source, Mapping):
        return {_HEMI_NAMES.get(k, k): Path(v) for k, v in source.items()}
    if isinstance(source, (list, tuple)) and source and all(str(s).endswith(".gii") for s in source):
        paths = {}
        for s in source:
            name = Path(s).name
            hemi = "L" if ("hemi-L" in name or name.startswith("lh.") or ".L." in name) else (
                "R" if ("hemi-R" in name or name.startswith("rh.") or ".R." in name) else None)
            if hemi is None:
                raise ValueError(f"{s}: cannot tell the hemisphere (expected hemi-L/hemi-R, lh./rh. or .L./.R. in the name)")
            paths[hemi] = Path(s)
        return paths
    return None


@_clean_read_errors("responses")
def load_responses(
    source,
    trials=None,
    *,
    mask=None,
    meshes: Mapping | None = None,
    designinfo=None,
    conditions: pd.DataFrame | None = None,
    glmsingle_model: str = GLMSINGLE_MODELS[0],
    allow_pickle: bool = False,
    on_bad_vertices: str = "raise",
    subject: str = "sub-01",
) -> Responses:
    """Read single-trial betas from any of the common formats into `Responses`.

    Parameters
    ----------
    source
        - a numpy array (n_trials, n_vertices), or a ``.npy`` / ``.npz`` file (key ``betas``);
        - a 4-D NIfTI file, or a list of 3-D NIfTI files (one per trial), with ``mask``;
        - GIfTI functional files, one per hemisphere: ``{"L": path, "R": path}`` or a list of
          paths named ``hemi-L``/``hemi-R``; each holds one data array per trial or one 2-D array
          in either orientation;
        - a CIFTI-2 ``.dscalar.nii`` / ``.dtseries.nii`` (rows are trials; left and right cortex
          become hemispheres L and R, other structures are ignored);
        - a GLMsingle output folder or file (``.hdf5``, ``.mat``; ``.npy`` needs
          ``allow_pickle=True`` because GLMsingle pickles a dictionary);
        - a nilearn ``SurfaceImage`` (its mesh becomes ``meshes``).
    trials : DataFrame or path, optional
        One row per trial (CSV or BIDS ``events.tsv``); for GLMsingle, pass ``conditions`` and
        ``designinfo`` instead to map trials through ``stimorder``.
    mask : path or bool array, volume data only
    meshes : mapping of hemi to Mesh (or anything `brainprobe.roi.load_mesh` reads), optional
    designinfo : path or dict, GLMsingle only
        ``DESIGNINFO.npy`` / ``.mat`` or its dictionary; its ``stimorder`` orders the trials.
    conditions : DataFrame, GLMsingle only
        One row per condition (design-matrix column), with ``image_id``.
    glmsingle_model : str
        Which GLMsingle model to read from a folder (default type D).
    allow_pickle : bool
        Permit reading pickled ``.npy`` files. Off by default: unpickling runs code.
    on_bad_vertices : {"raise", "drop"}
    subject : str

    Returns
    -------
    Responses
    """
    trials = _as_trial_table(trials)
    meshes = {h: load_mesh(m) for h, m in (meshes or {}).items()}
    label = str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
    vertices = None
    if isinstance(source, np.ndarray):
        betas = source
    elif _is_surface_image(source):
        betas, vertices, surface_meshes = _read_surface_image(source)
        meshes = {**surface_meshes, **meshes}
    elif (pair := _hemisphere_paths(source)) is not None:
        betas, vertices = _read_gifti_pair(pair, meshes, None if trials is None else len(trials))
        label = ", ".join(str(p) for p in pair.values())
    elif isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        betas, vertices = _read_nifti(paths, mask)
        label = str(paths[0].parent)
    else:
        path = Path(source)
        name = path.name
        if not path.exists():
            raise FileNotFoundError(f"responses not found: {path}")
        if path.is_dir() or path.suffix in (".hdf5", ".mat") or (name.startswith("TYPE") and path.suffix == ".npy"):
            raw, read_from = _read_glmsingle(path, allow_pickle, glmsingle_model)
            label = str(read_from)
            betas, vertices = _glmsingle_matrix(raw, mask, read_from)
            if designinfo is not None:
                if conditions is None:
                    raise ValueError("designinfo given without conditions: pass the table of conditions (design-matrix columns)")
                stimorder, one_based = _glmsingle_stimorder(designinfo, allow_pickle)
                trials = trials_from_designinfo(stimorder, conditions, one_based=one_based or read_from.suffix == ".mat")
        elif name.endswith((".dscalar.nii", ".dtseries.nii")):
            betas, vertices, sizes = _read_cifti(path)
            for hemi, size in sizes.items():
                if hemi in meshes and meshes[hemi].n_vertices != size:
                    raise ValueError(f"{path}: hemisphere {hemi} surface has {size} vertices, its mesh has {meshes[hemi].n_vertices}")
        elif name.endswith((".nii", ".nii.gz")):
            betas, vertices = _read_nifti([path], mask)
        elif path.suffix in (".npy", ".npz"):
            betas = _read_numpy(path, allow_pickle)
        else:
            raise ValueError(f"{path}: unrecognized response format (expected .npy, .npz, .nii, .gii pair, "
                             ".dscalar.nii/.dtseries.nii, or a GLMsingle .hdf5/.mat/.npy/folder)")
    return Responses(betas, trials, vertices, meshes=meshes, on_bad_vertices=on_bad_vertices,
                     source=label, subject=subject)

