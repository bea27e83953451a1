"""Regularized orthogonal matching pursuit (Needell & Vershynin 2009), batched over targets.

How this differs from the published MATLAB code (Needell's ``romp.m``), and why:

- Regularization is exact. ``romp.m`` scans the sorted coordinates in disjoint runs of
  comparable values; here every window a_i .. a_j of the sorted magnitudes with a_j >= a_i / 2 is
  considered (prefix sums of squares), which is the maximal-energy comparable subset the
  algorithm's analysis assumes.
- Stopping: after ``n_nonzero`` iterations, when the support reaches 2 x ``n_nonzero`` atoms, when
  it would reach ``n_samples - 1`` (least squares would then interpolate the training data:
  no generalization), or when the residual is numerically zero. ``romp.m`` stops on the residual
  norm or the support size only.
- The intercept is handled by centring X and y on the training samples; columns are scaled to
  unit norm for selection only (coefficients are returned in the original units); columns with
  zero variance (dead ReLU units) can never be selected.
- All targets are fitted together: one matrix product per iteration for every target, batched
  top-s and windows, batched small least-squares solves, in chunks of targets to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .._device import resolve_device
from .._memory import check_allocation

__all__ = ["romp_single_target", "romp_batched", "RompFit", "STOP_REASONS"]

STOP_REASONS = ("n_iter", "max_atoms", "n_samples", "residual", "no_correlation")


def _regularize(magnitudes: np.ndarray) -> tuple[int, int]:
    """Start and end (inclusive) of the maximal-energy comparable window of descending magnitudes."""
    squares = np.concatenate([[0.0], np.cumsum(magnitudes**2)])
    best, best_window = -1.0, (0, 0)
    for start, value in enumerate(magnitudes):
        end = int(np.sum(magnitudes >= value / 2.0)) - 1  # sorted descending: a prefix qualifies
        energy = squares[end + 1] - squares[start]
        if energy > best:
            best, best_window = energy, (start, end)
    return best_window


def romp_single_target(X, y, n_nonzero: int, *, fit_intercept: bool = True, normalize: bool = True,
                       max_atoms: int | None = None, tol: float = 1e-10):
    """ROMP for one target, written plainly (the reference the batched version is tested against).

    Parameters
    ----------
    X : array (n_samples, n_features)
    y : array (n_samples,)
    n_nonzero : int
        The sparsity level s.

    Returns
    -------
    support : int array (k,), in order of selection
    coef : array (k,), coefficients of the support columns in the original units
    intercept : float
    n_iter : int
    reason : str
    """
    X, y = np.asarray(X, float), np.asarray(y, float)
    n_samples = len(y)
    x_mean = X.mean(axis=0) if fit_intercept else np.zeros(X.shape[1])
    y_mean = y.mean() if fit_intercept else 0.0
    Xc, yc = X - x_mean, y - y_mean
    norms = np.linalg.norm(Xc, axis=0)
    usable = norms > 1e-12 * max(1.0, norms.max(initial=0.0))
    scale = np.where(usable, norms if normalize else 1.0, 1.0)
    Xn = Xc / scale
    cap = min(max_atoms or 2 * n_nonzero, n_samples - 2)
    support: list[int] = []
    coef_n = np.zeros(0)
    residual = yc.copy()
    target_norm = np.linalg.norm(yc)
    reason, n_iter = "n_iter", 0
    for n_iter in range(1, n_nonzero + 1):  # noqa: B007  (n_iter is reported)
        u = Xn.T @ residual
        u[~usable] = 0.0
        u[support] = 0.0
        magnitude = np.abs(u)
        candidates = np.flatnonzero(magnitude > 0)
        if len(candidates) == 0:
            reason, n_iter = "no_correlation", n_iter - 1
            break
        order = candidates[np.argsort(-magnitude[candidates], kind="stable")][:n_nonzero]
        start, end = _regularize(magnitude[order])
        chosen = order[start:end + 1][: cap - len(support)]
        support.extend(chosen.tolist())
        coef_n = np.linalg.lstsq(Xn[:, support], yc, rcond=None)[0]
        residual = yc - Xn[:, support] @ coef_n
        if np.linalg.norm(residual) <= tol * max(target_norm, 1e-300):
            reason = "residual"
            break
        if len(support) >= cap:
            reason = "max_atoms" if cap == (max_atoms or 2 * n_nonzero) else "n_samples"
            break
    support_array = np.asarray(support, dtype=np.int64)
    coef = coef_n / scale[support_array] if len(support) else np.zeros(0)
    intercept = float(y_mean - x_mean[support_array] @ coef) if len(support) else float(y_mean)
    return support_array, coef, intercept, n_iter, reason


@dataclass
class RompFit:
    """Batched ROMP result for n_targets targets."""

    coef: sp.csr_matrix        # (n_targets, n_features)
    intercept: np.ndarray      # (n_targets,)
    support: list              # n_targets int arrays, in order of selection
    n_iter: np.ndarray         # (n_targets,)
    stop_reason: np.ndarray    # (n_targets,) str


def _chunk_size(n_features: int, itemsize: int, budget_bytes: float = 2**28) -> int:
    # the (targets x features) correlation matrix dominates memory
    return int(max(1, min(4096, budget_bytes // max(1, n_features * itemsize))))


def romp_batched(X, Y, n_nonzero: int, *, fit_intercept: bool = True, normalize: bool = True,
                 max_atoms: int | None = None, tol: float = 1e-10, device=None, dtype=torch.float64,
                 chunk_size: int | None = None) -> RompFit:
    """ROMP for every column of ``Y`` at once (see the module docstring for the algorithm).

    Parameters
    ----------
    X : array (n_samples, n_features)
    Y : array (n_samples, n_targets)
    n_nonzero : int
    device : str or torch.device, optional
        Default CUDA when available.
    dtype : torch.dtype
        float64 by default, so the result equals `romp_single_target`'s; float32 halves memory.
    chunk_size : int, optional
        Targets per chunk; default keeps the correlation matrix near 256 MB.

    Returns
    -------
    RompFit
    """
    device = resolve_device(device)
    # copies: inputs may be read-only (memory maps), and the fit works in its own dtype anyway
    X = torch.tensor(np.asarray(X), dtype=dtype, device=device)
    Y = torch.tensor(np.asarray(Y), dtype=dtype, device=device)
    n_samples, n_features = X.shape
    x_mean = X.mean(dim=0) if fit_intercept else torch.zeros(n_features, dtype=dtype, device=device)
    Xc = X - x_mean
    norms = torch.linalg.vector_norm(Xc, dim=0)
    usable = norms > 1e-12 * max(1.0, float(norms.max()) if n_features else 1.0)
    scale = torch.where(usable, norms if normalize else torch.ones_like(norms), torch.ones_like(norms))
    # dead (zero-variance) units get all-zero columns: their correlation with any residual is
    # exactly 0, so no iteration selects them and no per-iteration masking pass is needed
    Xn = torch.where(usable, Xc / scale, torch.zeros_like(Xc))
    cap = min(max_atoms or 2 * n_nonzero, n_samples - 2)
    if cap < 1:
        raise ValueError(f"ROMP needs at least 3 samples (support limited to n_samples - 2), found {n_samples}")
    chunk = chunk_size or _chunk_size(n_features, X.element_size())
    # each iteration compares the top min(n_nonzero, n_features) magnitudes of every target in a
    # chunk pairwise: (targets, s, s) booleans plus int64 window ends
    window = min(n_nonzero, n_features)
    check_allocation(min(chunk, Y.shape[1]) * window * (window * 9 + 3 * X.element_size()),
                     f"ROMP with n_nonzero = {n_nonzero} on {n_features} features",
                     "lower n_nonzero ([encoding] n_nonzero in a study file); a support cannot exceed "
                     f"n_samples - 2 = {n_samples - 2} atoms anyway")
    rows, cols, values, intercepts, supports, iterations, reasons = [], [], [], [], [], [], []
    for start in range(0, Y.shape[1], chunk):
        block = Y[:, start:start + chunk]
        y_mean = block.mean(dim=0) if fit_intercept else torch.zeros(block.shape[1], dtype=dtype, device=device)
        if start == 0:  # one correlation buffer for every iteration of every chunk (no page faults)
            buffer = torch.empty((block.shape[1], n_features), dtype=dtype, device=device)
        result = _romp_chunk(Xn, block - y_mean, n_nonzero, cap, max_atoms or 2 * n_nonzero, tol, buffer)
        support, coef_n, sizes, n_iter, reason = result
        # every target at once: slots beyond a target's support size are masked out
        held = torch.arange(cap, device=device)[None, :] < sizes[:, None]
        coef = torch.where(held, coef_n / scale[support], torch.zeros_like(coef_n))
        intercept = y_mean - (x_mean[support] * coef).sum(dim=1)
        held_np, support_np, coef_np = held.cpu().numpy(), support.cpu().numpy(), coef.cpu().numpy()
        rows.append(np.nonzero(held_np)[0] + start)
        cols.append(support_np[held_np])
        values.append(coef_np[held_np])
        intercepts.append(intercept.cpu().numpy())
        supports.extend(support_np[t, :k] for t, k in enumerate(sizes.cpu().numpy()))
        iterations.append(n_iter.cpu().numpy())
        reasons.append(reason)
    n_targets = Y.shape[1]
    coef = sp.csr_matrix((np.concatenate(values) if values else [], (np.concatenate(rows) if rows else [],
                          np.concatenate(cols) if cols else [])), shape=(n_targets, n_features))
    return RompFit(coef, np.concatenate(intercepts), supports, np.concatenate(iterations), np.concatenate(reasons))


def _romp_chunk(Xn, Yc, n_nonzero, cap, atom_limit, tol, buffer):
    """Batched iterations for one chunk of centred targets Yc (n_samples, T)."""
    device, dtype = Xn.device, Xn.dtype
    n_samples, n_features = Xn.shape
    T = Yc.shape[1]
    s = n_nonzero
    support = torch.zeros((T, cap), dtype=torch.long, device=device)
    sizes = torch.zeros(T, dtype=torch.long, device=device)
    coef = torch.zeros((T, cap), dtype=dtype, device=device)
    residual = Yc.T.clone()  # (T, n_samples)
    target_norm = torch.linalg.vector_norm(Yc, dim=0).clamp_min(1e-300)
    active = torch.ones(T, dtype=torch.bool, device=device)
    n_iter = torch.zeros(T, dtype=torch.long, device=device)
    reason = np.array(["n_iter"] * T, dtype=object)
    slots = torch.arange(cap, device=device)
    for _ in range(s):
        if not bool(active.any()):
            break
        idx = torch.nonzero(active).flatten()
        u = torch.matmul(residual[idx], Xn, out=buffer[:len(idx)])  # (A, n_features): all active targets
        held = slots[None, :] < sizes[idx, None]
        _zero_support(u, support[idx], held)
        # in place: u is the largest array of the fit, and each pass over it costs a memory sweep
        magnitude, order = torch.topk(u.abs_(), min(s, n_features), dim=1)  # descending
        candidate = magnitude > 0
        none = ~candidate[:, 0]
        # the maximal-energy comparable window over each row's sorted magnitudes
        comparable = (magnitude[:, None, :] >= magnitude[:, :, None] / 2.0) & candidate[:, None, :]
        end = comparable.sum(dim=2) - 1  # (A, s): last index of the window starting at i
        squares = torch.cat([torch.zeros_like(magnitude[:, :1]), torch.cumsum(magnitude**2, dim=1)], dim=1)
        energy = squares.gather(1, end + 1) - squares[:, :-1]
        energy = torch.where(candidate, energy, torch.full_like(energy, -1.0))
        best = energy.argmax(dim=1)  # first maximum: the window of largest values
        window_end = end.gather(1, best[:, None]).squeeze(1)
        position = torch.arange(order.shape[1], device=device)[None, :]
        take = (position >= best[:, None]) & (position <= window_end[:, None]) & candidate
        # keep the support within the cap: only the largest of the window's entries if needed
        room = cap - sizes[idx]
        take &= (torch.cumsum(take.long(), dim=1) <= room[:, None])
        take &= ~none[:, None]
        n_new = take.sum(dim=1)
        destination = torch.where(take, sizes[idx, None] + torch.cumsum(take.long(), dim=1) - 1, torch.full_like(order, cap))
        padded = torch.cat([support[idx], torch.zeros((len(idx), 1), dtype=torch.long, device=device)], dim=1)
        padded.scatter_(1, destination, order)
        support[idx] = padded[:, :cap]
        sizes[idx] = sizes[idx] + n_new
        n_iter[idx] += (~none).long()
        # least squares on each support (normal equations, unused slots fixed to zero)
        held = slots[None, :] < sizes[idx, None]
        atoms = Xn.T[support[idx]] * held[:, :, None]  # (A, cap, n_samples)
        gram = atoms @ atoms.transpose(1, 2) + torch.diag_embed((~held).to(dtype))
        rhs = atoms @ Yc[:, idx].T.unsqueeze(2)
        solution = torch.linalg.lstsq(gram, rhs).solution.squeeze(2) * held
        coef[idx] = solution
        residual[idx] = Yc[:, idx].T - (solution.unsqueeze(1) @ atoms).squeeze(1)
        # stopping
        done_none = none
        small = torch.linalg.vector_norm(residual[idx], dim=1) <= tol * target_norm[idx]
        full = sizes[idx] >= cap
        for mask, label in ((done_none, "no_correlation"), (small & ~done_none, "residual"),
                            (full & ~small & ~done_none, "max_atoms" if cap == atom_limit else "n_samples")):
            chosen = idx[mask]
            reason[chosen.cpu().numpy()] = label
            active[chosen] = False
    return support, coef, sizes, n_iter, reason


def _zero_support(u: torch.Tensor, support: torch.Tensor, held: torch.Tensor) -> None:
    """Set the correlations of atoms already in each row's support to zero (in place)."""
    rows = torch.arange(len(u), device=u.device)[:, None].expand_as(support)
    u[rows[held], support[held]] = 0.0
