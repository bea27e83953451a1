"""`StimulusSet`: float images in [0, 1] and the table that says what each one is, and the folder
format it is saved in (`save_stimuli` / `load_stimuli`)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .._errors import InputFileError, MissingFileError
from .._files import EXACT_FLOATS, MANIFEST, foreign_files, record_written, remove_written
from .._images import as_image_tensor

__all__ = ["StimulusSet", "TABLE_COLUMNS", "load_stimuli", "save_stimuli"]

_ARRAYS_FILE = "stimuli.npz"
_TABLE_FILE = "stimuli.csv"
_PNG_FOLDER = "images"

# The columns every StimulusSet table has, with the value used when a caller leaves one out.
# `source_id` defaults to the image's own id (an RE image is its own source).
TABLE_COLUMNS: dict[str, object] = {
    "image_id": None,
    "kind": "RE",
    "source_id": None,
    "category": "",
    "class_index": -1,
    "target_class": -1,
}


def _complete_table(table: pd.DataFrame | None, n_images: int) -> pd.DataFrame:
    table = pd.DataFrame(index=range(n_images)) if table is None else pd.DataFrame(table).reset_index(drop=True)
    if len(table) != n_images:
        raise ValueError(f"table: expected one row per image ({n_images}), found {len(table)} rows")
    if "image_id" not in table:
        table.insert(0, "image_id", [f"img{i:04d}" for i in range(n_images)])
    table["image_id"] = table["image_id"].astype(str)
    duplicated = table["image_id"][table["image_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"table['image_id']: ids must be unique, found duplicates {duplicated[:5]}")
    for column, default in TABLE_COLUMNS.items():
        if column not in table:
            table[column] = table["image_id"] if column == "source_id" else default
    for column in ("class_index", "target_class"):
        values = pd.to_numeric(table[column], errors="raise")
        if values.isna().any() or (values != values.round()).any():
            raise ValueError(f"table[{column!r}]: expected integer class indices (-1 for none)")
        table[column] = values.astype(np.int64)
    for column in ("kind", "source_id", "category"):
        table[column] = table[column].astype(str)
    ordered = list(TABLE_COLUMNS) + [c for c in table.columns if c not in TABLE_COLUMNS]
    return table[ordered]


class StimulusSet:
    """Images as float32 (n_images, 3, H, W) in [0, 1], with a table of one row per image.

    The table always has the columns ``image_id`` (unique), ``kind`` (``RE``, ``AN``, ``AI``, ...),
    ``source_id`` (the RE image an image derives from; its own id for RE images), ``category``,
    ``class_index`` and ``target_class`` (ImageNet indices, -1 for none). Methods that make
    images add their own columns (probabilities, distances, ...).

    Parameters
    ----------
    images : tensor or array (n_images, 3, H, W) in [0, 1]
    table : pandas.DataFrame, optional
        One row per image; missing standard columns are filled with defaults.

    Examples
    --------
    >>> import torch
    >>> from brainprobe.stimuli import StimulusSet
    >>> stim = StimulusSet(torch.rand(2, 3, 8, 8), {"image_id": ["a", "b"], "category": ["dog", "car"]})
    >>> len(stim), stim.table["kind"].tolist()
    (2, ['RE', 'RE'])
    """

    def __init__(self, images, table: pd.DataFrame | dict | None = None):
        images = as_image_tensor(images, name="images").detach()
        self.images: torch.Tensor = images.to("cpu", torch.float32).contiguous()
        self.table: pd.DataFrame = _complete_table(
            pd.DataFrame(table) if isinstance(table, dict) else table, len(self.images)
        )

    # -- basic protocol ------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_mapped", None)  # a memory-mapped set's map: the images tensor already carries its values
        return state

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_ids(self) -> list[str]:
        return self.table["image_id"].tolist()

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def __repr__(self) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in self.table["kind"].value_counts(sort=False).items())
        h, w = self.image_size if len(self) else (0, 0)
        return f"StimulusSet({len(self)} images, 3x{h}x{w}; kinds: {kinds or 'none'})"

    def __getitem__(self, key) -> StimulusSet:
        """Rows by position: an int, slice, integer array or boolean mask."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        if isinstance(key, pd.Series):
            key = key.to_numpy()
        index = np.arange(len(self))[key]
        return StimulusSet(self.images[torch.as_tensor(index, dtype=torch.long)], self.table.iloc[index])

    def select(self, **conditions) -> StimulusSet:
        """Rows whose table columns equal the given values (a list means any of them).

        >>> stim.select(kind="RE")                      # doctest: +SKIP
        >>> stim.select(kind=["AN", "AI"], category="dog")  # doctest: +SKIP
        """
        mask = np.ones(len(self), dtype=bool)
        for column, wanted in conditions.items():
            if column not in self.table:
                raise KeyError(f"select: no column {column!r}; columns are {list(self.table.columns)}")
            values = [wanted] if isinstance(wanted, (str, int, float)) else list(wanted)
            mask &= self.table[column].isin(values).to_numpy()
        return self[mask]

    def by_ids(self, image_ids: Sequence[str]) -> StimulusSet:
        """Rows in the order of ``image_ids``; unknown ids are an error naming them."""
        position = pd.Series(np.arange(len(self)), index=self.table["image_id"])
        unknown = [i for i in image_ids if i not in position.index]
        if unknown:
            raise KeyError(f"image ids not in this StimulusSet: {unknown[:5]}")
        return self[position.loc[list(image_ids)].to_numpy()]

    @staticmethod
    def concat(sets: Sequence[StimulusSet]) -> StimulusSet:
        """One StimulusSet from several with the same image size; ids must stay unique."""
        sets = list(sets)
        if not sets:
            raise ValueError("concat: expected at least one StimulusSet")
        sizes = {s.image_size for s in sets if len(s)}
        if len(sizes) > 1:
            raise ValueError(f"concat: image sizes differ {sorted(sizes)}; resize them to one size first")
        images = torch.cat([s.images for s in sets])
        table = pd.concat([s.table for s in sets], ignore_index=True)
        return StimulusSet(images, table)

    def with_table(self, table: pd.DataFrame) -> StimulusSet:
        """The same images with a new table (one row per image)."""
        return StimulusSet(self.images, table)

    def numpy(self, channels_last: bool = True) -> np.ndarray:
        """Images as a float32 array, (n_images, H, W, 3) by default, for plotting."""
        array = self.images.numpy()
        return array.transpose(0, 2, 3, 1) if channels_last else array

    def equals(self, other: StimulusSet) -> bool:
        """Exact equality of images and table."""
        return (
            isinstance(other, StimulusSet)
            and self.images.shape == other.images.shape
            and bool(torch.equal(self.images, other.images))
            and self.table.equals(other.table)
        )

    # -- files ---------------------------------------------------------------------------------
    def save(self, folder, *, overwrite: bool = False):
        """Write PNGs (8-bit, for viewing), an exact float32 ``.npz`` and ``stimuli.csv``.

        See `brainprobe.stimuli.save_stimuli`.
        """
        return save_stimuli(self, folder, overwrite=overwrite)

    @classmethod
    def load(cls, folder) -> StimulusSet:
        """Read a folder written by `save`, exactly. See `brainprobe.stimuli.load_stimuli`."""
        return load_stimuli(folder)


def _png_names(image_ids: list[str]) -> list[str]:
    """A safe file name per id; ``/`` in an id makes sub-folders (``AN/img00`` -> ``AN/img00.png``),
    so `load_folder` of the PNG folder gives back the same ids."""
    names, used = [], set()
    for index, image_id in enumerate(image_ids):
        parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") for part in str(image_id).split("/")]
        name = "/".join(part for part in parts if part) or f"image{index:04d}"
        if name.lower() in used:
            name = f"{name}_{index:04d}"
        used.add(name.lower())
        names.append(name + ".png")
    return names


def save_stimuli(stimuli: StimulusSet, folder, *, overwrite: bool = False) -> Path:
    """Save a StimulusSet to ``folder``: ``stimuli.npz`` (exact float32 images), ``stimuli.csv``
    (the table, with a ``png`` column) and ``images/*.png`` (8-bit copies for viewing).

    The files are written next to their final place and moved there at the end, so an
    interrupted save leaves nothing half-written. A folder that holds files is written to only
    with ``overwrite=True``, and then only the files brainprobe wrote there before (listed in
    its ``.brainprobe-manifest.json``) are replaced or removed: any other file is left alone,
    and one that has the name of a file to write is an error.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder")
    occupied = folder.exists() and any(folder.iterdir())
    if occupied and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        table = stimuli.table.copy()
        table["png"] = [f"{_PNG_FOLDER}/{name}" for name in _png_names(stimuli.image_ids)]
        names = [_ARRAYS_FILE, _TABLE_FILE, *table["png"]]
        clashes = foreign_files(folder, names) if occupied else []
        if clashes:
            raise FileExistsError(f"{folder / clashes[0]}: not written by brainprobe (not in {folder / MANIFEST}); "
                                  "move it away or choose another folder")
        (staging / _PNG_FOLDER).mkdir()
        # one image at a time: the whole set's 8-bit copy went through three float temporaries
        # of its size (18 GB at 10,000 images of 224 pixels)
        for name, image in zip(table["png"], stimuli.images, strict=True):
            pixels = np.round(image.permute(1, 2, 0).numpy() * 255.0).clip(0, 255).astype(np.uint8)
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(staging / name)
        with open(staging / _ARRAYS_FILE, "wb") as handle:
            np.savez(
                handle,
                images=stimuli.images.numpy(),
                image_ids=np.asarray(stimuli.image_ids, dtype=str),
                columns=np.asarray(stimuli.table.columns, dtype=str),
                dtypes=np.asarray([str(t) for t in stimuli.table.dtypes], dtype=str),
            )
        table.to_csv(staging / _TABLE_FILE, index=False, na_rep="NaN")
        if not occupied:
            record_written(staging, names, replace=True)
            if folder.exists():
                folder.rmdir()
            os.replace(staging, folder)
        else:  # only brainprobe's own files are replaced; the user's stay
            remove_written(folder, keep=names)
            for name in names:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, folder / name)
            record_written(folder, names)
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_stimuli(folder, *, mmap: bool = False) -> StimulusSet:
    """Load a folder written by `save_stimuli`, images bit-exact and table with its dtypes.

    Parameters
    ----------
    folder : path
    mmap : bool
        Map the images from the file instead of reading them (``stimuli.npz`` stores them
        uncompressed): only the pages of the images used are read, and the system may drop them
        again (10,000 images of 224 pixels are 6 GB). They are checked for [0, 1] a block at a
        time. Writing into such a set's images is not supported.
    """
    folder = Path(folder)
    arrays_path, table_path = folder / _ARRAYS_FILE, folder / _TABLE_FILE
    for path in (arrays_path, table_path):
        if not path.is_file():
            raise MissingFileError(f"{path} not found: {folder} is not a folder written by StimulusSet.save")
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            missing = {"images", "image_ids", "columns", "dtypes"} - set(data.files)
            if missing:
                raise InputFileError(f"{arrays_path}: missing fields {sorted(missing)}")
            mapped = _mapped_member(arrays_path, "images") if mmap else None
            images = data["images"] if mapped is None else mapped
            image_ids = data["image_ids"].tolist()
            columns, dtypes = data["columns"].tolist(), data["dtypes"].tolist()
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        if str(arrays_path) in str(error):
            raise
        raise InputFileError(f"{arrays_path}: corrupt or truncated ({type(error).__name__}: {error})") from error
    try:
        text = {"image_id"} | {c for c, d in zip(columns, dtypes, strict=False) if d in ("object", "str", "string")}
        header = pd.read_csv(table_path, nrows=0).columns
        table = pd.read_csv(table_path, keep_default_na=False, dtype={c: str for c in header if c in text},
                            na_values={c: [] if c in text else ["NaN"] for c in header}, **EXACT_FLOATS)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"{table_path}: cannot be read as a table ({type(error).__name__}: {error})") from error
    if "image_id" not in table:
        raise InputFileError(f"{table_path}: expected an image_id column; columns are {list(table.columns)}")
    if table["image_id"].tolist() != image_ids:
        raise InputFileError(f"{table_path}: image_id column does not match {arrays_path} (edited by hand?)")
    absent = [c for c in columns if c not in table]
    if absent:
        raise InputFileError(f"{table_path}: missing columns {absent}")
    table = table[columns]
    for column, dtype in zip(columns, dtypes, strict=True):
        table[column] = table[column].astype(str) if dtype in ("object", "str", "string") else table[column].astype(dtype)
    if not isinstance(images, np.memmap):
        return StimulusSet(torch.from_numpy(images), table)
    _check_mapped(images, arrays_path)
    stimuli = StimulusSet(torch.zeros((0, *images.shape[1:]), dtype=torch.float32), table.iloc[:0])
    stimuli.images = torch.from_numpy(images)  # checked above, a block at a time
    stimuli.table = _complete_table(table, len(images))
    stimuli._mapped = images
    return stimuli


def _mapped_member(path: Path, name: str) -> np.memmap | None:
    """The ``name`` array of an uncompressed ``.npz`` as a copy-on-write memory map (None when
    it is compressed or not a plain array: then it is read)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)  # the member's local header: its name and extra field lengths at 26 and 28
        if local[:4] != b"PK\x03\x04":
            return None
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        handle.seek(start)
        version = np.lib.format.read_magic(handle)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(handle) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(handle))
        offset = handle.tell()
    if dtype.hasobject or fortran:
        return None
    # copy-on-write: writable for torch (no warning), never written back to the file
    return np.memmap(path, dtype=dtype, mode="c", shape=shape, offset=offset)


def _check_mapped(images: np.memmap, path: Path) -> None:
    """Finite values in [0, 1] (as `StimulusSet` checks), a block of images at a time; the pages
    read are given back after each block, so the check never holds the file in memory."""
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.float32:
        raise InputFileError(f"{path}: images: expected float32 (n_images, 3, H, W), found {images.dtype} {images.shape}")
    per_image = int(np.prod(images.shape[1:])) * 4
    step = max(1, (64 * 2**20) // max(1, per_image))
    for start in range(0, len(images), step):
        block = torch.from_numpy(images[start:start + step])
        if block.numel():
            lo, hi = (float(v) for v in torch.aminmax(block))
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
                raise InputFileError(f"{path}: images {start}..{start + len(block) - 1}: expected finite pixel values "
                                     f"in [0, 1], found range [{lo:.4g}, {hi:.4g}]")
        release_pages(images)


def release_pages(images) -> None:
    """Give back the pages of a memory-mapped image array (or a StimulusSet loaded with
    ``mmap=True``) that were read: they are read again from the file when used."""
    from .._memory import release_mapped

    release_mapped(getattr(images, "_mapped", images))
