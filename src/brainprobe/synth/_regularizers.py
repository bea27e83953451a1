"""Natural-image priors of Mahendran & Vedaldi (paper 004, section 3.2), in a network's input units.

The paper's constants (B = 80, B+ = 2B, V = B / 6.5, alpha = 6, beta = 2) are in the units of its
Caffe networks' input: 0-255 intensities minus the mean. A torchvision network sees
z = (x - mean) / std instead, so one Caffe unit is 1 / (255 std) of a z unit. `PreImagePrior`
measures images in the z units of the network it is built for (`PreImagePrior.for_model`) with
the constants scaled accordingly, so priors, their balance with the data term and the paper's
learning-rate rule carry over to any network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["PreImagePrior", "RandomTransforms", "alpha_norm", "tv_beta", "jitter"]

CAFFE_RANGE = 255.0


def alpha_norm(z: torch.Tensor, *, alpha: float, B: float) -> torch.Tensor:
    """N_alpha (004, section 3.2.1): mean over pixels of (RGB norm / B)^alpha, per image (n_images,)."""
    norms = z.pow(2).sum(dim=1).clamp_min(1e-12).sqrt()
    return (norms / B).pow(alpha).mean(dim=(1, 2))


def tv_beta(z: torch.Tensor, *, beta: float, V: float) -> torch.Tensor:
    """TV^beta (004, section 3.2.2) by finite differences, per pixel area, per image (n_images,)."""
    dx = z[..., :-1, 1:] - z[..., :-1, :-1]
    dy = z[..., 1:, :-1] - z[..., :-1, :-1]
    height, width = z.shape[-2:]
    return ((dx.pow(2) + dy.pow(2)).clamp_min(1e-12).pow(beta / 2) / V**beta).sum(dim=(1, 2, 3)) / (height * width)


def jitter(images: torch.Tensor, amount: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate by a random integer (t_y, t_x) in [0, amount)^2, circularly, keeping the size.

    A pure translation (004, section 3.2.3): every output pixel is an input pixel, nothing is
    resized or interpolated, so the network sees the image at its own scale. The paper crops a
    canvas T - 1 pixels larger than the network input; here the image wraps around instead, so
    the optimized image keeps the size the network expects. One shift per call for the whole
    batch; ``amount`` <= 1 returns the images.

    Parameters
    ----------
    images : tensor (n_images, 3, H, W)
    amount : int
        T: shifts are drawn from 0 .. T - 1 along each axis.
    generator : torch.Generator, optional

    Returns
    -------
    tensor (n_images, 3, H, W)
        ``out[..., v, u] = images[..., (v + t_y) % H, (u + t_x) % W]``.
    """
    if amount <= 1:
        return images
    ty, tx = torch.randint(0, amount, (2,), generator=generator).tolist()
    return torch.roll(images, shifts=(-ty, -tx), dims=(-2, -1))


@dataclass(frozen=True)
class RandomTransforms:
    """Random translation, scaling and rotation of each image before the network sees it.

    Transformation robustness (Olah et al. 2017, "Feature Visualization"; lucid's standard
    transforms jitter by up to 8 and then 4 px, scale by 0.9-1.1 and rotate by up to 10
    degrees): an image that excites a unit under all these transforms cannot rely on
    pixel-exact high-frequency patterns. Beyond paper 004, whose only transform is `jitter`.
    Each image of the batch gets its own transform, drawn from ``generator``; one affine
    resampling (bilinear, edges reflected) applies it, so the output keeps the input's size.

    Parameters
    ----------
    translate : int
        Shifts uniform in [-translate, translate] pixels along each axis.
    scale : (float, float)
        Zoom factors uniform in this range (> 1 enlarges).
    degrees : float
        Rotations uniform in [-degrees, degrees].

    Examples
    --------
    >>> import torch
    >>> from brainprobe.synth import RandomTransforms
    >>> seen = RandomTransforms()(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    >>> tuple(seen.shape)
    (2, 3, 64, 64)
    """

    translate: int = 12
    scale: tuple = (0.9, 1.1)
    degrees: float = 10.0

    def __post_init__(self):
        low, high = self.scale
        if self.translate < 0 or self.degrees < 0 or not 0 < low <= high:
            raise ValueError(f"RandomTransforms: expected translate >= 0, degrees >= 0 and 0 < scale[0] <= scale[1], "
                             f"found {self.translate}, {self.degrees}, {self.scale}")

    def matrices(self, n: int, size: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        """Affine matrices (n, 2, 3) mapping output to input coordinates in [-1, 1] units."""
        height, width = size
        draws = torch.rand(n, 4, generator=generator, dtype=torch.float64)
        low, high = self.scale
        zoom = low + (high - low) * draws[:, 0]
        angle = math.radians(self.degrees) * (2 * draws[:, 1] - 1)
        shift = torch.round(self.translate * (2 * draws[:, 2:] - 1))  # whole pixels (y, x)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        matrix = torch.zeros(n, 2, 3, dtype=torch.float64)
        matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, -sin, sin, cos
        matrix[:, 0, 2] = 2 * shift[:, 1] / width
        matrix[:, 1, 2] = 2 * shift[:, 0] / height
        return matrix

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        matrix = self.matrices(len(images), tuple(images.shape[-2:]), generator).to(images.device, images.dtype)
        grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@dataclass(frozen=True)
class PreImagePrior:
    """R_alpha + R_TV^beta with the paper's constants, in a network's input units.

    Parameters
    ----------
    alpha, beta, B, B_plus, V : float
        In the paper's units (Caffe input: 0-255 minus the mean). ``B_plus`` defaults to 2B and
        ``V`` to B / 6.5.
    alpha_weight, tv_weight : float
        0 switches a term off.
    mean, std : 3 floats
        The network's input normalization (use `for_model`).
    """

    alpha: float = 6.0
    beta: float = 2.0
    B: float = 80.0
    B_plus: float | None = None
    V: float | None = None
    alpha_weight: float = 1.0
    tv_weight: float = 1.0
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    @classmethod
    def for_model(cls, model, **constants) -> PreImagePrior:
        """The prior in ``model``'s input units (its mean and std)."""
        mean = tuple(float(v) for v in model.mean.flatten())
        std = tuple(float(v) for v in model.std.flatten())
        return cls(mean=mean, std=std, **constants)

    @property
    def caffe_units_per_input_unit(self) -> float:
        return CAFFE_RANGE * sum(self.std) / 3

    def _scaled(self, value: float) -> float:
        return value / self.caffe_units_per_input_unit

    @property
    def bounds(self) -> dict:
        """B, B+ and V in the network's input units."""
        b_plus = self.B_plus if self.B_plus is not None else 2 * self.B
        v = self.V if self.V is not None else self.B / 6.5
        return {"B": self._scaled(self.B), "B_plus": self._scaled(b_plus), "V": self._scaled(v)}

    def input_units(self, images: torch.Tensor) -> torch.Tensor:
        """z = (x - mean) / std: what the network sees."""
        mean = torch.as_tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    @property
    def paper_units_per_pixel(self) -> float:
        """Paper units (0-255 intensities) per pixel unit ([0, 1]): what 004's Algorithm 1 steps in."""
        return CAFFE_RANGE

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        z = self.input_units(images)
        bounds = self.bounds
        value = torch.zeros(len(images), dtype=images.dtype, device=images.device)
        if self.alpha_weight:
            value = value + self.alpha_weight * alpha_norm(z, alpha=self.alpha, B=bounds["B"])
        if self.tv_weight:
            value = value + self.tv_weight * tv_beta(z, beta=self.beta, V=bounds["V"])
        return value

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Project each pixel's RGB vector (input units) onto the ball of radius B+."""
        z = self.input_units(images)
        norms = z.pow(2).sum(dim=1, keepdim=True).sqrt()
        bound = self.bounds["B_plus"]
        scale = torch.where(norms > bound, bound / norms.clamp_min(1e-12), torch.ones_like(norms))
        mean = torch.as_tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return z * scale * std + mean

    def learning_rate(self, n_pixels: int, fraction: float = 0.01) -> float:
        """eta_0 of 004's Algorithm 1, in paper units: ``fraction`` x B^2 / alpha x H W.

        The paper derives B^2 / alpha from one step of the alpha-norm prior and takes 1 % of it;
        its priors are means over the H W pixels, so their gradient per pixel carries a 1 / (H W)
        that the released code compensates by multiplying the rate by the number of pixels.
        """
        return fraction * self.B**2 / self.alpha * n_pixels
