"""Eigen-distortions and principal distortions: the local geometry of representations (paper 002).

With Gaussian response noise of unit variance, the Fisher information of a representation f at
an image s is I(s) = J^T J, J = df/ds the Jacobian in pixel space, and the sensitivity to a
distortion u is d(u) = ||J u||. Everything here uses products with J and J^T only (two reverse
passes give J u), so no Jacobian is ever formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._images import as_image_tensor
from ..models import LayeredModel

__all__ = ["FisherOperator", "eigendistortions", "Eigendistortions", "principal_distortions", "PrincipalDistortions",
           "principal_distortion_objective"]


class FisherOperator:
    """u -> J^T J u for one layer of one network at one image (pixel space, [0, 1] units)."""

    def __init__(self, model: LayeredModel, layer: str, image):
        image = as_image_tensor(image)[:1].to(model.device)
        self.shape = tuple(image.shape[1:])
        self.x = image.detach().clone().requires_grad_(True)
        self.y = model.layer_outputs(self.x, [layer], validate=False)[layer].flatten()
        # J^T w as a differentiable function of w: its gradient with respect to w gives J u
        self.w = torch.zeros_like(self.y, requires_grad=True)
        (self.jt_w,) = torch.autograd.grad(self.y, self.x, self.w, create_graph=True)

    def jacobian_vector(self, u: torch.Tensor) -> torch.Tensor:
        """J u, shape (n_outputs,)."""
        (ju,) = torch.autograd.grad(self.jt_w, self.w, u.reshape(self.jt_w.shape), retain_graph=True)
        return ju

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """J^T J u, shape of the image."""
        (value,) = torch.autograd.grad(self.y, self.x, self.jacobian_vector(u), retain_graph=True)
        return value.detach().reshape(u.shape)

    def sensitivity(self, u: torch.Tensor) -> torch.Tensor:
        """d(u) = ||J u||."""
        return self.jacobian_vector(u).norm()


def _subspace_iteration(apply, shape, k, n_iter, tol, generator, device):
    basis = torch.linalg.qr(torch.randn(int(np.prod(shape)), k, generator=generator).to(device))[0]
    values = torch.zeros(k, device=device)
    for _ in range(n_iter):
        product = torch.stack([apply(basis[:, j].reshape(shape)).flatten() for j in range(k)], dim=1)
        new_values = (basis * product).sum(dim=0)
        basis = torch.linalg.qr(product)[0]
        if torch.allclose(new_values, values, rtol=tol, atol=0):
            values = new_values
            break
        values = new_values
    # Rayleigh-Ritz: rotate the basis to eigenvectors within the subspace
    product = torch.stack([apply(basis[:, j].reshape(shape)).flatten() for j in range(k)], dim=1)
    small = basis.T @ product
    eigenvalues, rotation = torch.linalg.eigh((small + small.T) / 2)
    order = torch.argsort(eigenvalues, descending=True)
    return eigenvalues[order], (basis @ rotation)[:, order]


@dataclass
class Eigendistortions:
    """Extreme eigenvectors of the Fisher information at an image.

    Attributes
    ----------
    top, bottom : tensors (k, 3, H, W), unit norm
        The most and least visible distortions to the representation.
    top_values, bottom_values : arrays (k,)
        Their eigenvalues (squared sensitivities d(u)^2), descending / ascending.
    """

    top: torch.Tensor
    bottom: torch.Tensor
    top_values: np.ndarray
    bottom_values: np.ndarray


def eigendistortions(model: LayeredModel, layer: str, image, k: int = 1, *, n_iter: int = 200, tol: float = 1e-6,
                     seed: int = 0) -> Eigendistortions:
    """Top and bottom ``k`` eigen-distortions of J^T J by subspace (power) iteration.

    The bottom ones come from the same iteration on lambda_max I - J^T J.
    """
    fisher = FisherOperator(model, layer, image)
    generator = torch.Generator().manual_seed(seed)
    device = fisher.x.device
    top_values, top = _subspace_iteration(fisher, fisher.shape, k, n_iter, tol, generator, device)
    largest = float(top_values[0])
    shifted_values, bottom = _subspace_iteration(lambda u: largest * u - fisher(u), fisher.shape, k, n_iter, tol,
                                                 generator, device)
    bottom_values = largest - shifted_values
    return Eigendistortions(top=top.T.reshape(k, *fisher.shape).cpu(), bottom=bottom.T.reshape(k, *fisher.shape).cpu(),
                            top_values=top_values.cpu().numpy(), bottom_values=bottom_values.cpu().numpy())


def _log_ratio_terms(fishers, u, v):
    """a_i = log d_i(u) - log d_i(v) for each representation, and the Fisher products."""
    products_u = [f(u) for f in fishers]
    products_v = [f(v) for f in fishers]
    energy_u = torch.stack([(u * p).sum() for p in products_u])
    energy_v = torch.stack([(v * p).sum() for p in products_v])
    return 0.5 * (energy_u.log() - energy_v.log()), products_u, products_v, energy_u, energy_v


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
    log_ratios : array (N,)
        log d_i(u) / d_i(v) for each representation.
    objective : float
    history : array (n_iter,)
    """

    u: torch.Tensor
    v: torch.Tensor
    log_ratios: np.ndarray
    objective: float
    history: np.ndarray


def principal_distortions(representations: Sequence[tuple[LayeredModel, str]], image, *, n_iter: int = 200,
                          lr: float = 0.05, seed: int = 0) -> PrincipalDistortions:
    """Maximize the variance of log sensitivity ratios across N representations (paper 002).

    Parameters
    ----------
    representations : sequence of (model, layer)
        N >= 2 representations (different networks, layers, or both).
    image : tensor (3, H, W) or (1, 3, H, W)
    n_iter : int
        Projected gradient-ascent steps on the two unit spheres.
    lr : float
        Step along the normalized gradient (the sphere has radius 1).

    Returns
    -------
    PrincipalDistortions
    """
    if len(representations) < 2:
        raise ValueError("principal distortions need at least two representations")
    fishers = [FisherOperator(model, layer, image) for model, layer in representations]
    shape = fishers[0].shape
    device = fishers[0].x.device
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(shape, generator=generator).to(device)
    v = torch.randn(shape, generator=generator).to(device)
    u, v = u / u.norm(), v / v.norm()
    history = []
    for _ in range(n_iter):
        a, pu, pv, eu, ev = _log_ratio_terms(fishers, u, v)
        weights = (a - a.mean()).detach()
        history.append(principal_distortion_objective(a.detach().cpu().numpy()))
        # d/du of sum_i (a_i - mean a)^2, up to a positive factor: sum_i w_i I_i u / (u^T I_i u)
        grad_u = sum(w * p / e for w, p, e in zip(weights, pu, eu, strict=True))
        grad_v = -sum(w * p / e for w, p, e in zip(weights, pv, ev, strict=True))
        for vector, grad in ((u, grad_u), (v, grad_v)):
            tangent = grad - (grad * vector).sum() * vector  # stay on the sphere
            norm = tangent.norm()
            if norm > 0:
                vector.add_(lr * tangent / norm)
            vector.div_(vector.norm())
    a, *_ = _log_ratio_terms(fishers, u, v)
    ratios = a.detach().cpu().numpy()
    return PrincipalDistortions(u=u.cpu(), v=v.cpu(), log_ratios=ratios,
                                objective=principal_distortion_objective(ratios), history=np.asarray(history))
