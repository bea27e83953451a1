"""Files written whole or not at all, and a record of which files brainprobe wrote.

Every subpackage that writes results goes through here: `replace_atomically` for one file,
and the manifest functions (`written_files`, `record_written`, `remove_written`) so that an
``overwrite`` replaces only what brainprobe wrote before, never a file of the user's.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

# ``pd.read_csv`` keyword arguments that read floats back exactly as written: pandas 2's default
# parser may change the last digit (2.2.0 reads 0.46625010231040764 as 0.4662501023104076), so a
# table read from the cache would differ from the one computed; pandas 3 parses exactly and
# deprecates the argument
EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}

__all__ = ["MANIFEST", "replace_atomically", "written_files", "record_written", "remove_written",
           "foreign_files", "check_outside", "file_sha256", "read_hash_memo", "write_hash_memo", "EXACT_FLOATS"]

# the list of files brainprobe wrote into an output folder (paths relative to it)
MANIFEST = ".brainprobe-manifest.json"


def replace_atomically(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary)`` on a sibling temporary file, then rename it to ``path``.

    A reader (or a rerun after a crash) sees the old file or the complete new one, never a
    part. The temporary file keeps ``path``'s suffix (``np.savez`` and ``sp.save_npz`` add
    ``.npz`` to names without it) and the file gets the permissions the umask gives new files
    (``mkstemp`` would leave it readable by its owner only). A writer that adds a suffix to a
    temporary name without one is an error, and what it left is removed.

    Parameters
    ----------
    path : path
        The file to (re)place; its folder is created if needed.
    write : callable
        Writes the whole content to the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(handle)
    temporary = Path(name)
    strays = [temporary.with_name(temporary.name + extra) for extra in (".npz", ".npy")]
    try:
        write(temporary)
        if any(p.exists() for p in strays):
            raise ValueError(f"{path}: the writer added a suffix to the temporary file; give the path its "
                             "suffix (e.g. '.npz')")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        for stray in strays:
            stray.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None and not error.filename:
            raise type(error)(error.errno, error.strerror, str(path)) from None  # say which file (full disk ...)
        raise
    return path


def written_files(folder) -> set[str]:
    """The files (relative posix paths) that brainprobe's manifest in ``folder`` lists; empty if none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return set()
    try:
        listed = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError, OSError):
        raise ValueError(f"{path}: not a brainprobe manifest (expected JSON with a 'files' list); "
                         "remove it or choose another output folder") from None
    return {str(p) for p in listed if isinstance(p, str) and _inside(p)}


def _inside(relative: str) -> bool:
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts


def record_written(folder, files: Iterable[str], *, replace: bool = False) -> Path:
    """Add ``files`` (relative to ``folder``) to the folder's manifest, or make them the whole list."""
    folder = Path(folder)
    listed = set(files) | (set() if replace else written_files(folder))
    text = json.dumps({"written_by": "brainprobe", "files": sorted(listed)}, indent=1)
    return replace_atomically(folder / MANIFEST, lambda temporary: temporary.write_text(text))


def remove_written(folder, *, keep: Iterable[str] = ()) -> list[str]:
    """Delete the files the manifest lists (except ``keep``) and folders they leave empty.

    Nothing that the manifest does not list is touched. Returns the removed paths.
    """
    folder = Path(folder)
    keep = set(keep)
    removed = []
    for relative in sorted(written_files(folder) - keep):
        path = folder / relative
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(relative)
            parent = path.parent
            while parent != folder and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
    record_written(folder, written_files(folder) & keep, replace=True)
    return removed


def foreign_files(folder, files: Iterable[str]) -> list[str]:
    """Those of ``files`` (relative to ``folder``) that exist there but brainprobe did not write."""
    folder = Path(folder)
    listed = written_files(folder)
    return sorted(f for f in files if f not in listed and (folder / f).exists())


def check_outside(output, inputs: dict[str, object], image_folders: dict[str, object] | None = None) -> None:
    """Refuse an output folder that is, or contains, one of the inputs (``{name: path}``), or
    that lies inside an image folder read recursively (its images would be read back as inputs).

    Raises
    ------
    ValueError
        Naming the input and the output folder.
    """
    out = Path(output).expanduser().resolve()
    for name, value in inputs.items():
        if not value:
            continue
        source = Path(value).expanduser().resolve()
        if source == out or out in source.parents:
            raise ValueError(f"{name} {value}: inside the output folder {output}; brainprobe does not write where "
                             "its inputs are: choose another output folder")
    for name, value in (image_folders or {}).items():
        if value and Path(value).is_dir() and Path(value).expanduser().resolve() in out.parents:
            raise ValueError(f"output {output}: inside the image folder {name} {value}, whose sub-folders are read "
                             "as images too; choose an output folder outside it")


_HASHES: dict[tuple, str] = {}


def file_sha256(path, memo: dict | None = None) -> str:
    """SHA-256 of a file's bytes, remembered for as long as its size and modification time stay.

    Parameters
    ----------
    path : path
    memo : dict, optional
        A record kept between runs (``{absolute path: [size, mtime_ns, inode, sha256]}``, see
        `read_hash_memo`): a file whose size, modification time and inode match is not read
        again; new hashes are added to it.
    """
    path = Path(path)
    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    key = (str(path.resolve()), *stamp)
    if key not in _HASHES:
        remembered = memo.get(key[0]) if memo is not None else None
        if isinstance(remembered, list) and remembered[:3] == stamp and len(remembered) == 4:
            _HASHES[key] = remembered[3]
        else:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            _HASHES[key] = digest.hexdigest()
    if memo is not None:
        memo[key[0]] = [*stamp, _HASHES[key]]
    return _HASHES[key]


def read_hash_memo(path) -> dict:
    """The file-hash record at ``path`` (empty when missing or unreadable)."""
    try:
        memo = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def write_hash_memo(path, memo: dict) -> None:
    """Keep the file-hash record for the next run (atomically)."""
    text = json.dumps(memo)
    replace_atomically(path, lambda temporary: temporary.write_text(text))
