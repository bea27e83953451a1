"""Kernel decompositions kept on disk and read by every ridge fit on the same features.

Tuned ridge on thousands of images costs one pass over the layer for the Gram matrix and one
eigendecomposition per fit (n_images^3): at 10,000 images about 3 min for the full kernel and
1.5 min per cross-validation fold on one core, and a pass over a 10^5-unit layer takes minutes
more. None of that depends on the responses. Subjects who saw the same images, the full fit and
its cross-validation folds, and a rerun with other ROIs or another vertex selection all
decompose the same kernels. Inside ``with kernel_store(folder):`` each is computed once, written
to ``folder`` and read back (memory-mapped) by every later fit, so the results are the same
numbers as computing them again.

An entry is keyed by a SHA-256 digest of the feature values (a few seconds for a 5 GB layer),
the centring, the device type and, for a fold, its training and test images: a changed
activation or a different fold never reads another's entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
import warnings
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from .._files import file_sha256
from .._lock import process_alive

__all__ = ["KernelStore", "kernel_store", "active_kernel_store", "features_digest"]

_ACTIVE: ContextVar[KernelStore | None] = ContextVar("brainprobe_kernel_store", default=None)

_DIGEST_BLOCK_BYTES = 2**28  # rows hashed at once: a strided view is copied one block at a time


def features_digest(X: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and values in C order, read a block of rows at a time."""
    X = np.asarray(X)
    digest = hashlib.sha256(f"{X.dtype.str}{X.shape}".encode())
    rows = max(1, _DIGEST_BLOCK_BYTES // max(X[:1].nbytes, 1))
    for start in range(0, len(X), rows):
        digest.update(np.ascontiguousarray(X[start:start + rows]))
    return digest.hexdigest()


class KernelStore:
    """A folder of named float64 arrays, one subfolder per entry, written once and read as memory
    maps.

    Each entry is written to a staging folder and renamed into place, so a crash or two processes
    writing the same entry leave no partial entry; its ``checksums.json`` (SHA-256 of each file)
    is checked on every read, so a damaged or edited file is computed again, never used. A folder
    that cannot be written to is still read: what is missing is computed without being stored.

    Parameters
    ----------
    folder : str or Path
        Made with its parents on the first write.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.encoding import KernelStore
    >>> store = KernelStore("kernels")  # doctest: +SKIP
    >>> store.load_or_compute("gram", "a1b2", lambda: {"gram": np.eye(3)})["gram"].shape  # doctest: +SKIP
    (3, 3)
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._warned_unwritable = False

    def __repr__(self) -> str:
        return f"KernelStore({str(self.folder)!r})"

    def entry(self, kind: str, key: str) -> Path:
        return self.folder / f"{kind}-{key}"

    def load(self, kind: str, key: str, names=None) -> dict[str, np.ndarray] | None:
        """The entry's arrays (read-only memory maps), or None when it was never written. An entry
        whose files do not match its checksums, or that lacks one of ``names``, is removed with a
        warning (and then computed again by `load_or_compute`)."""
        place = self.entry(kind, key)
        if not place.is_dir():
            return None
        try:
            found = _verified_arrays(place)
            missing = sorted(set(names or ()) - set(found))
            if missing:
                raise ValueError(f"no {', '.join(name + '.npy' for name in missing)}")
        except Exception as error:  # noqa: BLE001 - any unreadable entry is computed again, never used
            warnings.warn(f"kernel store entry {place} cannot be used ({type(error).__name__}: {error}); "
                          "it is computed again", stacklevel=3)
            shutil.rmtree(place, ignore_errors=True)
            return None
        return found

    def save(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Write an entry (float64 arrays) unless it exists; a folder that cannot be written to is
        said once, and the computed arrays are used without being stored."""
        place = self.entry(kind, key)
        if place.is_dir():
            return
        staging = self.folder / f"{_STAGING}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            staging.mkdir(parents=True)
            checksums = {}
            for name, values in arrays.items():
                np.save(staging / f"{name}.npy", np.asarray(values, dtype=np.float64), allow_pickle=False)
                checksums[f"{name}.npy"] = file_sha256(staging / f"{name}.npy")
            (staging / "checksums.json").write_text(json.dumps(checksums, indent=1))
            os.replace(staging, place)
        except OSError as error:
            if not place.is_dir() and not self._warned_unwritable:  # else: another process's identical entry landed first
                self._warned_unwritable = True
                warnings.warn(f"kernel store {self.folder}: cannot write ({error.strerror or error}); what is "
                              "not stored yet is computed and used without being stored", stacklevel=3)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load_or_compute(self, kind: str, key: str, compute, names=None) -> dict[str, np.ndarray]:
        """The stored entry (which must hold ``names``), or ``compute()`` (a dict of NumPy arrays)
        saved and returned as computed.

        One process computes an entry at a time: subjects fitted at once (local workers, a Dask
        cluster on a shared folder) wait for the first one's entry instead of all decomposing the
        same kernel. The claim is a lock file the computing process touches every
        ``_HEARTBEAT_S``; one left untouched for ``_STALE_S`` (its process died) is taken over."""
        found = self.load(kind, key, names)
        if found is not None:
            return found
        with self._claim(kind, key) as mine:
            if not mine:  # another process wrote it while this one waited
                found = self.load(kind, key, names)
            if found is None:
                found = compute()
                self.save(kind, key, found)
        return found

    @contextlib.contextmanager
    def _claim(self, kind: str, key: str):
        """True while this process holds the entry's lock; False once another process's entry
        landed while waiting. A folder that cannot hold a lock is not waited on (True)."""
        lock = self.folder / f"{_LOCK}{kind}-{key}"
        while True:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                if self.entry(kind, key).is_dir():
                    yield False
                    return
                if _age_s(lock) > _STALE_S:  # its process died: take it over
                    with contextlib.suppress(OSError):
                        lock.unlink()
                else:
                    time.sleep(_POLL_S)
                continue
            except OSError:  # unwritable: computed here, `save` says so
                yield True
                return
            break
        if self.entry(kind, key).is_dir():  # landed between this process's look and its claim
            lock.unlink()
            yield False
            return
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(lock, stop), daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(OSError):
                lock.unlink()

    def remove_abandoned_staging(self) -> None:
        """Remove staging folders left by processes of this host that no longer run (a killed
        write: up to 800 MB each at 10,000 images)."""
        host = socket.gethostname()
        for staging in self.folder.glob(f"{_STAGING}{host}-*"):
            pid = staging.name[len(_STAGING) + len(host) + 1:].split("-")[0]
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(staging, ignore_errors=True)


_STAGING = ".staging-"
_LOCK = ".computing-"
_HEARTBEAT_S = 10.0  # a computing process touches its lock this often (an eigh of 10,000 images: minutes)
_STALE_S = 60.0      # a lock untouched this long belongs to a process that died
_POLL_S = 0.5


def _heartbeat(lock: Path, stop: threading.Event) -> None:
    while not stop.wait(_HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(lock)


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:  # gone meanwhile: not stale, look again
        return 0.0


def _verified_arrays(place: Path) -> dict[str, np.ndarray]:
    checksums = json.loads((place / "checksums.json").read_text())
    found = {}
    for file, expected in checksums.items():
        if file_sha256(place / file) != expected:
            raise ValueError(f"{file} does not match its checksum")
        values = np.load(place / file, mmap_mode="r", allow_pickle=False)
        if values.dtype != np.float64:
            raise ValueError(f"{file} holds {values.dtype}, not float64")
        found[Path(file).stem] = values
    return found


@contextlib.contextmanager
def kernel_store(folder):
    """Share kernel decompositions through ``folder`` inside a ``with`` block.

    Every `RidgeCVEncoder` fit and ``cross_val_predict`` run by this thread in the block reads a
    Gram matrix, eigendecomposition or fold decomposition of the same features from ``folder``
    when one was written before, and writes the ones it computes; fits that need an entry another
    process is computing wait for it (see `KernelStore.load_or_compute`). The block belongs to the thread
    (and asyncio task) that enters it: threads started inside it need a block of their own;
    processes (the study's workers) enter their own. Disk, in float64: about 8 x n^2 bytes per
    matrix, n the images (the Gram matrix, the full kernel's eigenvectors, and per fold its
    eigenvectors and test-by-train kernel, together about 6 x 8 n^2 with 5 folds): 800 MB per
    matrix at 10,000 images, about 5 GB per layer. A fit with more images than units goes
    through the (units x units) covariance, cheaply, and stores nothing; ``cross_val_predict``
    stores whenever a fold has fewer training images than units.

    Parameters
    ----------
    folder : str or Path
        Made with its parents on the first write (``~`` is expanded); entering the block writes
        nothing. Staging folders left there by killed processes of this host are removed.

    Examples
    --------
    >>> from brainprobe.encoding import RidgeCVEncoder, kernel_store
    >>> with kernel_store("kernels"):  # doctest: +SKIP
    ...     for Y in subjects_responses:  # the same images: one decomposition for all
    ...         RidgeCVEncoder().fit(X, Y)
    """
    if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
        raise ValueError(f"kernel_store: expected a folder path, found {folder!r}")
    folder = Path(folder).expanduser()
    existing = next(place for place in (folder, *folder.parents) if place.exists())
    if not existing.is_dir():  # the folder itself, or a place on its way, is a file
        raise ValueError(f"kernel_store: cannot use {str(folder)!r} as the folder of kernel decompositions: "
                         f"{str(existing)!r} is a file")
    store = KernelStore(folder)
    store.remove_abandoned_staging()
    token = _ACTIVE.set(store)
    try:
        yield store
    finally:
        _ACTIVE.reset(token)


def active_kernel_store() -> KernelStore | None:
    """The store of the innermost `kernel_store` block, or None outside any."""
    return _ACTIVE.get()
