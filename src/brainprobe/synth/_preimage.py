"""Natural pre-images (paper 004): inversion, activation maximization, caricaturization.

Each method is a synthesis object: validated in ``__init__``, run by ``synthesize(max_iter)``,
results as attributes (``images``, ``losses``, ...), with ``save`` / ``load`` / ``to``. All share
the optimization core (`optimize_pixels`) and minimize the paper's energy
R_alpha + R_TV^beta + C * loss for 300 iterations.

The optimizer defaults to Adam (lr 0.01 in pixel units), not the paper's AdaGrad-momentum
(Algorithm 1, available as ``optimizer="adagrad_momentum"``). Measured on torchvision AlexNet and
EfficientNet-Lite0 (C = 300, 300 iterations, two photographs): with the paper's learning-rate rule
eta_0 = 0.01 B^2 / alpha the conv1 inversion barely moves (error 0.85-0.93); the rule ignores the
1 / (H W) area normalization of the prior, and scaling eta_0 by H W makes the energy diverge on
deeper layers; Adam reaches errors of 0.04-0.15 on conv1 / stem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._images import as_image_tensor
from ..models import IMAGENET_MEAN, LayeredModel
from ._core import optimize_pixels
from ._persistence import read_synthesis, write_synthesis
from ._regularizers import PreImagePrior, jitter

__all__ = ["PreImageSynthesis", "Inversion", "ActivationMaximization", "Caricature", "receptive_field_size"]


def receptive_field_size(model: LayeredModel, layer: str, *, size: int | None = None) -> int:
    """Side (pixels) of the input region that the centre unit of ``layer`` depends on.

    Measured from the support of one unit's gradient with respect to a random input, so it works
    for any architecture (paper 004's rho, reported there per layer in its Table 1).
    """
    size = size or model.input_size
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator, device="cpu").to(model.device).requires_grad_(True)
    output = model.layer_outputs(image, [layer], validate=False)[layer]
    flat = output.reshape(1, -1)
    if output.ndim == 4:
        index = np.ravel_multi_index((output.shape[1] // 2, output.shape[2] // 2, output.shape[3] // 2), output.shape[1:])
    else:
        index = flat.shape[1] // 2
    (grad,) = torch.autograd.grad(flat[0, index], image, allow_unused=True)
    if grad is None:
        return size
    support = (grad.abs().sum(dim=1)[0] > 0).nonzero()
    if len(support) == 0:
        return size
    extent = (support.max(dim=0).values - support.min(dim=0).values + 1).max()
    return int(extent)


class PreImageSynthesis:
    """Shared machinery of the 004 methods: the energy, the optimizer, results, persistence.

    Subclasses set ``self.start`` (initial images) and implement ``_loss(features, index)``.
    """

    method = "preimage"

    def __init__(self, model: LayeredModel, layer: str, *, C: float = 1.0, prior: PreImagePrior | None = None,
                 jitter_amount: int = 0, optimizer: str = "adam", lr: float | None = None, seed: int = 0):
        if not isinstance(model, LayeredModel):
            raise TypeError(f"model: expected a LayeredModel, found {type(model).__name__}")
        model.resolve_layer(layer)
        if C <= 0:
            raise ValueError(f"C: expected a positive weight of the data term, found {C}")
        if jitter_amount < 0:
            raise ValueError(f"jitter_amount: expected >= 0, found {jitter_amount}")
        self.model, self.layer, self.C = model, layer, float(C)
        self.prior = prior if prior is not None else PreImagePrior.for_model(model)
        self.jitter_amount, self.optimizer, self.seed = int(jitter_amount), optimizer, int(seed)
        self.lr = float(lr) if lr is not None else (
            self.prior.initial_learning_rate if optimizer == "adagrad_momentum" else 0.01)
        self.images: torch.Tensor | None = None
        self.losses = np.zeros((0, 0))
        self.n_iter = 0

    # -- the energy ------------------------------------------------------------------------------
    def _features(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        shifted = jitter(images, self.jitter_amount, generator)
        return self.model.layer_outputs(shifted, [self.layer], validate=False)[self.layer]

    def _loss(self, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # each method defines its data term

    def energy(self, images: torch.Tensor, index: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """R_alpha + R_TV + C x loss for each image (no jitter unless a generator is given)."""
        index = torch.arange(len(images), device=images.device) if index is None else index
        features = (self._features(images, generator) if generator is not None
                    else self.model.layer_outputs(images, [self.layer], validate=False)[self.layer])
        return self.prior(images) + self.C * self._loss(features, index)

    def synthesize(self, max_iter: int = 300, *, progress: bool | None = None, device=None):
        """Run the optimization (the paper: 300 iterations). Returns self."""
        device = torch.device(device) if device is not None else self.model.device
        self.model.to(device)
        generator = torch.Generator().manual_seed(self.seed)

        def objective(images, index):
            return self.energy(images, index, generator), {}

        result = optimize_pixels(self.start, objective, optimizer=self.optimizer, lr=self.lr, max_iter=max_iter,
                                 project=self.prior.project, units=self.prior.units_per_pixel(device), device=device,
                                 progress=progress, desc=self.method)
        self.images = result.images
        self.losses = result.loss_history
        self.n_iter = int(result.n_iter.max()) if len(result.n_iter) else 0
        return self

    # -- persistence -----------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"start": self.start, "images": self.images}

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save results and settings (not the network) with ``torch.save``; load with `load`."""
        settings = {"method": self.method, "layer": self.layer, "C": self.C, "jitter_amount": self.jitter_amount,
                    "optimizer": self.optimizer, "lr": self.lr, "seed": self.seed, "n_iter": self.n_iter,
                    "model": self.model.name}
        return write_synthesis(path, settings, self._state(), self.losses, overwrite=overwrite)

    def _restore(self, saved: dict) -> None:
        self.images = saved.get("images")
        self.losses = saved["losses"].numpy()

    @classmethod
    def load(cls, path, model: LayeredModel):
        """Read a file written by `save` (tensors only: ``torch.load(weights_only=True)``)."""
        settings, saved = read_synthesis(path, cls.method)
        obj = cls._from_saved(model, settings, saved)
        obj._restore(saved)
        obj.n_iter = settings["n_iter"]
        return obj

    def to(self, device):
        """Move the network and every tensor attribute to ``device``. Returns self."""
        self.model.to(device)
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self


def _noise_start(n: int, size: int, seed: int) -> torch.Tensor:
    """004's random i.i.d. noise start, around the mean pixel (the paper's images are zero-mean)."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (mean + 0.05 * torch.randn(n, 3, size, size, generator=generator)).clamp(0, 1)


class Inversion(PreImageSynthesis):
    """Reconstruct images from one layer's representation (paper 004, eqs. 2-3).

    Parameters
    ----------
    model : LayeredModel
    images : tensor (n_images, 3, H, W) in [0, 1] or StimulusSet
        The images whose representation Phi_0 is inverted (only Phi_0 is used).
    layer : str
    mask : tensor broadcastable to the layer output (1, ...), optional
        Restricts the loss to some components (eq. 3): channels, a spatial window, ...
    C : float
        Weight of the data term; the paper uses 1, 20, 100 or 300 (300: the most faithful).
    prior, jitter_amount, optimizer, lr, seed
        As in `PreImageSynthesis`; the optimization starts from random noise.

    Attributes
    ----------
    images : tensor (n_images, 3, H, W)
        The pre-images, after `synthesize`.
    reconstruction_error_ : array (n_images,)
        ||Phi(x*) - Phi_0|| / ||Phi_0|| (paper 004, Table 5), after `synthesize`.

    Examples
    --------
    >>> from brainprobe.synth import Inversion
    >>> inv = Inversion(model, images, "conv1", C=300).synthesize(300)  # doctest: +SKIP
    >>> inv.reconstruction_error_                                       # doctest: +SKIP
    """

    method = "inversion"

    def __init__(self, model, images, layer, *, mask=None, C: float = 300.0, **options):
        super().__init__(model, layer, C=C, **options)
        self.targets_images = as_image_tensor(images).detach().cpu()
        with torch.no_grad():
            self.target = model.layer_outputs(self.targets_images.to(model.device), [layer])[layer].cpu()
        self.mask = None if mask is None else torch.as_tensor(mask, dtype=self.target.dtype)
        if self.mask is not None:
            try:
                torch.broadcast_shapes(self.mask.shape, self.target.shape)
            except RuntimeError:
                raise ValueError(f"mask: shape {tuple(self.mask.shape)} does not broadcast to the layer output "
                                 f"{tuple(self.target.shape)}") from None
        height, width = self.targets_images.shape[-2:]
        if height != width:
            raise ValueError(f"images: expected square images, found {height}x{width}")
        self.start = _noise_start(len(self.targets_images), height, self.seed)
        self.reconstruction_error_ = None

    def _loss(self, features, index):
        target = self.target.to(features.device)[index]
        mask = self.mask.to(features.device) if self.mask is not None else 1.0
        difference = ((features - target) * mask).flatten(1).pow(2).sum(dim=1)
        return difference / (target * mask).flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)

    def synthesize(self, max_iter: int = 300, **options):
        super().synthesize(max_iter, **options)
        self.reconstruction_error_ = self.reconstruction_error(self.images)
        return self

    def reconstruction_error(self, images) -> np.ndarray:
        """||Phi(images) - Phi_0|| / ||Phi_0|| per image (masked when a mask is set)."""
        with torch.no_grad():
            features = self.model.layer_outputs(as_image_tensor(images).to(self.model.device), [self.layer])[self.layer]
            index = torch.arange(len(features), device=features.device)
            return self._loss(features, index).sqrt().cpu().numpy()

    def _state(self):
        return {**super()._state(), "targets_images": self.targets_images,
                **({"mask": self.mask} if self.mask is not None else {})}

    @classmethod
    def _from_saved(cls, model, settings, saved):
        obj = cls(model, saved["targets_images"], settings["layer"], mask=saved.get("mask"), C=settings["C"],
                  jitter_amount=settings["jitter_amount"], optimizer=settings["optimizer"], lr=settings["lr"],
                  seed=settings["seed"])
        return obj

    def _restore(self, saved):
        super()._restore(saved)
        if self.images is not None:
            self.reconstruction_error_ = self.reconstruction_error(self.images)


class ActivationMaximization(PreImageSynthesis):
    """Images that maximally excite a unit, a channel or a direction of a layer (paper 004, eq. 4).

    The loss is -<Phi(x), Phi_0> / Z with Z = 1 / (M rho^2): M the component's largest value over
    ``reference_images`` (the paper: the ImageNet validation set; default the bundled photographs)
    and rho the receptive-field side (measured, see `receptive_field_size`). C = 1 and jitter of a
    quarter of the layer's stride, as in the paper (``jitter_amount``, default 0: set it per layer).

    Parameters
    ----------
    model : LayeredModel
    layer : str
    unit : int, optional
        Flat index of one component of the layer output.
    channel : int, optional
        A channel of a convolutional layer (all positions).
    direction : tensor shaped like one layer output, optional
        Any non-negative weighting of components.
    n_images : int
        Independent restarts (different noise starts), optimized together.
    reference_images : tensor or StimulusSet, optional
    """

    method = "activation_maximization"

    def __init__(self, model, layer, *, unit: int | None = None, channel: int | None = None, direction=None,
                 n_images: int = 1, reference_images=None, size: int | None = None, C: float = 1.0, **options):
        super().__init__(model, layer, C=C, **options)
        given = [v is not None for v in (unit, channel, direction)]
        if sum(given) != 1:
            raise ValueError("give exactly one of unit=, channel= or direction=")
        self.size = size or model.input_size
        with torch.no_grad():
            probe = model.layer_outputs(torch.zeros(1, 3, self.size, self.size, device=model.device), [layer])[layer]
        shape = probe.shape[1:]
        weights = torch.zeros(shape)
        if unit is not None:
            if not 0 <= unit < weights.numel():
                raise ValueError(f"unit: expected 0..{weights.numel() - 1}, found {unit}")
            weights.view(-1)[unit] = 1.0
        elif channel is not None:
            if len(shape) != 3 or not 0 <= channel < shape[0]:
                raise ValueError(f"channel: expected 0..{shape[0] - 1} of a convolutional layer {tuple(shape)}")
            weights[channel] = 1.0
        else:
            weights = torch.as_tensor(direction, dtype=torch.float32).reshape(shape)
        self.weights = weights
        if reference_images is None:
            from ..stimuli import sample_images

            reference_images = sample_images(size=self.size)
        with torch.no_grad():
            reference = model.layer_outputs(as_image_tensor(reference_images).to(model.device), [layer])[layer].cpu()
        self.max_response = float((reference * weights).flatten(1).sum(dim=1).max().clamp_min(1e-6))
        self.receptive_field = receptive_field_size(model, layer, size=self.size)
        self.Z = 1.0 / (self.max_response * self.receptive_field**2)
        self.start = _noise_start(n_images, self.size, self.seed)

    def _score(self, features):
        weights = self.weights.to(features.device)
        if features.shape[1:] != weights.shape:  # jitter crops the image, so maps shrink: align at the top left
            slices = tuple(slice(0, min(a, b)) for a, b in zip(features.shape[1:], weights.shape, strict=True))
            features, weights = features[(slice(None), *slices)], weights[slices]
        return (features * weights).flatten(1).sum(dim=1)

    def _loss(self, features, index):
        return -self._score(features) / self.Z

    def response(self, images) -> np.ndarray:
        """<Phi(images), Phi_0>: the maximized quantity, per image."""
        with torch.no_grad():
            features = self.model.layer_outputs(as_image_tensor(images).to(self.model.device), [self.layer])[self.layer]
            return self._score(features).cpu().numpy()

    def _state(self):
        return {**super()._state(), "weights": self.weights}

    @classmethod
    def _from_saved(cls, model, settings, saved):
        return cls(model, settings["layer"], direction=saved["weights"], n_images=len(saved["start"]), C=settings["C"],
                   jitter_amount=settings["jitter_amount"], optimizer=settings["optimizer"], lr=settings["lr"],
                   seed=settings["seed"])


class Caricature(PreImageSynthesis):
    """Exaggerate what a layer detects in an image (paper 004, section 7).

    Phi_0 = max(0, Phi(x_0)), Z = 1 / ||Phi_0||, and the optimization starts from x_0 itself.
    """

    method = "caricature"

    def __init__(self, model, images, layer, *, C: float = 1.0, **options):
        super().__init__(model, layer, C=C, **options)
        self.start = as_image_tensor(images).detach().cpu().clone()
        with torch.no_grad():
            self.reference = model.layer_outputs(self.start.to(model.device), [layer])[layer].clamp_min(0).cpu()
        self.norms = self.reference.flatten(1).norm(dim=1).clamp_min(1e-12)

    def _loss(self, features, index):
        reference = self.reference.to(features.device)[index]
        if features.shape != reference.shape:
            slices = tuple(slice(0, min(a, b)) for a, b in zip(features.shape[1:], reference.shape[1:], strict=True))
            features, reference = features[(slice(None), *slices)], reference[(slice(None), *slices)]
        # -<Phi(x), Phi_0> / Z with Z = 1 / ||Phi_0||
        return -(features * reference).flatten(1).sum(dim=1) * self.norms.to(features.device)[index]

    def alignment(self, images) -> np.ndarray:
        """<Phi(images), Phi_0>, the exaggerated quantity, per image."""
        with torch.no_grad():
            features = self.model.layer_outputs(as_image_tensor(images).to(self.model.device), [self.layer])[self.layer].cpu()
            return (features * self.reference).flatten(1).sum(dim=1).numpy()

    @classmethod
    def _from_saved(cls, model, settings, saved):
        return cls(model, saved["start"], settings["layer"], C=settings["C"], jitter_amount=settings["jitter_amount"],
                   optimizer=settings["optimizer"], lr=settings["lr"], seed=settings["seed"])
