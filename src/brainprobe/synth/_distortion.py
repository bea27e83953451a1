"""Eigen-distortions and principal distortions: the local geometry of representations (paper 002).

With Gaussian response noise of unit variance, the Fisher information of a representation f at
an image s is I(s) = J^T J, J = df/ds the Jacobian in pixel space, and the sensitivity to a
distortion u is d(u) = ||J u||. Everything here uses products with J and J^T only (two reverse
passes give J u), so no Jacobian is ever formed.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .._images import as_image_tensor
from ..models import LayeredModel
from ._persistence import read_synthesis, write_synthesis
from ._synthesis import Synthesis, check_saved_model

__all__ = ["FisherOperator", "eigendistortions", "Eigendistortions", "principal_distortions", "PrincipalDistortions",
           "principal_distortion_objective", "DENSE_MAX_PIXELS", "EigendistortionSynthesis",
           "PrincipalDistortionSynthesis"]


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

    @property
    def n_outputs(self) -> int:
        return int(self.y.numel())

    @property
    def n_pixels(self) -> int:
        return int(self.x.numel())

    def dense(self, chunk: int = 256) -> np.ndarray:
        """The Fisher matrix J^T J (n_pixels, n_pixels), float64, formed exactly.

        From the rows of J (one backward pass per output) when the layer has fewer outputs than
        pixels, otherwise column by column as J^T J e_j (batched products); memory n_pixels^2.
        """
        n, m = self.n_pixels, self.n_outputs
        if m < n:
            rows = [self._batched(self.y, self.x, torch.eye(m, dtype=self.dtype, device=self.x.device)[i:i + chunk])
                    .reshape(-1, n) for i in range(0, m, chunk)]
            jacobian = torch.cat(rows).double().cpu()
            return (jacobian.T @ jacobian).numpy()
        columns = []
        for i in range(0, n, chunk):
            basis = torch.eye(n, dtype=self.dtype, device=self.x.device)[i:i + chunk]
            ju = self._batched(self.jt_w, self.w, basis.reshape(-1, *self.jt_w.shape))
            columns.append(self._batched(self.y, self.x, ju.reshape(-1, *self.y.shape)).reshape(-1, n).double().cpu())
        fisher = torch.cat(columns).numpy()
        return 0.5 * (fisher + fisher.T)

    @staticmethod
    def _batched(output, inputs, grads):
        """Vector-Jacobian products of ``output`` for a batch of ``grads`` (one pass when torch can vmap)."""
        try:
            (value,) = torch.autograd.grad(output, inputs, grads, retain_graph=True, is_grads_batched=True)
            return value.detach()
        except RuntimeError:  # an operation without a batching rule: one product at a time
            return torch.stack([torch.autograd.grad(output, inputs, g, retain_graph=True)[0].detach() for g in grads])


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
        ||I u - lambda u|| / lambda for each vector: how far it is from an exact eigenvector,
        relative to its own eigenvalue (a residual relative to the largest eigenvalue looks
        small for a bottom vector that is nowhere near converged). When the bottom of the
        spectrum is a null space (``null_space``), relative to the largest eigenvalue instead:
        how close u is to being invisible.
    top_converged, bottom_converged : bool arrays (k,)
        The residual is below the tolerance (always True for ``method="dense"``).
    method : str
        ``"dense"`` (the Fisher matrix formed and diagonalized: exact) or ``"lobpcg"``.
    n_outputs, n_pixels : int
    n_iter : int
        LOBPCG iterations (both ends together; 0 for ``dense``).
    null_space : bool
        The layer has fewer outputs than the image has values: rank(I) <= n_outputs, the
        bottom eigenvalue is 0 and *any* direction of the null space is a least-visible
        distortion (``bottom`` is one of them, not a meaningful one).
    """

    top: torch.Tensor
    bottom: torch.Tensor
    top_values: np.ndarray
    bottom_values: np.ndarray
    top_residuals: np.ndarray
    bottom_residuals: np.ndarray
    top_converged: np.ndarray | None = None
    bottom_converged: np.ndarray | None = None
    method: str = "lobpcg"
    n_outputs: int = 0
    n_pixels: int = 0
    null_space: bool = False
    n_iter: int = 0


def _residuals(fisher, vectors, values, device, scale):
    """||I u - lambda u|| / scale per vector; ``scale`` a number or one per vector."""
    shape = fisher.shape
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (vectors.shape[1],))
    out = []
    for j in range(vectors.shape[1]):
        u = torch.as_tensor(vectors[:, j], dtype=torch.float64, device=device).reshape(shape)
        product = fisher(u).flatten().double().cpu().numpy()
        out.append(np.linalg.norm(product - values[j] * vectors[:, j]) / max(scale[j], 1e-300))
    return np.asarray(out)


DENSE_MAX_PIXELS = 7000  # up to here forming and diagonalizing the Fisher matrix is exact and takes seconds


def eigendistortions(model: LayeredModel, layer: str, image, k: int = 1, *, max_iter: int = 200, tol: float = 1e-5,
                     seed: int = 0, method: str = "auto") -> Eigendistortions:
    """Top and bottom ``k`` eigen-distortions of the Fisher information J^T J (paper 002).

    Up to `DENSE_MAX_PIXELS` image values (``method="auto"``) the Fisher matrix is formed and
    diagonalized (exact). Above, both ends by LOBPCG on the matrix-free Fisher operator (two
    backward passes per product); every vector's residual relative to its own eigenvalue is
    returned, and a vector whose residual stays above ``tol`` is flagged (``*_converged``) and
    warned about. A layer with fewer outputs than image values has a null space: the least
    visible distortion is then any direction in it (``null_space``, and a warning).

    Parameters
    ----------
    model : LayeredModel
    layer : str
    image : tensor (3, H, W) or (1, 3, H, W)
    k : int
    max_iter : int
        LOBPCG iterations for each end of the spectrum.
    tol : float
        Target residual ||I u - lambda u|| / lambda.
    seed : int
    method : {"auto", "dense", "lobpcg"}

    Returns
    -------
    Eigendistortions
    """
    if method not in ("auto", "dense", "lobpcg"):
        raise ValueError(f"method: expected 'auto', 'dense' or 'lobpcg', found {method!r}")
    fisher = FisherOperator(model, layer, image)
    device = fisher.x.device
    n = int(np.prod(fisher.shape))
    if not 1 <= k <= n // 5:
        raise ValueError(f"k: expected 1 .. {n // 5} for an image of {n} values, found {k}")
    null_space = fisher.n_outputs < n
    if method == "auto":
        method = "dense" if n <= DENSE_MAX_PIXELS else "lobpcg"
    steps = 0
    if method == "dense":
        values, vectors = np.linalg.eigh(fisher.dense())
        top_values, top = values[::-1][:k], vectors[:, ::-1][:, :k]
        bottom_values, bottom = values[:k], vectors[:, :k]
    else:
        operator = _as_operator(fisher, fisher.shape, device)
        rng = np.random.default_rng(seed)
        top_values, top, steps = _lobpcg(operator, n, k, largest=True, max_iter=max_iter, tol=None, rng=rng)
        if (_residuals(fisher, top, top_values, device, np.abs(top_values)) > tol).any():  # scipy's default is loose
            top_values, top, more = _lobpcg(operator, n, k, largest=True, max_iter=max_iter,
                                            tol=tol * max(float(top_values[-1]), 1e-30), rng=rng)
            steps += more
        bottom_values, bottom, more = _lobpcg(operator, n, k, largest=False, max_iter=max_iter,
                                              tol=tol * max(float(top_values[0]), 1e-30) * 1e-3, rng=rng)
        steps += more
    top, bottom = top / np.linalg.norm(top, axis=0), bottom / np.linalg.norm(bottom, axis=0)
    largest = max(float(top_values[0]), 1e-300)
    top_residuals = _residuals(fisher, top, top_values, device, np.abs(top_values))
    bottom_scale = largest if null_space else np.abs(bottom_values)
    bottom_residuals = _residuals(fisher, bottom, bottom_values, device, bottom_scale)
    # a dense solve is exact up to rounding, whose size is set by the largest eigenvalue
    limit = tol if method == "lobpcg" else np.inf
    top_converged, bottom_converged = top_residuals <= limit, bottom_residuals <= limit
    if not (top_converged.all() and bottom_converged.all()):
        warnings.warn(f"eigendistortions: LOBPCG did not converge in {max_iter} iterations (largest residual "
                      f"relative to its eigenvalue {max(top_residuals.max(), bottom_residuals.max()):.2g} > {tol:g}); "
                      f"the {'bottom' if not bottom_converged.all() else 'top'} eigenvalues are not to be trusted "
                      "(more max_iter, or method='dense' for a smaller image)", RuntimeWarning, stacklevel=2)
    if null_space:
        warnings.warn(f"eigendistortions: layer {layer!r} has {fisher.n_outputs} outputs for {n} image values, so "
                      "the Fisher information has a null space: the least visible distortion is any direction in "
                      "it (bottom eigenvalue 0), and `bottom` is one arbitrary such direction", UserWarning,
                      stacklevel=2)
    return Eigendistortions(
        top=torch.as_tensor(top.T.copy(), dtype=torch.float32).reshape(k, *fisher.shape),
        bottom=torch.as_tensor(bottom.T.copy(), dtype=torch.float32).reshape(k, *fisher.shape),
        top_values=top_values.copy(), bottom_values=np.maximum(bottom_values, 0.0),
        top_residuals=top_residuals, bottom_residuals=bottom_residuals, top_converged=top_converged,
        bottom_converged=bottom_converged, method=method, n_outputs=fisher.n_outputs, n_pixels=n,
        null_space=null_space, n_iter=int(steps))


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
        ``dense`` (N = 2: the generalized eigenproblem of the two Fisher matrices solved densely;
        exact), ``generalized_eigen`` (N = 2, LOBPCG), ``ascent``, or
        ``generalized_eigen+ascent`` (N = 2, LOBPCG did not converge and the ascent continued
        from its vectors).
    converged : bool
        ``dense``: always; LOBPCG met its tolerance; the ascent met its convergence test or its
        normalized residual is below sqrt(tol).
    n_iter : int
    residual : float
        Normalized, in [0, 1]: ``dense`` / ``generalized_eigen``: the larger of
        ||A w - lambda B w|| / ||A w|| over the two vectors; ``ascent``: the norm of the
        objective's gradient on the spheres divided by the largest norm it can have there
        (sum_i |a_i - mean a| (||g_i(u)|| + ||g_i(v)||) times 4N, g_i(u) = I_i u / u^T I_i u).
    objective_gap : float
        (exact optimum - objective) / exact optimum, where the exact optimum is known (N = 2 and
        at most ``dense_max`` image values); NaN otherwise.
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
    objective_gap: float = float("nan")


def _generalized_top(a_op, b_op, n, max_iter, tol, rng):
    """argmax_w (w^T A w) / (w^T B w) by LOBPCG on the generalized problem A w = lambda B w."""
    values, vectors, steps = _lobpcg(a_op, n, 1, largest=True, B=b_op, max_iter=max_iter, tol=tol, rng=rng)
    w = vectors[:, 0] / np.linalg.norm(vectors[:, 0])
    aw, bw = a_op @ w, b_op @ w
    residual = np.linalg.norm(aw - values[0] * bw) / max(np.linalg.norm(aw), 1e-300)
    return w, float(residual), steps


def _dense_generalized(operators):
    """u, v maximizing and minimizing w^T A w / w^T B w, from the dense matrices (exact), and the
    normalized residual of both."""
    from scipy.linalg import eigh

    a, b = (op.fisher.dense() + op.epsilon * np.eye(op.fisher.n_pixels) for op in operators)
    values, vectors = eigh(a, b)
    residuals = []
    for j in (-1, 0):
        w = vectors[:, j]
        residuals.append(np.linalg.norm(a @ w - values[j] * (b @ w)) / max(np.linalg.norm(a @ w), 1e-300))
    u, v = vectors[:, -1], vectors[:, 0]
    return u / np.linalg.norm(u), v / np.linalg.norm(v), float(max(residuals)), float(values[-1] / values[0])


def principal_distortions(representations: Sequence[tuple[LayeredModel, str]], image, *, method: str = "auto",
                          n_iter: int = 500, tol: float = 1e-6, ridge: float = 1e-3,
                          seed: int = 0, dense_max: int = DENSE_MAX_PIXELS) -> PrincipalDistortions:
    """The principal distortions of N representations at an image (paper 002).

    Each representation's Fisher information is used with a small ridge, I_i + epsilon_i Id
    (epsilon_i = ``ridge`` x the mean eigenvalue, estimated from the trace): a layer with fewer
    outputs than pixels has distortions it cannot see at all, whose log sensitivity would be
    minus infinity.

    For two representations the optimum is closed-form: u and v are the top generalized
    eigenvectors of (I_A, I_B) and of (I_B, I_A). Up to ``dense_max`` image values they are
    found exactly from the dense matrices (``dense``), above matrix-free by LOBPCG. For N > 2 the
    objective (invariant to the scale of u and of v) is maximized by L-BFGS with a Wolfe line
    search, which controls the step, until the gradient or the change of the objective falls
    below ``tol``.

    Parameters
    ----------
    representations : sequence of (model, layer)
        N >= 2 representations (different networks, layers, or both).
    image : tensor (3, H, W) or (1, 3, H, W)
    method : {"auto", "dense", "generalized_eigen", "ascent"}
        ``auto``: for N = 2 ``dense`` up to ``dense_max`` image values and ``generalized_eigen``
        above, else ``ascent``. For N = 2, when LOBPCG
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
    dense_max : int
        Largest image (values) solved densely; the exact optimum is then also what
        ``objective_gap`` is measured against.

    Returns
    -------
    PrincipalDistortions
    """
    if len(representations) < 2:
        raise ValueError("principal distortions need at least two representations")
    refine = method == "auto" and len(representations) == 2
    if method == "auto":
        method = "generalized_eigen" if len(representations) == 2 else "ascent"
    if method not in ("dense", "generalized_eigen", "ascent"):
        raise ValueError(f"method: expected 'auto', 'dense', 'generalized_eigen' or 'ascent', found {method!r}")
    if method in ("dense", "generalized_eigen") and len(representations) != 2:
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
    if refine and n <= dense_max:
        method = "dense"
    exact_optimum = math.nan
    if method == "dense":
        u, v, residual, ratio = _dense_generalized(operators)
        history, converged, steps = np.zeros(0), True, 1
        exact_optimum = 0.5 * math.log(ratio) ** 2
    elif method == "generalized_eigen":
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
    objective = principal_distortion_objective(ratios)
    if len(representations) == 2 and n <= dense_max and method != "dense":
        exact_optimum = 0.5 * math.log(_dense_generalized(operators)[3]) ** 2
    gap = (exact_optimum - objective) / exact_optimum if exact_optimum > 0 else math.nan
    return PrincipalDistortions(
        u=torch.as_tensor(u, dtype=torch.float32).reshape(shape), v=torch.as_tensor(v, dtype=torch.float32).reshape(shape),
        log_ratios=ratios, objective=objective, history=np.asarray(history), method=method,
        converged=bool(converged), n_iter=int(steps), residual=float(residual), objective_gap=float(gap))


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
    # the largest norm the gradient can have at (u, v), by the triangle inequality: the residual's unit
    log_u, dir_u = _log_sensitivities(operators, u, device)
    log_v, dir_v = _log_sensitivities(operators, v, device)
    centred = np.abs((log_u - log_v) - (log_u - log_v).mean())
    bound = 4 * count * sum(c * (np.linalg.norm(du) + np.linalg.norm(dv))
                            for c, du, dv in zip(centred, dir_u, dir_v, strict=True))
    residual = float(np.linalg.norm(tangent) / max(bound, 1e-300))
    return u, v, history, bool(result.success) or residual <= math.sqrt(tol), int(result.nit), residual


class EigendistortionSynthesis(Synthesis):
    """Eigen-distortions of one layer at each of several images, as a synthesis object.

    `eigendistortions` at each image; ``images`` are the unit-norm distortions, for each source
    image its top ``k`` then its bottom ``k``.

    Parameters
    ----------
    model : LayeredModel
    images : tensor (n_images, 3, H, W) or StimulusSet
    layer : str
    k : int
    tol : float
    seed : int
    solver : {"auto", "dense", "lobpcg"}
        `eigendistortions`' ``method``.

    Attributes
    ----------
    images : tensor (n_images * 2k, 3, H, W), after `synthesize`
    results_ : list of Eigendistortions
        One per source image.
    n_iter : int array (n_images * 2k,)
        LOBPCG iterations of the source image's solve (0: dense).

    Examples
    --------
    >>> from brainprobe.synth import EigendistortionSynthesis
    >>> eigen = EigendistortionSynthesis(model, images, "block2").synthesize(200)  # doctest: +SKIP
    >>> eigen.table_[["source", "distortion", "eigenvalue", "residual", "converged"]]  # doctest: +SKIP
    """

    method = "eigendistortion"

    def __init__(self, model: LayeredModel, images, layer: str, *, k: int = 1, tol: float = 1e-5, seed: int = 0,
                 solver: str = "auto"):
        if not isinstance(model, LayeredModel):
            raise TypeError(f"model: expected a LayeredModel, found {type(model).__name__}")
        model.resolve_layer(layer)
        self.model, self.layer, self.k, self.tol, self.seed, self.solver = model, layer, int(k), float(tol), int(seed), solver
        self.sources = as_image_tensor(images).detach().cpu()
        self.images, self.results_, self.n_iter, self.history = None, [], np.zeros(0, dtype=int), {}
        self.losses = np.zeros((0, 0))

    def synthesize(self, max_iter: int = 200, *, progress: bool | None = None, device=None):
        """Solve at every source image (``max_iter`` LOBPCG iterations per end of the spectrum). Returns self."""
        if device is not None:
            self.to(device)
        self.results_ = [eigendistortions(self.model, self.layer, image, k=self.k, max_iter=max_iter, tol=self.tol,
                                          seed=self.seed, method=self.solver) for image in self.sources]
        self.images = torch.cat([torch.cat([r.top, r.bottom]) for r in self.results_])
        self.n_iter = np.repeat([r.n_iter for r in self.results_], 2 * self.k)
        return self

    def _table(self):
        rows = []
        for source, result in enumerate(self.results_):
            for end in ("top", "bottom"):
                for rank in range(self.k):
                    rows.append({"source": source, "layer": self.layer, "distortion": end, "rank": rank,
                                 "eigenvalue": float(getattr(result, f"{end}_values")[rank]),
                                 "residual": float(getattr(result, f"{end}_residuals")[rank]),
                                 "converged": bool(getattr(result, f"{end}_converged")[rank]),
                                 "solver": result.method, "null_space": result.null_space})
        return pd.DataFrame(rows).rename_axis(None).assign(image=np.arange(len(rows)))

    def save(self, path, *, overwrite: bool = False):
        """Save sources, distortions and their numbers (not the network); read back with `load`."""
        settings = {"method": self.method, "layer": self.layer, "k": self.k, "tol": self.tol, "seed": self.seed,
                    "solver": self.solver, "model": self.model.name,
                    "results": [{key: (value.tolist() if isinstance(value, np.ndarray) else value)
                                 for key, value in vars(r).items() if not isinstance(value, torch.Tensor)}
                                for r in self.results_]}
        tensors = {"sources": self.sources, **({"images": self.images} if self.images is not None else {})}
        return write_synthesis(path, settings, tensors, np.zeros((0, 0)), overwrite=overwrite)

    @classmethod
    def load(cls, path, model: LayeredModel) -> EigendistortionSynthesis:
        """A synthesis saved by `save`, on ``model`` (the same network, checked by name)."""
        settings, saved = read_synthesis(path, cls.method)
        check_saved_model(path, settings, model)
        obj = cls(model, saved["sources"], settings["layer"], k=settings["k"], tol=settings["tol"],
                  seed=settings["seed"], solver=settings["solver"])
        obj.images = saved.get("images")
        if obj.images is not None:
            per = 2 * obj.k
            obj.results_ = []
            for i, numbers in enumerate(settings["results"]):
                block = obj.images[i * per:(i + 1) * per]
                arrays = {key: (np.asarray(value) if isinstance(value, list) else value) for key, value in numbers.items()}
                obj.results_.append(Eigendistortions(top=block[:obj.k], bottom=block[obj.k:], **arrays))
            obj.n_iter = np.repeat([r.n_iter for r in obj.results_], per)
        return obj


class PrincipalDistortionSynthesis(Synthesis):
    """The principal distortions of N representations at one image, as a synthesis object.

    `principal_distortions`; ``images`` are u and v.

    Parameters
    ----------
    representations : sequence of (model, layer)
    image : tensor (3, H, W) or (1, 3, H, W)
    solver : {"auto", "dense", "generalized_eigen", "ascent"}
        `principal_distortions`' ``method``.
    tol, ridge, seed, dense_max
        As in `principal_distortions`.

    Attributes
    ----------
    images : tensor (2, 3, H, W): u, v
    result_ : PrincipalDistortions
    history : dict
        ``objective``: the ascent's objective at each iteration.
    """

    method = "principal_distortion"

    def __init__(self, representations: Sequence[tuple[LayeredModel, str]], image, *, solver: str = "auto",
                 tol: float = 1e-6, ridge: float = 1e-3, seed: int = 0, dense_max: int = DENSE_MAX_PIXELS):
        if len(representations) < 2:
            raise ValueError("principal distortions need at least two representations")
        for model, layer in representations:
            model.resolve_layer(layer)
        self.representations = list(representations)
        self.image = as_image_tensor(image)[:1].detach().cpu()
        self.solver, self.tol, self.ridge, self.seed, self.dense_max = solver, float(tol), float(ridge), int(seed), int(dense_max)
        self.images, self.result_, self.n_iter, self.history = None, None, np.zeros(0, dtype=int), {}
        self.losses = np.zeros((0, 0))

    def _networks(self):
        return [model for model, _ in self.representations]

    def _names(self) -> list[str]:
        return [f"{model.name}:{layer}" for model, layer in self.representations]

    def synthesize(self, max_iter: int = 500, *, progress: bool | None = None, device=None):
        """Solve (at most ``max_iter`` LOBPCG or L-BFGS iterations). Returns self."""
        if device is not None:
            self.to(device)
        self.result_ = principal_distortions(self.representations, self.image, method=self.solver, n_iter=max_iter,
                                             tol=self.tol, ridge=self.ridge, seed=self.seed, dense_max=self.dense_max)
        self.images = torch.stack([self.result_.u, self.result_.v])
        self.n_iter = np.full(2, self.result_.n_iter)
        self.history = {"objective": np.repeat(np.asarray(self.result_.history)[:, None], 2, axis=1)}
        return self

    def _table(self):
        r = self.result_
        return pd.DataFrame({"image": [0, 1], "distortion": ["u", "v"], "representations": " vs ".join(self._names()),
                             "objective": r.objective, "objective_gap": r.objective_gap, "residual": r.residual,
                             "converged": r.converged, "solver": r.method})

    def save(self, path, *, overwrite: bool = False):
        """Save the image, u, v and the numbers (not the networks); read back with `load`."""
        r = self.result_
        settings = {"method": self.method, "representations": self._names(), "solver": self.solver, "tol": self.tol,
                    "ridge": self.ridge, "seed": self.seed, "dense_max": self.dense_max,
                    "result": None if r is None else {"log_ratios": r.log_ratios.tolist(), "objective": r.objective,
                                                      "history": np.asarray(r.history).tolist(), "method": r.method,
                                                      "converged": r.converged, "n_iter": r.n_iter,
                                                      "residual": r.residual, "objective_gap": r.objective_gap}}
        tensors = {"image": self.image, **({"images": self.images} if self.images is not None else {})}
        return write_synthesis(path, settings, tensors, np.zeros((0, 0)), overwrite=overwrite)

    @classmethod
    def load(cls, path, representations) -> PrincipalDistortionSynthesis:
        """A synthesis saved by `save`, with the same representations (checked by network name and layer)."""
        settings, saved = read_synthesis(path, cls.method)
        obj = cls(representations, saved["image"], solver=settings["solver"], tol=settings["tol"],
                  ridge=settings["ridge"], seed=settings["seed"], dense_max=settings["dense_max"])
        if obj._names() != settings["representations"]:
            raise ValueError(f"{path}: made with {settings['representations']}, given {obj._names()}")
        obj.images = saved.get("images")
        if obj.images is not None and settings["result"] is not None:
            numbers = dict(settings["result"])
            numbers["log_ratios"], numbers["history"] = np.asarray(numbers["log_ratios"]), np.asarray(numbers["history"])
            obj.result_ = PrincipalDistortions(u=obj.images[0], v=obj.images[1], **numbers)
            obj.n_iter = np.full(2, obj.result_.n_iter)
        return obj
