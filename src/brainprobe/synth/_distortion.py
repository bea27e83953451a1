"""Eigen-distortions and principal distortions: the local geometry of representations (paper 002).

With Gaussian response noise of unit variance, the Fisher information of a representation f at
an image s is I(s) = J^T J, J = df/ds the Jacobian in pixel space, and the sensitivity to a
distortion u is d(u) = ||J u||. Everything here uses products with J and J^T only (two reverse
passes give J u), so no Jacobian is ever formed.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._images import as_image_tensor
from ..models import LayeredModel

__all__ = ["FisherOperator", "eigendistortions", "Eigendistortions", "principal_distortions", "PrincipalDistortions",
           "principal_distortion_objective"]


class FisherOperator:
    """u -> J^T J u for one layer of one network at one image (pixel space, [0, 1] units).

    Parameters
    ----------
    model : LayeredModel
    layer : str
    image : tensor (3, H, W) or (1, 3, H, W)
    dtype : torch.dtype
        Precision of the products. The default float64 runs a double-precision copy of the
        network (the caller's model is untouched): iterative eigensolvers stall at the float32
        rounding noise of the products long before the bottom of the spectrum has converged.
    """

    def __init__(self, model: LayeredModel, layer: str, image, *, dtype: torch.dtype = torch.float64):
        image = as_image_tensor(image)[:1].to(model.device)
        if dtype != torch.float32:
            model = copy.deepcopy(model).to(dtype)
        self.shape = tuple(image.shape[1:])
        self.dtype = dtype
        self.x = image.detach().to(dtype).clone().requires_grad_(True)
        self.y = model.layer_outputs(self.x, [layer], validate=False)[layer].flatten()
        # J^T w as a differentiable function of w: its gradient with respect to w gives J u
        self.w = torch.zeros_like(self.y, requires_grad=True)
        (self.jt_w,) = torch.autograd.grad(self.y, self.x, self.w, create_graph=True)

    def jacobian_vector(self, u: torch.Tensor) -> torch.Tensor:
        """J u, shape (n_outputs,)."""
        u = u.to(device=self.x.device, dtype=self.dtype)
        (ju,) = torch.autograd.grad(self.jt_w, self.w, u.reshape(self.jt_w.shape), retain_graph=True)
        return ju

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """J^T J u, shape of the image, in the operator's dtype."""
        (value,) = torch.autograd.grad(self.y, self.x, self.jacobian_vector(u), retain_graph=True)
        return value.detach().reshape(u.shape)

    def sensitivity(self, u: torch.Tensor) -> torch.Tensor:
        """d(u) = ||J u||."""
        return self.jacobian_vector(u).norm()


def _as_operator(apply, shape, device):
    """A scipy LinearOperator (float64) over flattened images for ``apply`` (torch)."""
    from scipy.sparse.linalg import LinearOperator

    n = int(np.prod(shape))

    def matmat(block):
        block = np.asarray(block, dtype=np.float64).reshape(n, -1)
        columns = [apply(torch.as_tensor(block[:, j], dtype=torch.float64, device=device).reshape(shape))
                   .flatten().double().cpu().numpy() for j in range(block.shape[1])]
        return np.stack(columns, axis=1)

    return LinearOperator((n, n), matvec=lambda x: matmat(x)[:, 0], matmat=matmat, dtype=np.float64)


def _lobpcg(operator, n, k, *, largest, B=None, max_iter, tol, rng):
    """Extreme eigenpairs of ``operator`` (optionally relative to ``B``) by LOBPCG, sorted from
    the most extreme; the block is a little larger than ``k``, which speeds convergence."""
    from scipy.sparse.linalg import lobpcg

    block = min(max(2 * k, k + 2), max(1, n // 5))
    start = rng.standard_normal((n, block))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "did not converge": reported as residuals instead
        values, vectors, history = lobpcg(operator, start, B=B, largest=largest, maxiter=max_iter, tol=tol,
                                          retLambdaHistory=True)
    order = np.argsort(values)[::-1] if largest else np.argsort(values)
    return values[order][:k], vectors[:, order][:, :k], len(history)


@dataclass
class Eigendistortions:
    """Extreme eigenvectors of the Fisher information at an image.

    Attributes
    ----------
    top, bottom : tensors (k, 3, H, W), unit norm
        The most and least visible distortions to the representation.
    top_values, bottom_values : arrays (k,)
        Their eigenvalues (squared sensitivities d(u)^2), descending / ascending.
    top_residuals, bottom_residuals : arrays (k,)
        ||I u - lambda u|| / lambda_max for each vector: how far it is from an exact eigenvector,
        relative to the largest eigenvalue.
    """

    top: torch.Tensor
    bottom: torch.Tensor
    top_values: np.ndarray
    bottom_values: np.ndarray
    top_residuals: np.ndarray
    bottom_residuals: np.ndarray


def _residuals(fisher, vectors, values, device, scale):
    shape = fisher.shape
    out = []
    for j in range(vectors.shape[1]):
        u = torch.as_tensor(vectors[:, j], dtype=torch.float64, device=device).reshape(shape)
        product = fisher(u).flatten().double().cpu().numpy()
        out.append(np.linalg.norm(product - values[j] * vectors[:, j]) / scale)
    return np.asarray(out)


def eigendistortions(model: LayeredModel, layer: str, image, k: int = 1, *, max_iter: int = 200, tol: float = 1e-5,
                     seed: int = 0) -> Eigendistortions:
    """Top and bottom ``k`` eigen-distortions of the Fisher information J^T J (paper 002).

    Both ends by LOBPCG on the matrix-free Fisher operator (two backward passes per product),
    which converges at the bottom of the spectrum too (power iteration on lambda_max I - J^T J
    converges there at the rate of the tiny gap between the smallest eigenvalues). The
    residual of every vector is returned.

    Parameters
    ----------
    model : LayeredModel
    layer : str
    image : tensor (3, H, W) or (1, 3, H, W)
    k : int
    max_iter : int
        LOBPCG iterations for each end of the spectrum.
    tol : float
        Target residual ||I u - lambda u|| / lambda_max.
    seed : int

    Returns
    -------
    Eigendistortions
    """
    fisher = FisherOperator(model, layer, image)
    device = fisher.x.device
    n = int(np.prod(fisher.shape))
    if not 1 <= k <= n // 5:
        raise ValueError(f"k: expected 1 .. {n // 5} for an image of {n} values, found {k}")
    operator = _as_operator(fisher, fisher.shape, device)
    rng = np.random.default_rng(seed)
    top_values, top, _ = _lobpcg(operator, n, k, largest=True, max_iter=max_iter, tol=None, rng=rng)
    scale = max(float(top_values[0]), 1e-30)
    if _residuals(fisher, top, top_values, device, scale).max() > tol:  # scipy's default tolerance was loose
        top_values, top, _ = _lobpcg(operator, n, k, largest=True, max_iter=max_iter, tol=tol * scale, rng=rng)
    bottom_values, bottom, _ = _lobpcg(operator, n, k, largest=False, max_iter=max_iter, tol=tol * scale, rng=rng)
    top, bottom = top / np.linalg.norm(top, axis=0), bottom / np.linalg.norm(bottom, axis=0)
    return Eigendistortions(
        top=torch.as_tensor(top.T, dtype=torch.float32).reshape(k, *fisher.shape),
        bottom=torch.as_tensor(bottom.T, dtype=torch.float32).reshape(k, *fisher.shape),
        top_values=top_values, bottom_values=np.maximum(bottom_values, 0.0),
        top_residuals=_residuals(fisher, top, top_values, device, scale),
        bottom_residuals=_residuals(fisher, bottom, bottom_values, device, scale))


class _Regularized:
    """u -> (I + epsilon Id) u for a Fisher operator, epsilon = ``ridge`` x trace(I) / n."""

    def __init__(self, fisher: FisherOperator, ridge: float, rng: np.random.Generator, n_probes: int = 8):
        self.fisher, self.shape = fisher, fisher.shape
        device = fisher.x.device
        probes = torch.as_tensor(rng.choice([-1.0, 1.0], size=(n_probes, *fisher.shape)), dtype=torch.float64,
                                 device=device)
        trace = float(np.mean([float((p * fisher(p)).sum()) for p in probes]))  # Hutchinson
        self.epsilon = ridge * trace / int(np.prod(fisher.shape))

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return self.fisher(u) + self.epsilon * u


def _log_sensitivities(operators, u: np.ndarray, device):
    """log d_i(u) and I_i u / (u^T I_i u) for each representation (float64 numpy)."""
    shape = operators[0].shape
    tensor = torch.as_tensor(u, dtype=torch.float64, device=device).reshape(shape)
    logs, directions = [], []
    for operator in operators:
        product = operator(tensor).flatten().double().cpu().numpy()
        energy = float(u @ product)
        logs.append(0.5 * np.log(max(energy, 1e-300)))
        directions.append(product / max(energy, 1e-300))
    return np.asarray(logs), directions


def principal_distortion_objective(log_ratios) -> float:
    """Sum over pairs (i, j) of (a_i - a_j)^2 = 2 N sum_i (a_i - mean a)^2 (paper 002, eq. 2)."""
    a = np.asarray(log_ratios, dtype=float)
    return float(2 * len(a) * np.sum((a - a.mean()) ** 2))


@dataclass
class PrincipalDistortions:
    """The pair of distortions that best separates N representations (paper 002).

    Attributes
    ----------
    u, v : tensors (3, H, W), unit norm
        epsilon_1 and epsilon_2.
    log_ratios : array (N,)
        log d_i(u) / d_i(v) for each representation.
    objective : float
        Sum over pairs of squared differences of the log ratios.
    history : array (n_iter,)
        The objective at each iteration (``ascent``; empty for ``generalized_eigen``).
    method : str
        ``generalized_eigen`` (N = 2, exact), ``ascent``, or ``generalized_eigen+ascent`` (N = 2,
        LOBPCG did not converge and the ascent continued from its vectors).
    converged : bool
        LOBPCG met its tolerance / the ascent met its convergence test.
    n_iter : int
    residual : float
        ``generalized_eigen``: the larger of ||A w - lambda B w|| / ||A w|| over the two vectors;
        ``ascent``: the norm of the objective's gradient on the spheres at the end.
    """

    u: torch.Tensor
    v: torch.Tensor
    log_ratios: np.ndarray
    objective: float
    history: np.ndarray
    method: str = "ascent"
    converged: bool = False
    n_iter: int = 0
    residual: float = float("nan")


def _generalized_top(a_op, b_op, n, max_iter, tol, rng):
    """argmax_w (w^T A w) / (w^T B w) by LOBPCG on the generalized problem A w = lambda B w."""
    values, vectors, steps = _lobpcg(a_op, n, 1, largest=True, B=b_op, max_iter=max_iter, tol=tol, rng=rng)
    w = vectors[:, 0] / np.linalg.norm(vectors[:, 0])
    aw, bw = a_op @ w, b_op @ w
    residual = np.linalg.norm(aw - values[0] * bw) / max(np.linalg.norm(aw), 1e-300)
    return w, float(residual), steps


def principal_distortions(representations: Sequence[tuple[LayeredModel, str]], image, *, method: str = "auto",
                          n_iter: int = 500, tol: float = 1e-6, ridge: float = 1e-3,
                          seed: int = 0) -> PrincipalDistortions:
    """The principal distortions of N representations at an image (paper 002).

    Each representation's Fisher information is used with a small ridge, I_i + epsilon_i Id
    (epsilon_i = ``ridge`` x the mean eigenvalue, estimated from the trace): a layer with fewer
    outputs than pixels has distortions it cannot see at all, whose log sensitivity would be
    minus infinity.

    For two representations the optimum is closed-form: u and v are the top generalized
    eigenvectors of (I_A, I_B) and of (I_B, I_A), found matrix-free by LOBPCG. For N > 2 the
    objective (invariant to the scale of u and of v) is maximized by L-BFGS with a Wolfe line
    search, which controls the step, until the gradient or the change of the objective falls
    below ``tol``.

    Parameters
    ----------
    representations : sequence of (model, layer)
        N >= 2 representations (different networks, layers, or both).
    image : tensor (3, H, W) or (1, 3, H, W)
    method : {"auto", "generalized_eigen", "ascent"}
        ``auto``: ``generalized_eigen`` for N = 2, else ``ascent``. For N = 2, when LOBPCG
        has not converged within ``n_iter`` (a Fisher matrix of low rank, as a deep layer's at a
        small image, makes the generalized problem ill-conditioned and LOBPCG stalls: on a
        He-initialized AlexNet, conv2 vs conv4 at 48 px, it stopped at an objective of 4.5
        where the ascent reached 54 in 60 iterations), ``auto`` continues with the ascent
        from the LOBPCG vectors (method ``generalized_eigen+ascent``); the ascent never lowers
        the objective.
    n_iter : int
        At most this many LOBPCG or L-BFGS iterations.
    tol : float
        ``generalized_eigen``: relative residual; ``ascent``: relative change of the objective.
    ridge : float
    seed : int

    Returns
    -------
    PrincipalDistortions
    """
    if len(representations) < 2:
        raise ValueError("principal distortions need at least two representations")
    refine = method == "auto" and len(representations) == 2
    if method == "auto":
        method = "generalized_eigen" if len(representations) == 2 else "ascent"
    if method not in ("generalized_eigen", "ascent"):
        raise ValueError(f"method: expected 'auto', 'generalized_eigen' or 'ascent', found {method!r}")
    if method == "generalized_eigen" and len(representations) != 2:
        raise ValueError("method='generalized_eigen' compares exactly two representations")
    if ridge <= 0:
        raise ValueError(f"ridge: expected a positive fraction of the mean eigenvalue, found {ridge}")
    rng = np.random.default_rng(seed)
    fishers = [FisherOperator(model, layer, image) for model, layer in representations]
    shape = fishers[0].shape
    if any(f.shape != shape for f in fishers):
        raise ValueError(f"representations see images of different shapes: {[f.shape for f in fishers]}")
    device = fishers[0].x.device
    operators = [_Regularized(f, ridge, rng) for f in fishers]
    n = int(np.prod(shape))
    if method == "generalized_eigen":
        a_op, b_op = (_as_operator(op, shape, device) for op in operators)
        u, residual_u, steps_u = _generalized_top(a_op, b_op, n, n_iter, tol, rng)
        v, residual_v, steps_v = _generalized_top(b_op, a_op, n, n_iter, tol, rng)
        residual = max(residual_u, residual_v)
        history, converged, steps = np.zeros(0), residual < 10 * tol, max(steps_u, steps_v)
        if refine and not converged:
            u, v, history, converged, more, residual = _ascent(operators, n, device, n_iter, tol, rng,
                                                               start=np.concatenate([u, v]))
            method, steps = "generalized_eigen+ascent", steps + more
    else:
        u, v, history, converged, steps, residual = _ascent(operators, n, device, n_iter, tol, rng)
    ratios = _log_sensitivities(operators, u, device)[0] - _log_sensitivities(operators, v, device)[0]
    return PrincipalDistortions(
        u=torch.as_tensor(u, dtype=torch.float32).reshape(shape), v=torch.as_tensor(v, dtype=torch.float32).reshape(shape),
        log_ratios=ratios, objective=principal_distortion_objective(ratios), history=np.asarray(history), method=method,
        converged=bool(converged), n_iter=int(steps), residual=float(residual))


def _ascent(operators, n, device, n_iter, tol, rng, start=None):
    """Maximize the principal-distortion objective over (u, v) with L-BFGS (scipy), from
    ``start`` (u and v concatenated) or a random pair."""
    from scipy.optimize import minimize

    count = len(operators)
    history: list[float] = []

    def negative(w):
        u, v = w[:n], w[n:]
        log_u, dir_u = _log_sensitivities(operators, u, device)
        log_v, dir_v = _log_sensitivities(operators, v, device)
        a = log_u - log_v
        centred = a - a.mean()
        value = principal_distortion_objective(a)
        grad_u = 4 * count * sum(c * d for c, d in zip(centred, dir_u, strict=True))
        grad_v = -4 * count * sum(c * d for c, d in zip(centred, dir_v, strict=True))
        return -value, -np.concatenate([grad_u, grad_v])

    start = rng.standard_normal(2 * n) if start is None else np.array(start, dtype=np.float64)
    start[:n] /= np.linalg.norm(start[:n])
    start[n:] /= np.linalg.norm(start[n:])
    last: dict = {}

    def evaluate(w):
        last["w"], last["value"] = w.copy(), negative(w)
        return last["value"]

    def record(w):  # the accepted point is the last one the line search evaluated
        history.append(-(last["value"] if np.array_equal(w, last["w"]) else negative(w))[0])

    result = minimize(evaluate, start, jac=True, method="L-BFGS-B", callback=record,
                      options={"maxiter": n_iter, "ftol": tol, "gtol": 1e-10, "maxcor": 20})
    u, v = result.x[:n] / np.linalg.norm(result.x[:n]), result.x[n:] / np.linalg.norm(result.x[n:])
    _, gradient = negative(np.concatenate([u, v]))
    tangent = np.concatenate([gradient[:n] - (gradient[:n] @ u) * u, gradient[n:] - (gradient[n:] @ v) * v])
    return u, v, history, bool(result.success), int(result.nit), float(np.linalg.norm(tangent))
