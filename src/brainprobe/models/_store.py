"""Activations on disk, one ``.npy`` file per layer: written batch by batch, read as memory maps.

The folder layout (what ``extract(..., out=folder)`` writes and `Activations.load` reopens)::

    folder/
      activations.json     the manifest: image ids, layers (name, file, units, shape), dtype, model
      00_conv1.npy         float32 (n_images, n_units), one file per layer, in layer order
      01_conv2.npy
      ...

Why this shape: at NSD scale (10,000 images) AlexNet's eight layers take ~20 GB, more than a
laptop holds, while each layer alone is read whole by an RDM or an encoding fit. Plain ``.npy``
files open with ``np.load(mmap_mode="r")`` anywhere (numpy, thingsvision-style tools), and hold no
pickles.

Writing never exposes a half result: every file goes into a hidden sibling folder
(``.<name>.partial-*``), and the finished folder is renamed into place at the end. An interrupted
run (an exception, Ctrl-C) removes that folder; a killed one leaves it hidden and without a
manifest at the final name, so nothing half-written looks complete. Batches are appended with
plain file writes, not through a writable memory map, so the written pages are page cache the
kernel can drop, never part of the process's resident memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._errors import InputFileError, MissingFileError, check_format

__all__ = ["MANIFEST_NAME", "LayerFolderWriter", "check_output_folder", "is_activation_folder", "read_folder"]

MANIFEST_NAME = "activations.json"
FORMAT = "brainprobe.activations"
FORMAT_VERSION = 1
DTYPE = np.dtype("<f4")


def _layer_file(index: int, name: str) -> str:
    # module paths ("features.1") are fine as file names; anything else becomes "_"
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.npy"


def is_activation_folder(path) -> bool:
    """True when ``path`` is a folder holding an activations manifest."""
    return (Path(path) / MANIFEST_NAME).is_file()


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise MissingFileError(f"{folder}: no {MANIFEST_NAME}; not a folder written by extract(..., out=...) "
                               "(or its extraction did not finish)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputFileError(f"{path}: cannot be read as JSON ({error})") from error
    check_format(manifest, path, FORMAT, FORMAT_VERSION)
    for field, kind in (("n_images", int), ("layers", list), ("dtype", str)):
        if not isinstance(manifest.get(field), kind):
            raise InputFileError(f"{path}: field {field!r}: expected {kind.__name__}, found "
                                 f"{type(manifest.get(field)).__name__}")
    return manifest


def _listed_files(manifest: dict) -> set[str]:
    return {str(layer.get("file")) for layer in manifest["layers"] if isinstance(layer, dict)}


def check_output_folder(out, overwrite: bool) -> Path:
    """Refuse, before any work, an output folder extraction must not replace.

    A new path or an empty folder is fine. A folder of activations written before is replaced
    only with ``overwrite``. A folder holding anything else (a user's files, a file at that path)
    is never replaced: brainprobe replaces only what it wrote.

    Returns
    -------
    Path
        ``out``, with ``~`` expanded and links resolved (the folder is renamed into place there).
    """
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out {out}: is a file; expected a folder for the activations (one .npy per layer)")
    if not out.is_dir():
        return out
    present = sorted(p.name for p in out.iterdir())
    if not present:
        return out
    if MANIFEST_NAME not in present:
        raise FileExistsError(f"out {out}: holds files brainprobe did not write ({', '.join(present[:5])}"
                              f"{', ...' if len(present) > 5 else ''}); choose a new or empty folder")
    foreign = sorted(set(present) - _listed_files(_read_manifest(out)) - {MANIFEST_NAME})
    if foreign:
        raise FileExistsError(f"out {out}: holds activations and also files they do not list ({', '.join(foreign[:5])}); "
                              "brainprobe replaces only what it wrote: choose a new or empty folder")
    if not overwrite:
        raise FileExistsError(f"out {out}: holds activations already; pass overwrite=True to replace them")
    return out


class LayerFolderWriter:
    """Append each batch's layer outputs to one ``.npy`` file per layer in a hidden folder, then
    rename the folder into place (`commit`) or remove it (`abort`).

    Parameters
    ----------
    out : path
        The final folder, already checked by `check_output_folder`.
    n_images : int
        Rows each file will hold (written into its header before the first batch).
    """

    def __init__(self, out: Path, n_images: int, overwrite: bool):
        self.out, self.n_images, self.overwrite = Path(out), int(n_images), overwrite
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.partial-"))
        self.files: dict[str, dict] = {}
        self._handles: dict[str, object] = {}
        self.rows = 0

    def append(self, outputs: dict[str, np.ndarray], shapes: dict[str, tuple]) -> None:
        """Write one batch: ``{layer: float32 array (batch, n_units)}``, in the order of the first batch."""
        if not self._handles:
            for index, (name, values) in enumerate(outputs.items()):
                file = _layer_file(index, name)
                handle = open(self.folder / file, "wb")
                self._handles[name] = handle
                self.files[name] = {"name": name, "file": file, "n_units": int(values.shape[1]),
                                    "shape": [int(s) for s in shapes[name]]}
                # the header states the final shape; rows follow in C order, so appending is writing
                np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(DTYPE),
                                                              "fortran_order": False,
                                                              "shape": (self.n_images, int(values.shape[1]))})
        n_rows = None
        for name, values in outputs.items():
            expected = self.files[name]["n_units"]
            if values.ndim != 2 or values.shape[1] != expected:
                raise RuntimeError(f"layer {name!r}: a batch has shape {values.shape}, the first had {expected} units")
            n_rows = len(values)
            self._handles[name].write(np.ascontiguousarray(values, dtype=DTYPE))  # its buffer: no bytes copy
        self.rows += n_rows or 0

    def commit(self, manifest: dict) -> Path:
        """Check every file is whole, add the manifest and rename the folder to ``out``."""
        if self.rows != self.n_images:
            raise RuntimeError(f"extraction wrote {self.rows} rows, expected {self.n_images}")
        for name, handle in self._handles.items():
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it visible
            handle.close()
            path = self.folder / self.files[name]["file"]
            with open(path, "rb") as check:
                np.lib.format.read_magic(check)
                np.lib.format.read_array_header_1_0(check)
                offset = check.tell()
            expected = offset + self.n_images * self.files[name]["n_units"] * DTYPE.itemsize
            if path.stat().st_size != expected:
                raise RuntimeError(f"{path}: {path.stat().st_size} bytes written, expected {expected}")
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "dtype": DTYPE.name, "n_images": self.n_images,
                    **manifest, "layers": list(self.files.values())}
        (self.folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.folder, 0o777 & ~umask)  # mkdtemp made it private to its owner
        self._move_into_place()
        return self.out

    def _move_into_place(self) -> None:
        # checked again: the folder may have changed while the network ran
        check_output_folder(self.out, self.overwrite)
        if not self.out.exists() or not any(self.out.iterdir()):
            os.replace(self.folder, self.out)  # rename(2) replaces an empty folder in one step
            return
        # earlier activations (overwrite=True): set them aside, put the new ones in, then delete the
        # old files one by one (never a tree: only what their manifest lists)
        old = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.old-"))
        os.replace(self.out, old)
        try:
            os.replace(self.folder, self.out)
        except BaseException:
            os.replace(old, self.out)  # the earlier activations go back where they were
            raise
        for file in (*_listed_files(_read_manifest(old)), MANIFEST_NAME):
            (old / file).unlink(missing_ok=True)
        try:
            old.rmdir()
        except OSError:
            pass  # something appeared there meanwhile: leave it rather than delete it

    def abort(self) -> None:
        """Close and remove the hidden folder (it holds only this writer's files)."""
        for handle in self._handles.values():
            handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def read_folder(folder) -> tuple[dict[str, np.memmap], dict]:
    """The layers of an activations folder as read-only memory maps, and its manifest.

    Every file is checked against the manifest (dtype, rows, units) before it is returned.

    Raises
    ------
    MissingFileError, InputFileError
        Naming the folder or file and the field that does not match.
    """
    folder = Path(folder)
    manifest = _read_manifest(folder)
    n_images = manifest["n_images"]
    ids = manifest.get("image_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != n_images):
        found = len(ids) if isinstance(ids, list) else type(ids).__name__
        raise InputFileError(f"{folder / MANIFEST_NAME}: field 'image_ids': expected {n_images} ids, found {found}")
    arrays = {}
    for entry in manifest["layers"]:
        if not isinstance(entry, dict) or not {"name", "file", "n_units"} <= set(entry):
            raise InputFileError(f"{folder / MANIFEST_NAME}: field 'layers': expected entries with name, file and "
                                 f"n_units, found {entry!r}")
        path = folder / str(entry["file"])
        if Path(entry["file"]).name != entry["file"]:
            raise InputFileError(f"{folder / MANIFEST_NAME}: layer {entry['name']!r}: file {entry['file']!r} is not "
                                 "a file name inside the folder")
        if not path.is_file():
            raise MissingFileError(f"{path}: file not found (listed for layer {entry['name']!r} in {MANIFEST_NAME})")
        try:
            values = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputFileError(f"{path}: cannot be read as a .npy array ({error})") from error
        expected = (n_images, int(entry["n_units"]))
        if values.dtype != np.dtype(manifest["dtype"]) or values.shape != expected:
            raise InputFileError(f"{path}: expected {manifest['dtype']} {expected} (from {MANIFEST_NAME}), "
                                 f"found {values.dtype} {values.shape}")
        arrays[str(entry["name"])] = values
    return arrays, manifest
