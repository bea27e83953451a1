"""Representational dissimilarity matrices, batched over many pattern sets."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._device import resolve_device
from .._memory import release_mapped

__all__ = ["RDM_METRICS", "rdm", "layer_rdm", "square_rdm", "condensed_rdm", "n_items_from_condensed"]

RDM_METRICS = ("correlation", "cosine", "euclidean", "squared_euclidean", "crossnobis")


def n_items_from_condensed(n_pairs: int) -> int:
    """The n with n (n - 1) / 2 == n_pairs; an error if there is none."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs:
        raise ValueError(f"{n_pairs} entries is not a condensed RDM (n (n - 1) / 2 for some n)")
    return n


def square_rdm(condensed: np.ndarray) -> np.ndarray:
    """Condensed RDM(s) (..., n_pairs) to square form (..., n, n) with a zero diagonal."""
    condensed = np.asarray(condensed)
    n = n_items_from_condensed(condensed.shape[-1])
    rows, cols = np.triu_indices(n, 1)
    square = np.zeros(condensed.shape[:-1] + (n, n), dtype=condensed.dtype)
    square[..., rows, cols] = condensed
    square[..., cols, rows] = condensed
    return square


def condensed_rdm(square: np.ndarray) -> np.ndarray:
    """Upper triangle (row-major, i < j, as scipy's ``squareform``) of square RDM(s)."""
    square = np.asarray(square)
    rows, cols = np.triu_indices(square.shape[-1], 1)
    return square[..., rows, cols]


def _as_batch(patterns, device, dtype) -> tuple[torch.Tensor, bool]:
    with warnings.catch_warnings():
        # read-only memory maps (activations streamed to disk) are only read here, never written
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        tensor = torch.as_tensor(patterns).to(device=device, dtype=dtype)
    if tensor.ndim not in (2, 3):
        raise ValueError(f"patterns: expected (n_images, n_units) or (n_sets, n_images, n_units), found {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("patterns: contain NaN or infinite values")
    single = tensor.ndim == 2
    return (tensor.unsqueeze(0) if single else tensor), single


def _upper(square: torch.Tensor) -> torch.Tensor:
    n = square.shape[-1]
    if n > _ROWWISE_UPPER:  # row by row: the (2, n_pairs) index pairs of 10,000 images are 800 MB
        return torch.cat([square[..., i, i + 1:] for i in range(n - 1)], dim=-1)
    rows, cols = torch.triu_indices(n, n, 1, device=square.device)
    return square[..., rows, cols]


_ROWWISE_UPPER = 2048
# a layer's float64 copy larger than this many values is read a block of units at a time (`layer_rdm`)
LAYER_BLOCK_VALUES = 2**27


def _unit_blocks(n_images: int, n_units: int) -> list[slice]:
    chunk = max(1, min(n_units, LAYER_BLOCK_VALUES // max(1, n_images)))
    return [slice(start, start + chunk) for start in range(0, n_units, chunk)]


def layer_rdm(units, metric: str = "correlation", rows=None) -> np.ndarray:
    """`rdm` of a wide layer (a memory map, say), read a block of units at a time.

    A layer whose float64 copy has at most ``LAYER_BLOCK_VALUES`` values (1 GiB) is `rdm` of it,
    bit for bit. A wider one (conv2 of AlexNet for 10,000 images: 1.4 billion values, 11 GB as
    float64, held three times by `rdm`) sums the Gram matrix over blocks of units of at most that
    size, float64, on the CPU; the blocks follow from the shape, never the machine, so the result
    is the same everywhere (it differs from `rdm`'s by rounding only).

    Parameters
    ----------
    units : array (n_all, n_units)
    metric : {"correlation", "cosine", "euclidean", "squared_euclidean"}
    rows : int array (n_images,), optional
        The images (rows of ``units``) in the RDM's order; default all, in order.

    Returns
    -------
    array (n_pairs,)
    """
    rows = np.arange(units.shape[0]) if rows is None else np.asarray(rows)
    n_images, n_units = len(rows), units.shape[1]
    if n_images * n_units <= LAYER_BLOCK_VALUES:
        return rdm(np.asarray(units)[rows], metric)
    if metric not in ("correlation", "cosine", "euclidean", "squared_euclidean"):
        raise ValueError(f"metric: expected correlation, cosine, euclidean or squared_euclidean for a layer read in "
                         f"blocks, found {metric!r}")
    blocks = _unit_blocks(n_images, n_units)

    def block_of(b: slice) -> np.ndarray:  # float64 copy of the rows' block (a memory map is read here only)
        block = np.asarray(units[:, b][rows], np.float64)
        release_mapped(units)  # the pages just read: a memory-mapped layer is never held whole
        if not np.isfinite(block).all():
            raise ValueError("patterns: contain NaN or infinite values")
        return block

    top, sums = 0.0, np.zeros(n_images)
    for b in blocks:  # one pass for the largest magnitude and the row sums
        block = block_of(b)
        top = max(top, float(np.abs(block).max()))
        sums += block.sum(axis=1)
        del block
    # patterns far from 1 in magnitude would overflow the sums of squares: scaled near 1 (as `rdm`)
    scale = top if top > 1e30 or 0 < top < 1e-30 else 1.0
    means = sums / scale / n_units if metric == "correlation" else np.zeros(n_images)
    squared_norms = np.zeros(n_images)
    gram = np.zeros((n_images, n_images))
    for b in blocks:
        block = block_of(b)
        if scale != 1.0:
            block /= scale
        block -= means[:, None]
        gram += block @ block.T
        block *= block
        squared_norms += block.sum(axis=1)
        del block  # one block held at a time
    if metric in ("correlation", "cosine"):
        norms = np.sqrt(squared_norms)
        if (norms == 0).any():
            raise ValueError(f"patterns: an image has a constant pattern; its {metric} distance is undefined")
        gram /= norms[:, None]
        gram /= norms[None, :]
        np.subtract(1.0, gram, out=gram)
    else:
        gram *= -2.0
        gram += squared_norms[:, None]
        gram += squared_norms[None, :]
        np.clip(gram, 0, None, out=gram)
        if metric == "euclidean":
            np.sqrt(gram, out=gram)
            gram *= scale
        else:
            gram *= scale * scale / n_units
    return _upper(torch.from_numpy(gram)).numpy()


def _gram_distances(x: torch.Tensor, metric: str) -> torch.Tensor:
    # patterns far from 1 in magnitude (1e200) would overflow the sums of squares: compute on
    # patterns scaled near 1, then put the scale back (correlation and cosine ignore it)
    scale = x.abs().amax(dim=(-2, -1), keepdim=True) if x.numel() else None
    if scale is not None and bool(((scale > 1e30) | ((scale < 1e-30) & (scale > 0))).any()):
        distances = _gram_distances(x / scale.clamp_min(torch.finfo(x.dtype).tiny), metric)
        if metric in ("correlation", "cosine"):
            return distances
        factor = scale[..., 0] if metric == "euclidean" else scale[..., 0] ** 2
        distances = distances * factor[..., None]
        if not bool(torch.isfinite(distances).all()):
            raise ValueError(f"patterns: values up to {float(scale.max()):.3g} give {metric} distances beyond the "
                             "floating-point range; divide the patterns by a constant first")
        return distances
    if metric in ("correlation", "cosine"):
        if metric == "correlation":
            x = x - x.mean(dim=-1, keepdim=True)
        norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError(f"patterns: an image has a constant pattern; its {metric} distance is undefined")
        x = x / norms
        return 1.0 - x @ x.transpose(-1, -2)
    squared_norms = (x * x).sum(dim=-1)
    squared = (squared_norms[..., :, None] + squared_norms[..., None, :] - 2.0 * x @ x.transpose(-1, -2)).clamp_min(0)
    if metric == "euclidean":
        return squared.sqrt()
    return squared / x.shape[-1]  # squared_euclidean: mean over units, as rsatoolbox's calc_rdm "euclidean"


def _crossnobis(x: torch.Tensor, runs, conditions, noise) -> tuple[torch.Tensor, np.ndarray]:
    runs = np.asarray(runs)
    conditions = np.asarray(conditions)
    n_trials = x.shape[-2]
    if len(runs) != n_trials or len(conditions) != n_trials:
        raise ValueError(f"runs and conditions: expected {n_trials} labels each (one per row of patterns), "
                         f"found {len(runs)} and {len(conditions)}")
    run_labels = np.unique(runs)
    condition_labels = np.unique(conditions)
    if len(run_labels) < 2:
        raise ValueError("runs: crossnobis needs at least two runs (independent partitions)")
    for run in run_labels:
        absent = np.setdiff1d(condition_labels, conditions[runs == run])
        if len(absent):
            raise ValueError(f"run {run!r} lacks conditions {absent[:5].tolist()}; every condition must appear in every run")
    n_units = x.shape[-1]
    precision = None
    if noise is not None:
        precision = torch.as_tensor(noise, dtype=x.dtype, device=x.device)
        if precision.shape != (n_units, n_units):
            raise ValueError(f"noise: expected a ({n_units}, {n_units}) precision matrix, found {tuple(precision.shape)}")

    def condition_means(mask: np.ndarray) -> torch.Tensor:
        # (n_sets, n_conditions, n_units): mean over the selected trials of each condition
        onehot = (conditions[mask][None, :] == condition_labels[:, None]).astype(float)
        weights = torch.as_tensor(onehot / onehot.sum(axis=1, keepdims=True), dtype=x.dtype, device=x.device)
        return weights @ x[..., torch.as_tensor(np.flatnonzero(mask), device=x.device), :]

    total = 0
    for run in run_labels:
        test = condition_means(runs == run)
        train = condition_means(runs != run)
        kernel = (train @ precision if precision is not None else train) @ test.transpose(-1, -2)
        diagonal = torch.diagonal(kernel, dim1=-2, dim2=-1)
        total = total + (diagonal[..., :, None] + diagonal[..., None, :] - kernel - kernel.transpose(-1, -2))
    return total / len(run_labels) / n_units, condition_labels


def rdm(patterns, metric: str = "correlation", *, runs=None, conditions=None, noise=None,
        device=None, dtype=torch.float64) -> np.ndarray:
    """Condensed representational dissimilarity matrix of image patterns.

    Parameters
    ----------
    patterns : array (n_images, n_units) or (n_sets, n_images, n_units)
        One row per image (per trial for ``crossnobis``); a leading axis computes many RDMs at
        once (layers, ROIs, bootstrap samples) in one batched matrix product.
    metric : {"correlation", "cosine", "euclidean", "squared_euclidean", "crossnobis"}
        ``correlation``: 1 - Pearson r between image patterns (rsatoolbox's ``correlation``).
        ``euclidean``: Euclidean distance (scipy's ``pdist``). ``squared_euclidean``: squared
        Euclidean distance divided by n_units (rsatoolbox's ``euclidean``). ``crossnobis``:
        leave-one-run-out cross-validated squared Mahalanobis distance divided by n_units
        (rsatoolbox's ``crossnobis``); needs ``runs`` and ``conditions``; ``noise`` is the
        precision matrix (default identity).
    runs, conditions : array (n_trials,), crossnobis only
        Run (partition) and condition labels of each row. The RDM's rows are the sorted unique
        conditions.
    device : str or torch.device, optional
        Default CUDA when available, else CPU.
    dtype : torch.dtype
        float64 by default; float32 halves memory for bootstraps on large layers.

    Returns
    -------
    array (n_pairs,) or (n_sets, n_pairs)
        Upper triangle, row-major (i < j), as scipy's ``squareform``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.rsa import rdm
    >>> rdm(np.random.default_rng(0).normal(size=(40, 500))).shape
    (780,)
    """
    if metric not in RDM_METRICS:
        raise ValueError(f"metric: expected one of {RDM_METRICS}, found {metric!r}")
    x, single = _as_batch(patterns, resolve_device(device), dtype)
    if x.shape[-2] < 2:
        raise ValueError(f"patterns: need at least 2 images for an RDM, found {x.shape[-2]}")
    if metric == "crossnobis":
        if runs is None or conditions is None:
            raise ValueError("metric='crossnobis' needs runs= and conditions= (one label per row)")
        square, _ = _crossnobis(x, runs, conditions, noise)
    else:
        square = _gram_distances(x, metric)
    condensed = _upper(square).cpu().numpy()
    return condensed[0] if single else condensed
