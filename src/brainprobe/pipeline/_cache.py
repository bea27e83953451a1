"""Step cache: each step's output lives in a folder named by a hash of its inputs.

A step's key hashes its name, the configuration it reads, the keys of the steps it consumes and
the package version, so changing one parameter changes the keys of that step and of what
depends on it, and nothing else. A folder counts only once its ``complete.json`` is written
(last, atomically): a run killed mid-step leaves no half result that a rerun would trust.
Everything is stored as CSV, JSON and ``.npz`` without pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import file_sha256, replace_atomically
from .._npz import read_npz, write_npz

__all__ = ["StepCache", "atomic_write", "read_arrays", "write_arrays"]


def atomic_write(path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` whole or not at all (a temporary sibling and a rename)."""
    content = data.encode() if isinstance(data, str) else data
    return replace_atomically(path, lambda temporary: temporary.write_bytes(content))


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Arrays to one ``.npz`` (the package's one layout, `brainprobe._npz`), atomically."""
    write_npz(path, arrays)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` written by `write_arrays` (no pickles)."""
    return read_npz(path)


class StepCache:
    """Folders of finished steps under ``root``, keyed by a hash of their inputs.

    Parameters
    ----------
    root : path
        The cache folder (a study keeps it in ``<output>/.cache``).
    salt : str
        Mixed into every key (the package version: a new release recomputes).
    """

    def __init__(self, root, salt: str = ""):
        self.root = Path(root)
        self.salt = salt

    def key(self, step: str, *parts) -> str:
        text = json.dumps([self.salt, step, *parts], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def folder(self, step: str, key: str) -> Path:
        return self.root / step / key

    def is_complete(self, step: str, key: str) -> bool:
        return (self.folder(step, key) / "complete.json").is_file()

    def verify(self, step: str, key: str) -> str | None:
        """None when the step's folder holds exactly the files its ``complete.json`` lists, with
        the checksums recorded there; else what is wrong (a file edited, truncated, missing)."""
        folder = self.folder(step, key)
        try:
            listed = json.loads((folder / "complete.json").read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return "complete.json lists no checksums"
        if not isinstance(listed, dict) or not listed:
            return "complete.json lists no checksums"
        for name, checksum in listed.items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if file_sha256(path) != checksum:
                return f"{name} changed since it was written"
        return None

    def run(self, step: str, key: str, compute: Callable[[], object], save: Callable[[object, Path], None],
            load: Callable[[Path], object], *, label: str = "") -> tuple[object, dict]:
        """Load the step's output if a complete, intact folder exists, else compute, save and mark it.

        A cached folder is used only when every file in it has the checksum recorded in its
        ``complete.json``; an edited, truncated or unreadable one is computed again (with a warning).

        Returns
        -------
        value, record
            ``record`` is one row of the step log: ``step``, ``label``, ``key``, ``status``
            (``"cached"`` or ``"computed"``), ``seconds``.
        """
        folder = self.folder(step, key)
        start = time.perf_counter()
        value, status = None, None
        if self.is_complete(step, key):
            problem = self.verify(step, key)
            if problem is None:
                try:
                    value, status = load(folder), "cached"
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pd.errors.ParserError) as error:
                    problem = f"cannot be read ({type(error).__name__}: {error})"
            if problem is not None:
                warnings.warn(f"cache {folder}: {problem}; computing the step again", stacklevel=2)
        if status is None:
            if folder.exists():  # an interrupted or damaged attempt: start this step again from scratch
                shutil.rmtree(folder)
            staging = folder.with_name(f".{key}.partial-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                value = compute()
                save(value, staging)
                checksums = {p.relative_to(staging).as_posix(): file_sha256(p)
                             for p in sorted(staging.rglob("*")) if p.is_file()}
                atomic_write(staging / "complete.json",
                             json.dumps({"step": step, "label": label, "key": key, "files": checksums}))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if folder.exists():  # another worker finished the same step meanwhile: keep theirs
                shutil.rmtree(staging)
            else:
                os.replace(staging, folder)
            status = "computed"
        record = {"step": step, "label": label, "key": key, "status": status,
                  "seconds": round(time.perf_counter() - start, 3)}
        return value, record
