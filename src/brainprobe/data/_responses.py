"""`Responses`: single-trial betas with their trial and vertex tables, validated on entry."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._npz import frame_from_arrays, frame_to_arrays, read_npz, write_npz
from ..roi import Mesh
from ._export import values_to_nifti, values_to_surface_image

__all__ = ["Responses", "TRIAL_COLUMNS", "BAD_VERTEX_POLICIES"]

TRIAL_COLUMNS = {"image_id": None, "kind": "RE", "repeat": None, "run": 0, "session": 0}
BAD_VERTEX_POLICIES = ("raise", "drop")


def _complete_trials(trials: pd.DataFrame | None, n_trials: int, source: str) -> pd.DataFrame:
    if trials is None:
        raise ValueError(f"{source}: a trial table is needed (one row per trial with at least image_id)")
    trials = pd.DataFrame(trials).reset_index(drop=True)
    if len(trials) != n_trials:
        raise ValueError(f"{source}: the betas have {n_trials} trials but the trial table has {len(trials)} rows")
    if "image_id" not in trials:
        raise ValueError(f"{source}: the trial table has no 'image_id' column; columns are {list(trials.columns)}")
    trials["image_id"] = trials["image_id"].astype(str)
    if "repeat" not in trials:
        trials["repeat"] = trials.groupby("image_id").cumcount() + 1
    trials["repeat"] = _whole_numbers(trials["repeat"], "repeat", source)
    for column, default in TRIAL_COLUMNS.items():
        if column not in trials:
            trials[column] = default
        elif default is not None and trials[column].isna().any():
            trials[column] = trials[column].where(trials[column].notna(), default)
    duplicated = trials.duplicated(["image_id", "repeat"], keep=False)
    if duplicated.any():
        examples = trials.loc[duplicated, ["image_id", "repeat"]].drop_duplicates().head(3).to_dict("records")
        raise ValueError(f"{source}: duplicate trial labels (image_id, repeat): {examples}")
    return trials


def _whole_numbers(values: pd.Series, column: str, source: str) -> pd.Series:
    """A column of whole numbers as integers (a CSV's ``1.0`` is repeat 1, not "repeat1.0");
    a blank, a fraction or a word is refused with its row."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{source}: trial table row {row + 1}: {column} {value!r} is not a whole number")
    return numbers.astype(np.int64)


def _complete_vertices(vertices: pd.DataFrame | None, n_vertices: int, source: str) -> pd.DataFrame:
    if vertices is None:
        vertices = pd.DataFrame({"hemi": "", "vertex": np.arange(n_vertices)})
    vertices = pd.DataFrame(vertices).reset_index(drop=True)
    if len(vertices) != n_vertices:
        raise ValueError(f"{source}: the betas have {n_vertices} vertices but the vertex table has {len(vertices)} rows")
    for column, default in (("hemi", ""), ("vertex", None)):
        if column not in vertices:
            vertices[column] = np.arange(n_vertices) if default is None else default
    _check_vertex_numbers(vertices, source)
    return vertices


def _check_vertex_numbers(vertices: pd.DataFrame, source: str) -> None:
    """Vertex indices are whole numbers >= 0, each (hemi, vertex) once: a -1 would silently index
    the last vertex of a mesh, and a repeated row would count one vertex twice."""
    numbers = pd.to_numeric(vertices["vertex"], errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = vertices["vertex"].iloc[row]
        raise ValueError(f"{source}: vertex table row {row + 1}: vertex {value if not isinstance(value, str) else repr(value)} is not a "
                         "vertex index (expected a whole number >= 0)")
    repeated = vertices.duplicated(["hemi", "vertex"], keep="first")
    if repeated.any():
        row = int(np.flatnonzero(repeated.to_numpy())[0])
        hemi, vertex = vertices["hemi"].iloc[row], vertices["vertex"].iloc[row]
        raise ValueError(f"{source}: vertex table row {row + 1} repeats hemi {hemi!r} vertex {vertex} (each vertex "
                         "may appear once)")


# the spellings of a yes/no ROI membership in a table; anything else (a blank cell too) is refused
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _roi_column(values, name: str, where: str) -> np.ndarray:
    """A vertex table's ROI column as booleans, read exactly.

    ``True``/``False``, 1/0 and the words true/false, yes/no (any case) are accepted; a blank
    cell or any other value is an error naming its row (``astype(bool)`` would make every
    non-empty string, ``"no"`` included, a member).

    Raises
    ------
    ValueError
        ``"<where>: ROI column <name> row <r>: expected true/false, yes/no or 1/0, found <value>"``.
    """
    series = pd.Series(values).reset_index(drop=True)
    if series.dtype == bool:
        return series.to_numpy()
    out = np.zeros(len(series), dtype=bool)
    for row, value in enumerate(series.tolist()):
        if isinstance(value, (bool, np.bool_)):
            out[row] = bool(value)
            continue
        if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            out[row] = bool(value)
            continue
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text in _TRUE or text in _FALSE:
            out[row] = text in _TRUE
            continue
        raise ValueError(f"{where}: ROI column {name!r} row {row + 1}: expected true/false, yes/no or 1/0, "
                         f"found {value!r}")
    return out


# images averaged per matrix product in `Responses.average_repeats` (up to this many, in one)
_AVERAGING_BLOCK = 512


class Responses:
    """Single-trial response estimates of one subject.

    Parameters
    ----------
    betas : array (n_trials, n_vertices)
    trials : DataFrame, one row per trial
        ``image_id`` (required), ``kind``, ``repeat`` (1, 2, ...; derived from the order of
        appearance when absent), ``run``, ``session``, any other columns.
    vertices : DataFrame, one row per vertex, optional
        ``hemi`` (``"L"``/``"R"``, or ``""`` for volume data), ``vertex`` (index on that
        hemisphere's mesh, or flat voxel index), and boolean ROI columns.
    meshes : mapping of hemi to Mesh, optional
        Each hemisphere's mesh; vertex indices must fall inside it.
    on_bad_vertices : {"raise", "drop"}
        Vertices with NaN/infinite betas or zero variance across trials (two trials or more)
        are an error, or are
        dropped with a warning (then listed in ``dropped_vertices_``).
    source : str
        Where the data came from, used in error messages.
    subject : str

    Attributes
    ----------
    dropped_vertices_ : DataFrame
        The vertex-table rows that were dropped, with the reason.
    """

    def __init__(self, betas, trials: pd.DataFrame | None, vertices: pd.DataFrame | None = None, *,
                 meshes: Mapping | None = None, on_bad_vertices: str = "raise", source: str = "betas",
                 subject: str = "sub-01"):
        if on_bad_vertices not in BAD_VERTEX_POLICIES:
            raise ValueError(f"on_bad_vertices: expected one of {BAD_VERTEX_POLICIES}, found {on_bad_vertices!r}")
        betas = np.asarray(betas)
        if betas.ndim != 2:
            raise ValueError(f"{source}: expected betas of shape (n_trials, n_vertices), found {betas.shape}")
        if np.iscomplexobj(betas):
            raise ValueError(f"{source}: complex betas ({betas.dtype}); expected real numbers (take .real or abs() "
                             "yourself if that is what you mean)")
        if not np.issubdtype(betas.dtype, np.number) or betas.dtype == bool:
            raise ValueError(f"{source}: expected numeric betas, found dtype {betas.dtype}")
        if not np.issubdtype(betas.dtype, np.floating):
            betas = betas.astype(np.float64)
        if not betas.dtype.isnative:  # big-endian arrays (from some MATLAB/NIfTI writers): native byte order
            betas = betas.astype(betas.dtype.newbyteorder("="))
        self.source, self.subject = source, subject
        self.trials = _complete_trials(trials, betas.shape[0], source)
        vertices = _complete_vertices(vertices, betas.shape[1], source)
        self.meshes = dict(meshes or {})
        self._check_meshes(vertices)
        keep, reasons = self._bad_vertices(betas)
        self.dropped_vertices_ = vertices.loc[~keep].assign(reason=reasons[~keep])
        if (~keep).any():
            summary = self.dropped_vertices_["reason"].value_counts().to_dict()
            if on_bad_vertices == "raise":
                first = self.dropped_vertices_.head(3)[["hemi", "vertex", "reason"]].to_dict("records")
                raise ValueError(f"{source}: {int((~keep).sum())} vertices are unusable {summary}, e.g. {first}; "
                                 "pass on_bad_vertices='drop' to leave them out")
            warnings.warn(f"{source}: dropped {int((~keep).sum())} vertices {summary}", stacklevel=2)
        self.betas = betas[:, keep]
        self.vertices = vertices.loc[keep].reset_index(drop=True)

    @staticmethod
    def _bad_vertices(betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        finite = np.isfinite(betas).all(axis=0)
        # one map (a single-map file) has no variance to judge: only its finiteness is checked
        with np.errstate(invalid="ignore"):
            constant = (np.nanmax(betas, axis=0) == np.nanmin(betas, axis=0) if len(betas) > 1
                        else np.zeros(betas.shape[1], bool))
        reasons = np.where(~finite, "non-finite values", np.where(constant, "zero variance", ""))
        return finite & ~constant, reasons

    def _check_meshes(self, vertices: pd.DataFrame) -> None:
        for hemi, mesh in self.meshes.items():
            part = vertices.loc[vertices["hemi"] == hemi, "vertex"]
            if len(part) and part.max() >= mesh.n_vertices:
                raise ValueError(f"{self.source}: hemisphere {hemi} has vertex index {part.max()} but its mesh "
                                 f"{mesh.name} has {mesh.n_vertices} vertices")

    # -- files ---------------------------------------------------------------------------------
    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write to one ``.npz`` file (the study's cache writes this too); `Responses.load` reads it.

        ``betas`` (n_trials, n_vertices); the trial and vertex tables column by column
        (``trials/<column>``, ``vertices/<column>``); ``subject`` and ``source``; and each mesh's
        ``mesh/<hemi>/coordinates``, ``faces`` and ``name``. No pickles.

        Parameters
        ----------
        path : path to a ``.npz`` file
        overwrite : bool
            Replace an existing file; otherwise that is an error.
        """
        arrays = {"betas": self.betas, "subject": np.asarray(self.subject, dtype=str),
                  "source": np.asarray(self.source, dtype=str),
                  **frame_to_arrays(self.trials, "trials"), **frame_to_arrays(self.vertices, "vertices"),
                  "mesh_hemis": np.asarray(list(self.meshes), dtype=str)}
        for hemi, mesh in self.meshes.items():
            arrays.update({f"mesh/{hemi}/coordinates": mesh.coordinates, f"mesh/{hemi}/faces": mesh.faces,
                           f"mesh/{hemi}/name": np.asarray(mesh.name, dtype=str)})
        return write_npz(path, arrays, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> Responses:
        """Read a file written by `Responses.save` (checked again like any new `Responses`)."""
        arrays = read_npz(path, required=("betas", "subject", "source", "trials/__columns__", "vertices/__columns__",
                                          "mesh_hemis"))
        meshes = {hemi: Mesh(arrays[f"mesh/{hemi}/coordinates"], arrays[f"mesh/{hemi}/faces"],
                             str(arrays[f"mesh/{hemi}/name"])) for hemi in arrays["mesh_hemis"].tolist()}
        return cls(arrays["betas"], frame_from_arrays(arrays, "trials"), frame_from_arrays(arrays, "vertices"),
                   meshes=meshes, source=str(arrays["source"]), subject=str(arrays["subject"]))

    # -- views ---------------------------------------------------------------------------------
    @property
    def n_trials(self) -> int:
        return self.betas.shape[0]

    @property
    def n_vertices(self) -> int:
        return self.betas.shape[1]

    @property
    def roi_names(self) -> list[str]:
        """Boolean columns of the vertex table (ROI masks)."""
        return [c for c in self.vertices.columns if self.vertices[c].dtype == bool]

    def __repr__(self) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in self.trials["kind"].value_counts(sort=False).items())
        hemis = ", ".join(f"{h or 'volume'}={n}" for h, n in self.vertices["hemi"].value_counts(sort=False).items())
        return (f"Responses({self.subject}: {self.n_trials} trials ({kinds}) x {self.n_vertices} vertices "
                f"({hemis}); ROIs: {self.roi_names})")

    def roi_mask(self, roi: str | Sequence[bool] | np.ndarray, hemi: str | None = None) -> np.ndarray:
        """Boolean mask over vertices for an ROI column name (or a mask), optionally one hemisphere."""
        if isinstance(roi, str):
            if roi not in self.vertices:
                raise KeyError(f"no ROI {roi!r}; ROIs are {self.roi_names}")
            mask = _roi_column(self.vertices[roi], roi, f"{self.source} vertex table")
        else:
            mask = np.asarray(roi, dtype=bool)
            if mask.shape != (self.n_vertices,):
                raise ValueError(f"roi mask: expected shape ({self.n_vertices},), found {mask.shape}")
        if hemi is not None:
            mask = mask & (self.vertices["hemi"].to_numpy() == hemi)
        return mask

    def add_roi(self, name: str, mask, *, where: str | None = None) -> None:
        """Add (or replace) a boolean ROI column.

        ``mask`` holds booleans, 1/0 or the words true/false, yes/no; a blank or any other value
        is an error naming its row (and ``where``, the table it came from).
        """
        values = np.asarray(mask)
        if values.shape != (self.n_vertices,):
            raise ValueError(f"ROI {name!r}: expected a mask of shape ({self.n_vertices},), found {values.shape}")
        mask = values if values.dtype == bool else _roi_column(values.astype(object), name, where or self.source)
        self.vertices[name] = mask

    def subset(self, trials=None, vertices=None) -> Responses:
        """A new Responses with the selected trials (mask or indices) and vertices."""
        t = np.arange(self.n_trials) if trials is None else np.arange(self.n_trials)[trials]
        v = np.arange(self.n_vertices) if vertices is None else np.arange(self.n_vertices)[vertices]
        out = object.__new__(Responses)
        out.source, out.subject, out.meshes = self.source, self.subject, self.meshes
        out.betas = self.betas[np.ix_(t, v)]
        out.trials = self.trials.iloc[t].reset_index(drop=True)
        out.vertices = self.vertices.iloc[v].reset_index(drop=True)
        out.dropped_vertices_ = self.dropped_vertices_
        return out

    def select_trials(self, **conditions) -> Responses:
        """Trials whose table columns equal the given values (a list means any of them)."""
        mask = np.ones(self.n_trials, dtype=bool)
        for column, wanted in conditions.items():
            if column not in self.trials:
                raise KeyError(f"select_trials: no column {column!r}; columns are {list(self.trials.columns)}")
            values = [wanted] if isinstance(wanted, (str, int, float)) else list(wanted)
            mask &= self.trials[column].isin(values).to_numpy()
        return self.subset(trials=mask)

    def to_nifti(self, values=None, *, shape=None, affine=None):
        """Betas (default) or any per-voxel ``values`` (n_voxels,) / (n_maps, n_voxels) as a NIfTI image.

        Volume data only (vertex table with ``i, j, k``); the affine comes from the ``x, y, z``
        mm columns unless given. See `brainprobe.data.values_to_nifti`.
        """
        return values_to_nifti(self.vertices, self.betas if values is None else values, shape=shape, affine=affine)

    def to_surface_image(self, values=None):
        """Betas (default) or any per-vertex ``values`` as a nilearn ``SurfaceImage`` on the meshes.

        See `brainprobe.data.values_to_surface_image`.
        """
        return values_to_surface_image(self.vertices, self.meshes, self.betas if values is None else values)

    def average_repeats(self, repeats: Sequence[int] | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """One pattern per image: the mean over its repeats (optionally only the given repeats).

        Returns
        -------
        patterns : array (n_images, n_vertices)
        table : DataFrame (n_images rows)
            ``image_id``, ``kind`` and ``n_repeats``, in order of first appearance, plus any
            stimulus columns (``source_id``...) present in the trial table.
        """
        trials = self.trials
        keep = np.ones(self.n_trials, bool) if repeats is None else trials["repeat"].isin(list(repeats)).to_numpy()
        trials = trials[keep]
        codes, image_ids = pd.factorize(trials["image_id"])
        counts = np.bincount(codes, minlength=len(image_ids)).astype(float)[:, None]
        betas = self.betas[keep]
        # the (images x trials) averaging matrix a block of images at a time: whole, it is 2.4 GB
        # for NSD (10,000 images x 30,000 trials). The block is fixed, not taken from the memory
        # budget: a matrix product's rounding can depend on its shape, and the patterns must not
        block = _AVERAGING_BLOCK
        patterns = np.empty((len(image_ids), betas.shape[1]), dtype=np.result_type(betas.dtype, np.float64))
        for start in range(0, len(image_ids), block):
            images = np.arange(start, min(start + block, len(image_ids)))
            weights = np.zeros((len(images), len(trials)))
            mine = (codes >= images[0]) & (codes <= images[-1])
            weights[codes[mine] - images[0], np.flatnonzero(mine)] = 1.0
            patterns[images] = (weights / counts[images]) @ betas
        first = trials.drop_duplicates("image_id").set_index("image_id").loc[list(image_ids)].reset_index()
        extra = [c for c in first.columns if c not in ("repeat", "run", "session")]
        table = first[extra].assign(n_repeats=counts.ravel().astype(int))
        return patterns, table
