"""Step cache: each step's output lives in a folder named by a hash of its inputs.

A step's key hashes its name, the configuration it reads, the keys of the steps it consumes and
the package version, so changing one parameter changes the keys of that step and of what
depends on it, and nothing else. A folder counts only once its ``complete.json`` is written
(last, atomically): a run killed mid-step leaves no half result that a rerun would trust (its
hidden unfinished folder is removed when the same step runs again).
Everything is stored as CSV, JSON and ``.npz`` without pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import file_sha256, replace_atomically
from .._lock import process_alive
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

    def run(self, step: str, key: str, compute: Callable[..., object], save: Callable[[object, Path], None],
            load: Callable[[Path], object], *, label: str = "", into_folder: bool = False) -> tuple[object, dict]:
        """Load the step's output if a complete, intact folder exists, else compute, save and mark it.

        A cached folder is used only when every file in it has the checksum recorded in its
        ``complete.json``; an edited, truncated or unreadable one is computed again (with a warning).

        With ``into_folder``, ``compute`` is called with the step's unfinished (hidden) folder and
        may write its output there itself, for outputs too large to hold in memory (``save`` then
        writes what it did not); the value returned is then ``load`` of the finished folder, as a
        rerun would load it, so it never refers to the hidden folder's files.

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
            _remove_abandoned(folder.parent, key)
            staging = folder.with_name(_staging_name(key, os.getpid()))
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                value = compute(staging) if into_folder else compute()
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
            if into_folder:
                value = None  # dropped before loading: never held twice
                value = load(folder)
            status = "computed"
        record = {"step": step, "label": label, "key": key, "status": status,
                  "seconds": round(time.perf_counter() - start, 3)}
        return value, record


def _staging_name(key: str, pid: int) -> str:
    # the host in the name: on a cache shared by a cluster, a process id means something only on its host
    return f".{key}.partial-{socket.gethostname()}-{pid}"


def _remove_abandoned(parent: Path, key: str) -> None:
    """Remove unfinished folders of step ``key`` whose process (on this host) is gone.

    A killed run leaves its hidden folder behind (never trusted: it has no place at the key's
    name); streamed activations make that tens of GiB, so a rerun of the same step clears it.
    A folder of another host, or of a process still running, is left alone.
    """
    prefix = f".{key}.partial-{socket.gethostname()}-"
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        pid = path.name[len(prefix):]
        if path.name.startswith(prefix) and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
