"""Reading betas from arrays, NIfTI, GIfTI, CIFTI-2, GLMsingle outputs and nilearn surface images."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .._errors import BrainprobeInputError, InputFileError, MissingFileError
from .._files import EXACT_FLOATS
from ..roi import load_mesh
from ._responses import Responses, _check_vertex_numbers

__all__ = ["GLMSINGLE_MODELS", "NON_IMAGE_TRIAL_TYPES", "glmsingle_model_name", "kinds_from_stimuli", "load_responses",
           "load_trial_table", "paper_trial_table", "trials_from_designinfo"]

GLMSINGLE_MODELS = ("TYPED_FITHRF_GLMDENOISE_RR", "TYPEC_FITHRF_GLMDENOISE", "TYPEB_FITHRF", "TYPEA_ONOFF")
_HEMI_NAMES = {"L": "L", "R": "R", "left": "L", "right": "R", "lh": "L", "rh": "R"}


# -- trial tables --------------------------------------------------------------------------------
# trial_type values that mark a trial without an image (BIDS events of blank or fixation periods)
NON_IMAGE_TRIAL_TYPES = ("blank", "fixation", "fix", "null", "baseline", "rest", "n/a", "none")
_RUN = re.compile(r"(?:^|_)run-(\d+)(?:_|$)")
_SESSION = re.compile(r"(?:^|_)ses-([A-Za-z0-9]+)(?:_|$)")


def _clean_read_errors(what: str):
    """Decorate a public reader with `_reading` around its whole call: what a library raises on a
    corrupt or truncated file anywhere inside becomes one InputFileError that names the file; the
    reader's own errors (ValueErrors that name the file, KeyError, TypeError ...) pass through."""
    import functools

    def decorate(read):
        @functools.wraps(read)
        def wrapper(source, *args, **kwargs):
            where = str(source) if isinstance(source, (str, os.PathLike, list, tuple, Mapping)) else _label(source)
            with _reading(where, what, outer=True):
                return read(source, *args, **kwargs)
        return wrapper
    return decorate


def _stim_file_id(value: str) -> str:
    """``stim_file`` (relative to the BIDS ``stimuli/`` folder) as an image id: the relative path
    without extension, as `brainprobe.stimuli.load_folder` names the images of that folder."""
    path = PurePosixPath(str(value).replace("\\", "/"))
    parts = path.parts[1:] if path.parts and path.parts[0] == "stimuli" and len(path.parts) > 1 else path.parts
    return str(PurePosixPath(*parts).with_suffix(""))


_NAME_COLUMNS = ("image_id", "stim_file", "trial_type", "kind", "source_id", "category", "condition")


def _read_one_trial_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MissingFileError(f"trial table not found: {path}")
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        header = pd.read_csv(path, sep=separator, nrows=0).columns
        # name columns stay text ("007" is not 7, an image called "NaN" is not missing); only BIDS's
        # "n/a" marks a missing name
        names = [c for c in header if c in _NAME_COLUMNS]
        table = pd.read_csv(path, sep=separator, keep_default_na=False, dtype={c: str for c in names},
                            na_values={c: ["n/a"] if c in names else ["n/a", "NaN"] for c in header}, **EXACT_FLOATS)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise InputFileError(f"{path}: not a readable {'BIDS events TSV' if separator == chr(9) else 'CSV'} table "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from error
    if "image_id" in table:
        image = table["image_id"].notna() & (table["image_id"].astype(str) != "")
        table["image_id"] = table["image_id"].where(image, "n/a").astype(str)
        if "is_image" not in table:
            table["is_image"] = image.to_numpy()
        return table
    trial_type = table["trial_type"].astype(object).where(table["trial_type"].notna(), "n/a").astype(str) \
        if "trial_type" in table else None
    if "stim_file" in table:
        has_file = table["stim_file"].notna() & (table["stim_file"].astype(str).str.strip() != "")
        ids = [_stim_file_id(f) if ok else (trial_type[i] if trial_type is not None else "n/a")
               for i, (f, ok) in enumerate(zip(table["stim_file"], has_file, strict=True))]
        is_image = has_file.to_numpy()
    elif trial_type is not None:
        ids = trial_type.tolist()
        is_image = ~trial_type.str.lower().isin(NON_IMAGE_TRIAL_TYPES).to_numpy()
    else:
        raise InputFileError(f"{path}: no image_id, stim_file or trial_type column to identify trials; "
                         f"columns are {list(table.columns)}")
    table.insert(0, "image_id", ids)
    table["is_image"] = is_image
    if "kind" not in table and not is_image.all():
        # non-image trials (blank, fixation) are their own kind: they leave the RE/AN/AI analyses;
        # image trials get their kind from the stimulus table (`kinds_from_stimuli`)
        table["kind"] = np.where(is_image, None, trial_type if trial_type is not None else "n/a")
    return table


def _trial_table_paths(path) -> list[Path]:
    if isinstance(path, (list, tuple)):
        return [Path(p) for p in path]
    text = str(path)
    if any(c in text for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)))
        if not found:
            raise MissingFileError(f"trial tables: no file matches {text}")
        return found
    return [Path(path)]


@_clean_read_errors("a trial table")
def load_trial_table(path) -> pd.DataFrame:
    """Read a trial table from CSV, a BIDS ``events.tsv``, or several per-run events files.

    Parameters
    ----------
    path : path, list of paths or glob pattern (``"sub-01/func/*_events.tsv"``)
        Several files are concatenated in the order given (a glob: sorted by name); each file's
        ``run`` is taken from ``run-XX`` in its name (and ``session`` from ``ses-XX``), which is
        an error when a name has none.

    Returns
    -------
    DataFrame, one row per trial
        ``image_id``: the table's own column, else ``stim_file`` as a path relative to the BIDS
        ``stimuli/`` folder without extension (``RE/img00.png`` -> ``RE/img00``, the id
        `brainprobe.stimuli.load_folder` gives that file), else ``trial_type``. ``is_image``:
        False for rows whose ``stim_file`` is ``n/a`` or empty (or, without ``stim_file``, whose
        ``trial_type`` is blank, fixation, null, baseline or rest); such rows keep their
        ``trial_type`` as ``kind`` and leave the RE/AN/AI analyses. Other columns are kept; a
        missing ``kind`` is filled from the stimulus table later (`kinds_from_stimuli`).
    """
    paths = _trial_table_paths(path)
    several = isinstance(path, (list, tuple)) or any(c in str(path) for c in "*?[")
    if not several:
        return _read_one_trial_table(paths[0])
    tables = []
    for file in paths:
        table = _read_one_trial_table(file)
        stem = file.name.split(".")[0]
        run = _RUN.search(stem)
        if run is None:
            raise InputFileError(f"{file}: cannot tell the run of this events file (expected run-XX in its name, "
                             "as BIDS names them)")
        if "run" in table and (table["run"].astype(int) != int(run.group(1))).any():
            raise InputFileError(f"{file}: its run column disagrees with run-{run.group(1)} in its name")
        table["run"] = int(run.group(1))
        session = _SESSION.search(stem)
        if session is not None and "session" not in table:
            table["session"] = session.group(1)
        tables.append(table)
    if not tables:
        raise BrainprobeInputError("trial tables: an empty list of files")
    return pd.concat(tables, ignore_index=True)


def kinds_from_stimuli(trials: pd.DataFrame, stimuli, *, source: str = "trials") -> pd.DataFrame:
    """The trial table with every image trial's ``kind`` checked against (or taken from) the stimuli.

    Parameters
    ----------
    trials : DataFrame, one row per trial
        ``image_id``; optional ``kind`` and ``is_image`` (False marks blank or fixation trials,
        which keep their own kind).
    stimuli : StimulusSet or DataFrame with ``image_id`` and ``kind``
    source : str
        Named in error messages.

    Returns
    -------
    DataFrame
        A copy of ``trials`` with ``kind`` filled from the stimulus table where the trial table
        has none.

    Raises
    ------
    ValueError
        When an image trial's kind contradicts the stimulus table's, or an image trial without a
        kind shows an image that is not in the stimulus table.
    """
    table = stimuli.table if hasattr(stimuli, "table") else pd.DataFrame(stimuli)
    for column in ("image_id", "kind"):
        if column not in table:
            raise BrainprobeInputError(f"stimulus table: no {column!r} column; columns are {list(table.columns)}")
    stimulus_kind = dict(zip(table["image_id"].astype(str), table["kind"].astype(str), strict=True))
    trials = pd.DataFrame(trials).reset_index(drop=True).copy()
    ids = trials["image_id"].astype(str)
    is_image = trials["is_image"].astype(bool).to_numpy() if "is_image" in trials else np.ones(len(trials), bool)
    known = ids.map(stimulus_kind)
    given = trials["kind"] if "kind" in trials else pd.Series([None] * len(trials), dtype=object)
    given = given.where(given.notna() & (given.astype(str) != ""), None)
    has_kind = given.notna().to_numpy()
    clash = is_image & has_kind & known.notna().to_numpy() & (given.astype(str) != known).to_numpy()
    if clash.any():
        examples = [f"{i!r}: trials say {g!r}, stimuli say {k!r}" for i, g, k in
                    zip(ids[clash], given[clash], known[clash], strict=True)][:3]
        raise BrainprobeInputError(f"{source}: {int(clash.sum())} trials contradict the stimulus table's kind, e.g. "
                         f"{'; '.join(examples)}")
    unknown = is_image & ~has_kind & known.isna().to_numpy()
    if unknown.any():
        raise BrainprobeInputError(f"{source}: {int(unknown.sum())} image trials have no kind and show images that are not in "
                         f"the stimulus table, e.g. {sorted(set(ids[unknown]))[:5]}; give the trial table a 'kind' "
                         "column or mark non-image trials (stim_file n/a)")
    trials["kind"] = np.where(has_kind, given.astype(object), known.astype(object))
    return trials


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


def trials_from_designinfo(stimorder, conditions: pd.DataFrame, *, one_based: bool = False,
                           numtrialrun=None) -> pd.DataFrame:
    """Trial table from GLMsingle's ``stimorder`` (condition of each trial, in time order).

    Parameters
    ----------
    stimorder : int array (n_trials,)
        0-based in GLMsingle's Python outputs, 1-based in its MATLAB outputs (``one_based=True``).
    conditions : DataFrame
        One row per condition (column of the design matrix), with ``image_id`` and any stimulus
        columns. Repeats are numbered by order of appearance.
    one_based : bool
    numtrialrun : int array (n_runs,), optional
        DESIGNINFO's trials per run; gives each trial its 0-based ``run``.

    Returns
    -------
    DataFrame, one row per trial
        The condition's row, ``condition`` (0-based), ``repeat`` and, with ``numtrialrun``, ``run``.
    """
    order = np.asarray(stimorder).astype(np.int64).ravel() - (1 if one_based else 0)
    conditions = pd.DataFrame(conditions).reset_index(drop=True)
    if order.size and (order.min() < 0 or order.max() >= len(conditions)):
        raise BrainprobeInputError(f"stimorder: condition indices {order.min()}..{order.max()} do not fit the "
                         f"{len(conditions)} rows of the condition table")
    trials = conditions.iloc[order].reset_index(drop=True)
    trials["condition"] = order
    if numtrialrun is not None:
        trials["run"] = _runs_from_counts(numtrialrun, len(order))
    trials["repeat"] = trials.groupby("image_id").cumcount() + 1
    return trials


def _runs_from_counts(numtrialrun, n_trials: int, source: str = "DESIGNINFO") -> np.ndarray:
    counts = np.asarray(numtrialrun).astype(np.int64).ravel()
    if counts.sum() != n_trials:
        raise BrainprobeInputError(f"{source}: numtrialrun {counts.tolist()} adds up to {counts.sum()} trials, "
                         f"the design has {n_trials}")
    return np.repeat(np.arange(len(counts)), counts)


def _as_trial_table(trials) -> pd.DataFrame | None:
    if trials is None or isinstance(trials, pd.DataFrame):
        return trials
    return load_trial_table(trials)


# -- format readers ------------------------------------------------------------------------------
class _Own(Exception):
    """Errors of ours raised inside `_reading` blocks: they pass through it unchanged."""


class _Missing(InputFileError, _Own):
    pass


class _Pickled(_Own):
    pass


class _V73(_Own):
    pass


class _Unreadable(InputFileError, _Own):
    """A file `_reading` could not read: said once, by the innermost guard that saw it."""


@contextmanager
def _reading(path, what: str, *, outer: bool = False):
    """Turn a library's error on a corrupt or truncated file into one line naming file and format.

    Errors of ours pass unchanged: `_Own` ones and FileNotFoundError; with ``outer`` (around a
    whole public reader, see `_clean_read_errors`) also argument errors (KeyError, TypeError,
    ImportError, MemoryError) and ValueErrors whose message already names the file.
    """
    try:
        yield
    except _Missing as error:
        raise InputFileError(str(error)) from None
    except _Unreadable as error:  # an inner guard's one line: kept, as the public InputFileError once outside
        if outer:
            raise InputFileError(str(error)) from error.__cause__  # the library's error
        raise
    except (FileNotFoundError, _Own):
        raise
    except Exception as error:  # nibabel, h5py, zipfile, expat, scipy and numpy raise many types
        text = str(error)
        if outer and (isinstance(error, (KeyError, TypeError, ImportError, MemoryError)) or (
                isinstance(error, ValueError) and (str(path) in text or Path(str(path)).name in text))):
            raise
        detail = text.splitlines()[0] if text else "no detail"
        raise _Unreadable(f"{path}: cannot be read as {what}: the file is corrupt, truncated or not what its "
                          f"name says ({type(error).__name__}: {detail})") from error


def _label(obj) -> str:
    return str(obj) if isinstance(obj, (str, os.PathLike)) else f"<{type(obj).__name__}>"


_PICKLE_HINT = ("unpickling can run code, so brainprobe does not do it unless asked: pass allow_pickle=True "
                "(allow_pickle = true in a [[subject]]) for files you trust")


def _read_numpy(path: Path, allow_pickle: bool, *, what: str | None = None) -> np.ndarray:
    what = what or ("a NumPy .npz file" if Path(path).suffix == ".npz" else "a NumPy .npy file")
    with _reading(path, what), open(path, "rb") as handle:
        magic = handle.read(6)
    if magic[:4] == b"PK\x03\x04":
        with _reading(path, "a NumPy .npz file"), np.load(path, allow_pickle=False) as data:
            keys = data.files
            key = "betas" if "betas" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise _Missing(f"{path}: expected a 'betas' array (or a single array), found {keys}")
            try:
                return data[key]
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise _Missing(f"{path}: array {key!r} holds pickled objects; {_PICKLE_HINT}") from None
                raise
    if magic != b"\x93NUMPY":
        raise InputFileError(f"{path}: cannot be read as {what}: it does not start with the NumPy header "
                         "(corrupt, or another format)")
    try:
        with _reading(path, what):
            try:
                return np.load(path, allow_pickle=allow_pickle)
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise _Pickled from None
                raise
    except _Pickled:
        glm = (" (GLMsingle's default .npy outputs are pickled dictionaries; or rerun GLMsingle with "
               "wanthdf5=1 to get .hdf5 files)") if Path(path).name.startswith(("TYPE", "DESIGNINFO")) else ""
        raise InputFileError(f"{path}: holds pickled objects{glm}; {_PICKLE_HINT}") from None


def _volume_vertices(mask: np.ndarray, affine=None) -> pd.DataFrame:
    """One row per voxel of the mask: flat index, i, j, k and (with an affine) x, y, z in mm."""
    i, j, k = np.nonzero(mask)
    table = pd.DataFrame({"hemi": "", "vertex": np.ravel_multi_index((i, j, k), mask.shape), "i": i, "j": j, "k": k})
    if affine is not None:
        mm = np.column_stack([i, j, k, np.ones(len(i))]) @ np.asarray(affine, dtype=np.float64)[:3].T
        table["x"], table["y"], table["z"] = mm[:, 0], mm[:, 1], mm[:, 2]
    return table


def _load_nibabel(source, what: str):
    """A nibabel image from a path or an image object (returned as is)."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    import nibabel as nib

    if not Path(source).is_file():
        raise MissingFileError(f"{what} not found: {source}")
    with _reading(source, what):
        return nib.load(str(source))


def _image_data(image, source, what: str) -> np.ndarray:
    with _reading(_label(source), what):
        return np.asarray(image.dataobj, dtype=np.float64)


def _read_mask(mask, shape, source, affine=None) -> np.ndarray:
    if mask is None:
        raise BrainprobeInputError(f"{source}: volume data need a mask (a NIfTI file or a boolean array of the volume's shape)")
    array_given = isinstance(mask, (np.ndarray, list, tuple))
    where = "mask" if array_given else f"mask {_label(mask)}"
    if array_given:
        array, mask_affine = np.asarray(mask), None
    else:
        image = _load_nibabel(mask, "a NIfTI mask")
        array, mask_affine = _image_data(image, mask, "a NIfTI mask"), getattr(image, "affine", None)
    array = array.astype(bool)
    if array.shape != tuple(shape):
        raise BrainprobeInputError(f"{where}: expected the volume's shape {tuple(shape)}, found {array.shape}")
    if affine is not None and mask_affine is not None and not np.allclose(mask_affine, affine, atol=1e-4):
        raise BrainprobeInputError(f"{where}: its affine differs from the betas' {source} (mask voxel -> world "
                         f"{np.round(mask_affine, 3).tolist()}, betas {np.round(affine, 3).tolist()}): the same voxel "
                         "indices are different places; resample the mask onto the betas' grid, e.g. "
                         "nilearn.image.resample_to_img(mask, betas, interpolation='nearest')")
    if not array.any():
        raise BrainprobeInputError(f"{where}: selects no voxel")
    return array


def _read_nifti(sources: Sequence, mask) -> tuple[np.ndarray, pd.DataFrame]:
    images = [_load_nibabel(s, "a NIfTI image") for s in sources]
    first = _label(sources[0])
    if len(images) == 1 and len(images[0].shape) == 4:
        data = _image_data(images[0], sources[0], "a NIfTI image")
    else:
        shapes = {tuple(img.shape) for img in images}
        if any(len(img.shape) != 3 for img in images) or len(shapes) != 1:
            raise InputFileError(f"{first}: expected one 4-D NIfTI or 3-D NIfTIs of one shape, found shapes {sorted(shapes)}")
        data = np.stack([_image_data(img, s, "a NIfTI image") for img, s in zip(images, sources, strict=True)], axis=-1)
    volume = _read_mask(mask, data.shape[:3], first, getattr(images[0], "affine", None))
    return data[volume].T, _volume_vertices(volume, getattr(images[0], "affine", None))


def _gifti_matrix(source, n_vertices: int | None, n_trials: int | None) -> np.ndarray:
    path = _label(source)
    image = _load_nibabel(source, "a GIfTI file")
    with _reading(path, "a GIfTI file"):
        arrays = [np.asarray(a.data) for a in image.darrays]
    if not arrays:
        raise InputFileError(f"{path}: no data arrays")
    if len(arrays) > 1:
        if any(a.ndim != 1 for a in arrays) or len({len(a) for a in arrays}) != 1:
            raise InputFileError(f"{path}: expected one 1-D data array per trial, found shapes {[a.shape for a in arrays[:3]]}")
        return np.stack(arrays).astype(np.float64)
    matrix = arrays[0].astype(np.float64)
    if matrix.ndim == 1:
        return matrix[None, :]
    rows, cols = matrix.shape
    if n_vertices is not None and n_vertices in (rows, cols) and rows != cols:
        return matrix if cols == n_vertices else matrix.T
    if n_trials is not None and n_trials in (rows, cols) and rows != cols:
        return matrix if rows == n_trials else matrix.T
    raise BrainprobeInputError(f"{path}: cannot tell trials from vertices in a {rows} x {cols} array; pass meshes= or a trial table")


def _read_gifti_pair(paths: Mapping, meshes, n_trials) -> tuple[np.ndarray, pd.DataFrame]:
    blocks, tables = [], []
    for hemi, path in paths.items():
        mesh = meshes.get(hemi) if meshes else None
        block = _gifti_matrix(path, mesh.n_vertices if mesh is not None else None, n_trials)
        if mesh is not None and block.shape[1] != mesh.n_vertices:
            raise BrainprobeInputError(f"{_label(path)}: hemisphere {hemi} has {block.shape[1]} vertices, its mesh {mesh.name} "
                             f"has {mesh.n_vertices}")
        blocks.append(block)
        tables.append(pd.DataFrame({"hemi": hemi, "vertex": np.arange(block.shape[1])}))
    if len({b.shape[0] for b in blocks}) != 1:
        raise BrainprobeInputError(f"GIfTI files disagree on the number of trials: {[b.shape[0] for b in blocks]}")
    return np.concatenate(blocks, axis=1), pd.concat(tables, ignore_index=True)


def _read_cifti(source) -> tuple[np.ndarray, pd.DataFrame, dict]:
    import nibabel as nib

    path = _label(source)
    image = _load_nibabel(source, "a CIFTI-2 file")
    with _reading(path, "a CIFTI-2 file"):
        data = np.asarray(image.get_fdata(), dtype=np.float64)
        axes = [image.header.get_axis(i) for i in range(data.ndim)]
    models = [i for i, axis in enumerate(axes) if isinstance(axis, nib.cifti2.cifti2_axes.BrainModelAxis)]
    if data.ndim != 2 or len(models) != 1:
        raise InputFileError(f"{path}: expected a 2-D CIFTI-2 file with one brain-model axis, found shape {data.shape} "
                         f"and axes {[type(a).__name__ for a in axes]}")
    if models[0] == 0:  # brain models first (some tools write vertices x maps): make rows the maps
        data = data.T
    axis = axes[models[0]]
    blocks, tables, sizes = [], [], {}
    for name, index, model in axis.iter_structures():
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "L", "CIFTI_STRUCTURE_CORTEX_RIGHT": "R"}.get(name)
        if hemi is None:
            continue  # subcortical voxels are not used by the surface analyses
        blocks.append(data[:, index])
        tables.append(pd.DataFrame({"hemi": hemi, "vertex": np.asarray(model.vertex)}))
        sizes[hemi] = int(model.nvertices[name])
    if not blocks:
        raise InputFileError(f"{path}: no CIFTI_STRUCTURE_CORTEX_LEFT/RIGHT surface models found")
    return np.concatenate(blocks, axis=1), pd.concat(tables, ignore_index=True), sizes


def glmsingle_model_name(model: str) -> str:
    """GLMsingle's file stem for a model given as ``"TYPED"``, ``"D"`` or the full name."""
    wanted = str(model).upper()
    for full in GLMSINGLE_MODELS:
        if wanted in (full, full[:5], full[4]):
            return full
    raise BrainprobeInputError(f"GLMsingle model: expected one of {[m[:5] for m in GLMSINGLE_MODELS]} or their full names "
                     f"{list(GLMSINGLE_MODELS)}, found {model!r}")


def _refuse_onoff(path: Path) -> None:
    if path.name.startswith("TYPEA"):
        raise InputFileError(f"{path}: TYPEA_ONOFF holds one on-off beta per vertex (all conditions together), no "
                         "single-trial betas; read TYPED_FITHRF_GLMDENOISE_RR (the default), TYPEC or TYPEB")


def _read_glmsingle(path: Path, allow_pickle: bool, model: str):
    """Betas (X, Y, Z, T) or (V, 1, 1, T) from a GLMsingle output, and the file they came from."""
    model = glmsingle_model_name(model)
    if path.is_dir():
        _refuse_onoff(Path(model))
        for suffix in (".hdf5", ".npy", ".mat"):
            if (path / f"{model}{suffix}").is_file():
                path = path / f"{model}{suffix}"
                break
        else:
            found = sorted(p.name for p in path.iterdir() if p.name.startswith("TYPE"))
            raise MissingFileError(f"{path}: no {model}.hdf5/.npy/.mat GLMsingle output; GLMsingle files there: {found}")
    _refuse_onoff(path)
    if path.suffix == ".hdf5":
        import h5py

        with _reading(path, "a GLMsingle .hdf5 output"), h5py.File(path, "r") as handle:
            if "betasmd" not in handle:
                raise _Missing(f"{path}: no 'betasmd' dataset; found {list(handle.keys())}")
            return np.asarray(handle["betasmd"], dtype=np.float64), path
    if path.suffix == ".npy":
        content = _read_numpy(path, allow_pickle, what="a GLMsingle .npy output")
        content = content.item() if content.dtype == object and content.shape == () else content
        if not isinstance(content, dict) or "betasmd" not in content:
            raise InputFileError(f"{path}: expected GLMsingle's dictionary with 'betasmd'")
        return np.asarray(content["betasmd"], dtype=np.float64), path
    if path.suffix == ".mat":
        content = _read_mat(path)
        key = "modelmd" if "modelmd" in content else "betasmd"
        if key not in content:
            raise InputFileError(f"{path}: no 'modelmd' or 'betasmd' variable; found {sorted(content)}")
        return np.asarray(content[key], dtype=np.float64), path
    raise InputFileError(f"{path}: not a GLMsingle output (.hdf5, .npy or .mat)")


def _read_mat(path: Path) -> dict:
    import scipy.io

    try:
        with _reading(path, "a MATLAB .mat file"):
            try:
                return scipy.io.loadmat(str(path))
            except NotImplementedError:  # MATLAB v7.3 files are HDF5, stored transposed
                raise _V73 from None
    except _V73:
        import h5py

        with _reading(path, "a MATLAB v7.3 .mat file"), h5py.File(path, "r") as handle:
            return {k: np.asarray(v).T for k, v in handle.items() if isinstance(v, h5py.Dataset)}


def _glmsingle_design(designinfo, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """``stimorder``, ``numtrialrun`` (or None) and whether indices are 1-based (MATLAB)."""
    one_based = False
    if isinstance(designinfo, Mapping):
        content, where = designinfo, "designinfo"
    else:
        path = Path(designinfo)
        where = str(path)
        if not path.is_file():
            raise MissingFileError(f"DESIGNINFO not found: {path}")
        if path.suffix == ".mat":
            content, one_based = _read_mat(path), True
        else:
            content = _read_numpy(path, allow_pickle, what="GLMsingle's DESIGNINFO.npy")
            content = content.item() if content.dtype == object and content.shape == () else content
    if not isinstance(content, Mapping) or "stimorder" not in content:
        found = sorted(content) if isinstance(content, Mapping) else type(content).__name__
        raise InputFileError(f"{where}: expected GLMsingle's design record with 'stimorder', found {found}")
    runs = content.get("numtrialrun")
    return (np.asarray(content["stimorder"]).astype(np.int64).ravel(),
            None if runs is None else np.asarray(runs).astype(np.int64).ravel(), one_based)


def _glmsingle_matrix(betas: np.ndarray, mask, source) -> tuple[np.ndarray, pd.DataFrame]:
    if betas.ndim == 4 and betas.shape[1:3] == (1, 1):
        return betas[:, 0, 0, :].T, pd.DataFrame({"hemi": "", "vertex": np.arange(betas.shape[0])})
    if betas.ndim == 2:
        return betas.T, pd.DataFrame({"hemi": "", "vertex": np.arange(betas.shape[0])})
    if betas.ndim == 4:
        volume = _read_mask(mask, betas.shape[:3], source)
        return betas[volume].T, _volume_vertices(volume)
    raise BrainprobeInputError(f"{source}: unexpected GLMsingle beta shape {betas.shape}")


def _glmsingle_trials(source: Path, read_from: Path, n_trials: int, trials, designinfo, conditions,
                      allow_pickle: bool) -> pd.DataFrame | None:
    """The trial table of a GLMsingle output: conditions mapped through DESIGNINFO's stimorder, runs
    from its numtrialrun (DESIGNINFO next to the betas is used when none is named)."""
    if designinfo is None and conditions is not None:
        folder = source if source.is_dir() else source.parent
        found = [folder / f"DESIGNINFO{s}" for s in (".npy", ".mat") if (folder / f"DESIGNINFO{s}").is_file()]
        if not found:
            raise MissingFileError(f"{source}: conditions given but no DESIGNINFO.npy/.mat next to the betas; pass "
                                    "designinfo= (designinfo = \"...\" in a [[subject]])")
        designinfo = found[0]
    if designinfo is None:
        return trials
    stimorder, numtrialrun, one_based = _glmsingle_design(designinfo, allow_pickle)
    where = _label(designinfo) if not isinstance(designinfo, Mapping) else "designinfo"
    if len(stimorder) != n_trials:
        raise BrainprobeInputError(f"{where}: stimorder has {len(stimorder)} trials, the betas {read_from} have {n_trials}")
    if conditions is not None:
        conditions = _as_trial_table(conditions)
        return trials_from_designinfo(stimorder, conditions, one_based=one_based or read_from.suffix == ".mat",
                                      numtrialrun=numtrialrun)
    if trials is None:
        raise BrainprobeInputError(f"{where}: designinfo given without conditions: pass the table of conditions (one row per "
                         "design-matrix column, with image_id)")
    if "run" not in trials and numtrialrun is not None:
        trials = trials.assign(run=_runs_from_counts(numtrialrun, len(trials), where))
    return trials


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


def _is_gifti(item) -> bool:
    return str(item).endswith((".gii", ".gii.gz")) or type(item).__name__ == "GiftiImage"


def _hemisphere_paths(source) -> dict | None:
    if isinstance(source, Mapping):
        return {_HEMI_NAMES.get(k, k): (Path(v) if isinstance(v, (str, os.PathLike)) else v) for k, v in source.items()}
    if isinstance(source, (list, tuple)) and source and all(_is_gifti(s) for s in source):
        paths = {}
        for s in source:
            name = Path(str(s)).name
            hemi = "L" if ("hemi-L" in name or name.startswith("lh.") or ".L." in name) else (
                "R" if ("hemi-R" in name or name.startswith("rh.") or ".R." in name) else None)
            if hemi is None:
                raise BrainprobeInputError(f"{s}: cannot tell the hemisphere (expected hemi-L/hemi-R, lh./rh. or .L./.R. in the "
                                 "name; or pass {'L': ..., 'R': ...})")
            paths[hemi] = Path(s)
        return paths
    return None


def _place_vertices(vertices: pd.DataFrame, table, meshes: Mapping, n_vertices: int, source: str) -> pd.DataFrame:
    """The vertex table of a flat surface matrix: the user's table (hemi, vertex, ROI columns), or
    a split by the meshes' sizes (left first) when the columns are exactly both hemispheres."""
    if table is not None:
        if isinstance(table, (str, os.PathLike)):
            path = Path(table)
            if not path.is_file():
                raise MissingFileError(f"vertex table not found: {path}")
            table = pd.read_csv(path, keep_default_na=False, dtype={"hemi": str}, **EXACT_FLOATS)
            where = f"vertices {path}"
        else:
            where = "vertices"
        table = pd.DataFrame(table).reset_index(drop=True)
        if len(table) != n_vertices:
            raise BrainprobeInputError(f"{where}: expected {n_vertices} rows (one per column of {source}), found {len(table)}")
        if "vertex" in table:
            _check_vertex_numbers(table.assign(hemi=table["hemi"] if "hemi" in table else ""), where)
        rest = vertices.drop(columns=[c for c in vertices.columns if c in table])
        return pd.concat([table, rest.reset_index(drop=True)], axis=1)
    flat = (vertices["hemi"] == "").all() and "i" not in vertices
    hemis = [h for h in ("L", "R") if h in meshes]
    if flat and hemis and sum(meshes[h].n_vertices for h in hemis) == n_vertices:
        sizes = [meshes[h].n_vertices for h in hemis]
        return pd.DataFrame({"hemi": np.repeat(hemis, sizes), "vertex": np.concatenate([np.arange(s) for s in sizes])})
    return vertices


def _is_nibabel_image(obj, kind: str) -> bool:
    names = {"cifti": ("Cifti2Image",), "volume": ("Nifti1Image", "Nifti2Image", "Nifti1Pair", "MGHImage")}[kind]
    return type(obj).__name__ in names


@_clean_read_errors("responses")
def load_responses(
    source,
    trials=None,
    *,
    mask=None,
    meshes: Mapping | None = None,
    vertices=None,
    designinfo=None,
    conditions=None,
    glmsingle_model: str = "TYPED",
    allow_pickle: bool = False,
    stimuli=None,
    on_bad_vertices: str = "raise",
    subject: str | None = None,
) -> Responses:
    """Read single-trial betas from any of the common formats into `Responses`.

    Parameters
    ----------
    source
        - a numpy array (n_trials, n_vertices), or a ``.npy`` / ``.npz`` file (key ``betas``);
        - a 4-D NIfTI file, or a list of 3-D NIfTI files (one per trial), with ``mask``;
        - GIfTI functional files (``.gii`` or ``.gii.gz``), one per hemisphere:
          ``{"L": path, "R": path}`` or a list of paths named ``hemi-L``/``hemi-R``; each holds
          one data array per trial or one 2-D array in either orientation;
        - a CIFTI-2 ``.dscalar.nii`` / ``.dtseries.nii`` (maps are trials, whichever axis holds
          them; left and right cortex become hemispheres L and R, other structures are ignored);
        - a GLMsingle output folder or file (``.hdf5``, ``.mat``; ``.npy`` needs
          ``allow_pickle=True`` because GLMsingle's default ``.npy`` outputs are pickled
          dictionaries);
        - a nilearn ``SurfaceImage`` (its mesh becomes ``meshes``);
        - nibabel image objects wherever a file is accepted (``Nifti1Image``, ``Cifti2Image``,
          ``GiftiImage`` in the hemisphere mapping).
    trials : DataFrame, path, list of paths or glob, optional
        One row per trial (CSV or BIDS ``events.tsv``, see `load_trial_table`); for GLMsingle,
        pass ``conditions`` instead to map trials through DESIGNINFO's ``stimorder``.
    mask : path, nibabel image or bool array, volume data only
        Its affine must equal the betas' (an error otherwise: resample it first).
    meshes : mapping of hemi to Mesh (or anything `brainprobe.roi.load_mesh` reads), optional
        A matrix without hemispheres (GLMsingle surface outputs, ``.npy``) whose columns are
        exactly the left then the right mesh's vertices is split by the meshes' sizes.
    vertices : DataFrame or CSV path, optional
        One row per column of the betas: ``hemi``, ``vertex`` (place on that hemisphere's mesh)
        and any ROI columns; replaces the table the format gives.
    designinfo : path or dict, GLMsingle only
        ``DESIGNINFO.npy`` / ``.mat`` or its dictionary (default: the one next to the betas):
        ``stimorder`` orders the trials, ``numtrialrun`` gives their runs.
    conditions : DataFrame or path, GLMsingle only
        One row per condition (design-matrix column), with ``image_id``.
    glmsingle_model : str
        Which GLMsingle model to read from a folder: ``"TYPED"`` (default), ``"TYPEC"``,
        ``"TYPEB"`` or the full name. ``TYPEA_ONOFF`` is refused: it holds no single-trial betas.
    allow_pickle : bool
        Permit reading pickled ``.npy`` files (GLMsingle's default outputs and DESIGNINFO). Off
        by default: unpickling runs code.
    stimuli : StimulusSet or DataFrame, optional
        The stimulus table: image trials without a ``kind`` take the image's kind from it, and a
        trial kind that contradicts it is an error (`kinds_from_stimuli`). Without it (and
        without a ``kind`` column) every image trial is ``"RE"``.
    on_bad_vertices : {"raise", "drop"}
    subject : str, optional
        The subject's id. Default: the BIDS ``sub-<label>`` entity of the betas' file or folder
        names (else of the trial files'), e.g. ``sub-02`` for ``sub-02/func/..._betas.dscalar.nii``;
        names that carry two different labels are an error; ``"sub-01"`` when no name has one
        (arrays, image objects, files outside a BIDS layout).

    Returns
    -------
    Responses
        Betas (n_trials, n_vertices) with their trial and vertex tables.
    """
    if subject is None:
        subject = subject_from_names(source, trials)
    trials = _as_trial_table(trials)
    meshes = {_HEMI_NAMES.get(h, h): load_mesh(m) for h, m in (meshes or {}).items()}
    label = _label(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
    table = None
    if isinstance(source, np.ndarray):
        betas = source
    elif _is_surface_image(source):
        betas, table, surface_meshes = _read_surface_image(source)
        meshes = {**surface_meshes, **meshes}
    elif _is_nibabel_image(source, "cifti"):
        betas, table, _ = _read_cifti(source)
    elif _is_nibabel_image(source, "volume"):
        betas, table = _read_nifti([source], mask)
    elif (pair := _hemisphere_paths(source)) is not None:
        betas, table = _read_gifti_pair(pair, meshes, None if trials is None else len(trials))
        label = ", ".join(_label(p) for p in pair.values())
    elif isinstance(source, (list, tuple)):
        sources = [s if _is_nibabel_image(s, "volume") else Path(s) for s in source]
        betas, table = _read_nifti(sources, mask)
        label = _label(sources[0])
    else:
        path = Path(source)
        name = path.name
        if not path.exists():
            raise MissingFileError(f"responses not found: {path}")
        if path.is_dir() or path.suffix in (".hdf5", ".mat") or (name.startswith("TYPE") and path.suffix == ".npy"):
            raw, read_from = _read_glmsingle(path, allow_pickle, glmsingle_model)
            label = str(read_from)
            betas, table = _glmsingle_matrix(raw, mask, read_from)
            trials = _glmsingle_trials(path, read_from, betas.shape[0], trials, designinfo, conditions, allow_pickle)
        elif name.endswith((".dscalar.nii", ".dtseries.nii")):
            betas, table, sizes = _read_cifti(path)
            for hemi, size in sizes.items():
                if hemi in meshes and meshes[hemi].n_vertices != size:
                    raise BrainprobeInputError(f"{path}: hemisphere {hemi} surface has {size} vertices, its mesh has {meshes[hemi].n_vertices}")
        elif name.endswith((".nii", ".nii.gz")):
            betas, table = _read_nifti([path], mask)
        elif _is_gifti(name):
            raise BrainprobeInputError(f"{path}: one GIfTI file; pass one per hemisphere ({{'L': ..., 'R': ...}} or a list "
                             "named hemi-L/hemi-R)")
        elif path.suffix in (".npy", ".npz"):
            betas = _read_numpy(path, allow_pickle)
        else:
            raise InputFileError(f"{path}: unrecognized response format (expected .npy, .npz, .nii, .gii pair, "
                             ".dscalar.nii/.dtseries.nii, or a GLMsingle .hdf5/.mat/.npy/folder)")
    betas = np.asarray(betas)
    if betas.ndim == 1:
        betas = betas[None, :]  # a single map
    if table is None:
        table = pd.DataFrame({"hemi": "", "vertex": np.arange(betas.shape[1] if betas.ndim == 2 else 0)})
    if betas.ndim == 2:
        table = _place_vertices(table, vertices, meshes, betas.shape[1], label)
    if stimuli is not None and trials is not None:
        trials = kinds_from_stimuli(trials, stimuli, source=f"{label} trials")
    return Responses(betas, trials, table, meshes=meshes, on_bad_vertices=on_bad_vertices,
                     source=label, subject=subject)


_SUBJECT_ENTITY = re.compile(r"(?:^|[_/\\])(sub-[A-Za-z0-9]+)(?=[_/\\.]|$)")


def _path_names(value) -> list[str]:
    """The file and folder names in ``value`` (a path, glob, list or hemisphere mapping of them)."""
    if isinstance(value, (str, os.PathLike)):
        return [str(value)]
    if isinstance(value, Mapping):
        return [name for item in value.values() for name in _path_names(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _path_names(item)]
    return []


def subject_from_names(source, trials=None) -> str:
    """The BIDS ``sub-<label>`` of the betas' and trial files' names, or ``"sub-01"`` when none has one.

    Raises
    ------
    ValueError
        When the names carry more than one label (``sub-02`` betas with ``sub-03`` trials).
    """
    names = _path_names(source) + _path_names(trials)
    # only the last entity of each path counts: a folder above may itself be named sub-...
    labels = {found[-1] for found in (_SUBJECT_ENTITY.findall(n.replace(os.sep, "/")) for n in names) if found}
    if len(labels) > 1:
        raise ValueError(f"subject: the file names carry different subjects {sorted(labels)} ({names}); "
                         "pass subject= (id = ... in a [[subject]])")
    return labels.pop() if labels else "sub-01"
