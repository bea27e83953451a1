"""One ``.npz`` layout for the package's arrays and tables: written atomically, read without pickle.

`Activations` and `Responses` save through it (the CLI and the pipeline alike), and so does the
step cache. A table is stored column by column (``<prefix>/<column>``, its order in
``<prefix>/__columns__``): names stay strings ("0001" is not 1), numbers keep their dtype, and
the missing values of a text column are listed in ``<prefix>/<column>/__missing__``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ._errors import InputFileError, MissingFileError
from ._files import replace_atomically

__all__ = ["frame_from_arrays", "frame_to_arrays", "read_npz", "write_npz"]


def write_npz(path, arrays: Mapping[str, np.ndarray], *, overwrite: bool = True) -> Path:
    """Write ``arrays`` to ``path`` whole or not at all; an existing file only with ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")

    def write(temporary):  # through a handle: np.savez writes exactly this file (no added .npz)
        with open(temporary, "wb") as handle:
            np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})

    return replace_atomically(path, write)


def read_npz(path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (pickled arrays refused); errors name the file and what lacks."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputFileError(f"{path}: cannot be read as a .npz file of brainprobe ({error})") from error
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputFileError(f"{path}: lacks {missing}; found {sorted(arrays)[:8]}")
    return arrays


def frame_to_arrays(frame: pd.DataFrame, prefix: str) -> dict[str, np.ndarray]:
    """A table as arrays named ``<prefix>/...`` (no object arrays: nothing needs a pickle)."""
    arrays = {f"{prefix}/__columns__": np.asarray([str(c) for c in frame.columns], dtype=str)}
    for column in frame.columns:
        series = frame[column]
        key = f"{prefix}/{column}"
        if series.dtype.kind in "biufM" and not isinstance(series.dtype, pd.CategoricalDtype):
            arrays[key] = series.to_numpy()
            continue
        missing = series.isna().to_numpy()
        arrays[key] = np.asarray(["" if m else str(v) for v, m in zip(series, missing, strict=True)], dtype=str)
        if missing.any():
            arrays[f"{key}/__missing__"] = missing
    return arrays


def frame_from_arrays(arrays: Mapping[str, np.ndarray], prefix: str) -> pd.DataFrame:
    """The table `frame_to_arrays` stored under ``prefix``."""
    columns = arrays[f"{prefix}/__columns__"].tolist()
    data = {}
    for column in columns:
        values = arrays[f"{prefix}/{column}"]
        if values.dtype.kind == "U":
            values = values.astype(object)
            missing = arrays.get(f"{prefix}/{column}/__missing__")
            if missing is not None:
                values[missing] = None
        data[column] = values
    return pd.DataFrame(data, columns=columns)
