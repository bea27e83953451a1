"""One writer per output folder: a lock file naming the run that holds it.

Two runs writing into one folder at once would replace each other's finished results without
``--overwrite``; the second run stops instead, with one line that names the holder (process id,
host and start time). A lock left by a process that no longer runs on this host is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

__all__ = ["LOCK", "OutputLockedError", "output_lock"]

LOCK = ".brainprobe-lock"
# a lock file still empty after this long was left by a writer killed between create and write
_EMPTY_GRACE_S = 30.0


class OutputLockedError(FileExistsError):
    """Another brainprobe run holds the output folder."""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (the one check behind every stale-lock and
    abandoned-staging rule). On Windows ``os.kill`` would terminate it: there it always runs."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else (PermissionError)
        return True
    return True


def _holder(path: Path) -> dict | None:
    """What the lock file says (None while it is being written or when it is unreadable)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _stale(path: Path, holder: dict | None) -> bool:
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime > _EMPTY_GRACE_S
        except FileNotFoundError:
            return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() \
        and not process_alive(pid)


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "a run that is starting"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


@contextlib.contextmanager
def output_lock(folder):
    """Hold ``<folder>/.brainprobe-lock`` while the block runs (the folder is created if needed).

    Raises
    ------
    OutputLockedError
        When a live run holds the folder; the message names it and the lock file.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _attempt in range(3):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if _stale(path, holder):
                path.unlink(missing_ok=True)  # its writer is gone: take the folder over
                continue
            raise OutputLockedError(
                f"output {folder} is in use by another brainprobe run ({_describe(holder)}); wait for it to finish, "
                f"or delete {path} if that run is gone") from None
        with os.fdopen(handle, "w") as stream:
            stream.write(json.dumps(record))
        break
    else:
        raise OutputLockedError(f"output {folder}: could not take the lock {path}; another run keeps taking it")
    try:
        yield path
    finally:
        if _holder(path) == record:
            path.unlink(missing_ok=True)
        if created:  # a run that stopped before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
