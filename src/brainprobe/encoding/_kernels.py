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
import os
import shutil
import uuid
import warnings
from contextvars import ContextVar
from pathlib import Path

import numpy as np

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
    """A folder of named arrays, one subfolder per entry, written once and read as memory maps.

    Parameters
    ----------
    folder : str or Path
        Created on the first write. Each entry is written to a staging folder first and renamed
        into place, so a crash or two processes writing the same entry leave no partial entry.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.encoding import RidgeCVEncoder, kernel_store
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 300)); Y = rng.normal(size=(50, 4))
    >>> with kernel_store(folder):  # doctest: +SKIP
    ...     first = RidgeCVEncoder().fit(X, Y[:, :2])   # decomposes X's kernel, writes it
    ...     second = RidgeCVEncoder().fit(X, Y[:, 2:])  # reads it back
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"KernelStore({str(self.folder)!r})"

    def entry(self, kind: str, key: str) -> Path:
        return self.folder / f"{kind}-{key}"

    def load(self, kind: str, key: str, names=None) -> dict[str, np.ndarray] | None:
        """The entry's arrays (read-only memory maps), or None when it was never written. An entry
        that cannot be read, or lacks one of ``names``, is removed with a warning (and then
        computed again by `load_or_compute`): a damaged file never becomes a result."""
        place = self.entry(kind, key)
        if not place.is_dir():
            return None
        try:
            found = {path.stem: np.load(path, mmap_mode="r", allow_pickle=False) for path in sorted(place.glob("*.npy"))}
            missing = sorted(set(names or ()) - set(found))
            if missing:
                raise ValueError(f"no {', '.join(name + '.npy' for name in missing)}")
        except (OSError, ValueError) as error:
            warnings.warn(f"kernel store entry {place} cannot be read ({error}); it is computed again", stacklevel=3)
            shutil.rmtree(place, ignore_errors=True)
            return None
        return found

    def save(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        place = self.entry(kind, key)
        if place.is_dir():
            return
        staging = self.folder / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            for name, values in arrays.items():
                np.save(staging / f"{name}.npy", np.asarray(values), allow_pickle=False)
            os.replace(staging, place)
        except OSError:
            if not place.is_dir():  # not another process's identical entry that landed first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load_or_compute(self, kind: str, key: str, compute, names=None) -> dict[str, np.ndarray]:
        """The stored entry (which must hold ``names``), or ``compute()`` (a dict of NumPy arrays)
        saved and returned as computed."""
        found = self.load(kind, key, names)
        if found is None:
            found = compute()
            self.save(kind, key, found)
        return found


@contextlib.contextmanager
def kernel_store(folder):
    """Share kernel decompositions through ``folder`` inside a ``with`` block.

    Every `RidgeCVEncoder` fit and ``cross_val_predict`` in the block reads a Gram matrix,
    eigendecomposition or fold decomposition of the same features from ``folder`` when one was
    written before, and writes the ones it computes. Disk: about 8 x n_images^2 bytes per kernel
    (the Gram matrix, the full eigenvectors, and per fold its eigenvectors and test-by-train
    kernel): 800 MB each at 10,000 images, about 5 GB per layer with 5 folds. Layers with fewer
    units than images are decomposed from their covariance, cheaply, and store nothing.

    Parameters
    ----------
    folder : str or Path

    Examples
    --------
    >>> from brainprobe.encoding import RidgeCVEncoder, kernel_store
    >>> with kernel_store("kernels"):  # doctest: +SKIP
    ...     for Y in subjects_responses:  # the same images: one decomposition for all
    ...         RidgeCVEncoder().fit(X, Y)
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"kernel_store: cannot use {str(folder)!r} as the folder of kernel decompositions "
                         f"({error.strerror or error})") from None
    token = _ACTIVE.set(KernelStore(folder))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def active_kernel_store() -> KernelStore | None:
    """The store of the innermost `kernel_store` block, or None outside any."""
    return _ACTIVE.get()
