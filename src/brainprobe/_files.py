"""Files written whole or not at all, shared by every subpackage that writes results."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_atomically"]


def replace_atomically(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary)`` on a sibling temporary file, then rename it to ``path``.

    A reader (or a rerun after a crash) sees the old file or the complete new one, never a
    part. The temporary file keeps ``path``'s suffix (``np.savez`` and ``sp.save_npz`` add
    ``.npz`` to names without it) and the file gets the permissions the umask gives new files
    (``mkstemp`` would leave it readable by its owner only).

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
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
