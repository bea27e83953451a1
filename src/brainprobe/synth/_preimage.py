"""Natural pre-images (paper 004): inversion, activation maximization, caricaturization.

Each method is a synthesis object: validated in ``__init__``, run by ``synthesize(max_iter)``,
results as attributes (``images``, ``losses``, ...), with ``save`` / ``load`` / ``to``. All share
the optimization core (`optimize_pixels`) and minimize the paper's energy
R_alpha + R_TV^beta + C * loss for 300 iterations.

Optimizers, measured on EfficientNet-Lite0 with its ImageNet weights on CPU (one bundled
photograph at 224 px; ``/tmp`` scripts, numbers in the issue-16 report):

- inversion (C = 300, 150 steps, then the 50-step second phase): 004's Algorithm 1 in the
  paper's units and rate gives a block4 error of 0.181 (0.160 after the second phase), Adam
  (lr 0.01) 0.230 (0.213); at the stem both reach 0.063.
- activation maximization of class 281 at the logits (300 steps, the paper's priors, jitter
  8 px): Algorithm 1 reaches p = 0.9997 with a total variation of 0.035 (energy 0.45), Adam
  p = 0.994 with 0.038 (energy 0.61).

Every method therefore defaults to ``adagrad_momentum``; ``optimizer="adam"`` remains.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._device import resolve_device
from .._images import as_image_tensor
from ..models import IMAGENET_MEAN, LayeredModel
from ._core import optimize_pixels
from ._parameterization import FourierParameterization
from ._persistence import read_synthesis, write_synthesis
from ._regularizers import PreImagePrior, RandomTransforms, jitter
from ._synthesis import Synthesis, check_saved_model

__all__ = ["PreImageSynthesis", "Inversion", "ActivationMaximization", "Caricature", "receptive_field_size",
           "layer_stride", "leaky_relu", "layer_maximum"]


def receptive_field_size(model: LayeredModel, layer: str, *, size: int | None = None, n_probes: int = 4,
                         seed: int = 0) -> int:
    """Side (pixels) of the input region that one unit of ``layer`` depends on (paper 004's rho).

    Measured from the support of the gradient, with respect to ``n_probes`` random images, of a
    random positive combination of every channel at the centre position of the layer (every
    unit of a vector layer). All channels at one position share one receptive field, and a
    position is unlikely to be inactive in every channel of every probe, so the union of their
    gradient supports is the receptive field even where single units are silent (a single unit
    that is inactive has no gradient at all). Works for any architecture; a field larger than the
    image is reported as the image side.

    Parameters
    ----------
    model : LayeredModel
    layer : str
    size : int, optional
        Image side in pixels (default the network's input size).
    n_probes : int
        Random images whose supports are united.
    seed : int

    Returns
    -------
    int
        For torchvision AlexNet at 224 px: conv1 11, conv2 51 (the layer arithmetic).
    """
    size = size or model.input_size
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n_probes, 3, size, size, generator=generator).to(model.device).requires_grad_(True)
    output = model.layer_outputs(images, [layer], validate=False)[layer]
    centre = output[:, :, output.shape[2] // 2, output.shape[3] // 2] if output.ndim == 4 else output.flatten(1)
    weights = 0.5 + torch.rand(centre.shape[1], generator=generator).to(centre.device)
    (grad,) = torch.autograd.grad((centre * weights).sum(), images, allow_unused=True)
    if grad is None:
        return size
    support = (grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    if len(support) == 0:
        return size
    return int((support.max(dim=0).values - support.min(dim=0).values + 1).max())


def layer_stride(model: LayeredModel, layer: str, *, size: int | None = None) -> int:
    """Step in pixels between neighbouring units of ``layer`` (004's stride, Tables 1-3).

    Image side over the layer's map side; for a layer without a spatial map (fully connected,
    pooled), the stride of the network's coarsest map, as the paper's tables list for fc layers.
    """
    size = size or model.input_size
    with torch.no_grad():
        probe = torch.zeros(1, 3, size, size, device=model.device)
        output = model.layer_outputs(probe, [layer], validate=False)[layer]
        if output.ndim == 4:
            return max(1, round(size / output.shape[-1]))
        sides = [value.shape[-1] for value in model.layer_outputs(probe, model.layer_names, validate=False,
                                                                  stop_early=False).values() if value.ndim == 4]
    return max(1, round(size / min(sides))) if sides else size


@contextlib.contextmanager
def leaky_relu(model: LayeredModel, leak: float):
    """Within the block, every ``nn.ReLU`` / ``nn.ReLU6`` module of the network leaks: negative
    inputs give ``leak`` x input instead of 0 (the upper clip of ReLU6 is kept).

    Paper 004's released code maximizes activations through leaky ReLUs (leak 0.05), so that
    units silenced by the random start still pass a gradient. ReLUs applied as functions
    (``torch.relu`` in ``forward``) are not reached: the block raises ``ValueError`` when the
    network has no ReLU module at all.

    Yields
    ------
    int
        The number of ReLU modules made leaky.
    """
    if leak < 0:
        raise ValueError(f"leak: expected a slope >= 0, found {leak}")
    modules = [m for m in model.network.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if leak > 0 and not modules:
        raise ValueError(f"model {model.name!r} has no nn.ReLU / nn.ReLU6 module (ReLUs applied as functions "
                         "cannot be made leaky); pass leak=0")
    saved: list = []

    def keep_input(_module, inputs):
        saved.append(inputs[0].clamp(max=0))  # before an in-place ReLU overwrites it

    def add_leak(_module, _inputs, output):
        return output + leak * saved.pop()

    handles = []
    if leak > 0:
        for module in modules:
            handles += [module.register_forward_pre_hook(keep_input), module.register_forward_hook(add_leak)]
    try:
        yield len(modules) if leak > 0 else 0
    finally:
        for handle in handles:
            handle.remove()


class PreImageSynthesis(Synthesis):
    """Shared machinery of the 004 methods: the energy, the optimizer, results, persistence.

    Subclasses set ``self.start`` (initial images) and implement ``_loss(features, index)``.

    Parameters
    ----------
    model : LayeredModel
    layer : str
    C : float
        Weight of the data term.
    prior : PreImagePrior, optional
        Default: the paper's constants in ``model``'s input units.
    jitter_amount : int
        T of 004's jitter (a random integer translation in [0, T)^2 at each step); 0 or 1: none.
    optimizer : {"adagrad_momentum", "adam", "sgd"}, optional
        ``adagrad_momentum`` (the default on pixels, chosen by measurement: see the module
        notes) is 004's Algorithm 1 run in the paper's units (0-255 intensities) with its rate
        eta_0 = 0.01 B^2 / alpha x H W (`PreImagePrior.learning_rate`). With a
        ``parameterization`` the default, and the only rule-free choice, is Adam.
    lr : float, optional
        Default: 0.01 for Adam on pixels, the paper's eta_0 for ``adagrad_momentum``, the
        parameterization's ``lr`` with one.
    parameterization : {"pixels", "fourier"} or FourierParameterization, optional
        What the optimizer steps in (beyond paper 004, which steps in pixels; the default).
        ``"fourier"``: `FourierParameterization()` (lucid's decorrelated, 1 / f scaled
        spectrum). The priors and the data term still see the pixels; 004's B+ pixel-norm
        projection does not apply (the parameterization bounds the pixels itself).
    transforms : RandomTransforms, optional
        Random translation, scale and rotation of each image, after the jitter, at every step
        of the first phase (lucid's transformation robustness; beyond paper 004). Default none.
    second_phase : int, optional
        Steps of a second phase after ``max_iter``: rate / 10, no jitter, fresh optimizer state
        (as 004's released code does after inversion). Default: the method's (`Inversion` 50,
        otherwise 0).
    seed : int
    """

    method = "preimage"
    default_second_phase = 0

    def __init__(self, model: LayeredModel, layer: str, *, C: float = 1.0, prior: PreImagePrior | None = None,
                 jitter_amount: int = 0, optimizer: str | None = None, lr: float | None = None,
                 second_phase: int | None = None, seed: int = 0, parameterization=None,
                 transforms: RandomTransforms | None = None):
        if not isinstance(model, LayeredModel):
            raise TypeError(f"model: expected a LayeredModel, found {type(model).__name__}")
        model.resolve_layer(layer)
        if C <= 0:
            raise ValueError(f"C: expected a positive weight of the data term, found {C}")
        if jitter_amount < 0:
            raise ValueError(f"jitter_amount: expected >= 0, found {jitter_amount}")
        parameterization = _as_parameterization(parameterization)
        if optimizer is None:
            optimizer = "adagrad_momentum" if parameterization is None else "adam"
        if optimizer not in ("adam", "adagrad_momentum", "sgd"):
            raise ValueError(f"optimizer: expected 'adam', 'adagrad_momentum' or 'sgd', found {optimizer!r}")
        if optimizer == "adagrad_momentum" and parameterization is not None:
            raise ValueError("optimizer='adagrad_momentum' is paper 004's Algorithm 1 in pixel units; with a "
                             "parameterization use 'adam' or 'sgd'")
        if transforms is not None and not isinstance(transforms, RandomTransforms):
            raise TypeError(f"transforms: expected a RandomTransforms, found {type(transforms).__name__}")
        second_phase = self.default_second_phase if second_phase is None else int(second_phase)
        if second_phase < 0:
            raise ValueError(f"second_phase: expected a number of steps >= 0, found {second_phase}")
        self.model, self.layer, self.C = model, layer, float(C)
        self.prior = prior if prior is not None else PreImagePrior.for_model(model)
        self.jitter_amount, self.optimizer, self.seed = int(jitter_amount), optimizer, int(seed)
        self.second_phase = second_phase
        self.lr = None if lr is None else float(lr)
        self.parameterization, self.transforms = parameterization, transforms
        self.images: torch.Tensor | None = None
        self.losses = np.zeros((0, 0))
        self.history: dict[str, np.ndarray] = {}
        self.n_iter = np.zeros(0, dtype=int)

    def learning_rate(self, n_pixels: int) -> float:
        """The step size used: ``lr`` if given, else the optimizer's default for images of ``n_pixels``."""
        if self.lr is not None:
            return self.lr
        if self.parameterization is not None:
            return self.parameterization.lr
        return self.prior.learning_rate(n_pixels) if self.optimizer == "adagrad_momentum" else 0.01

    # -- the energy ------------------------------------------------------------------------------
    def _features(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if generator is not None:  # the first phase: 004's jitter, then the optional random transforms
            images = jitter(images, self.jitter_amount, generator)
            if self.transforms is not None:
                images = self.transforms(images, generator)
        return self.model.layer_outputs(images, [self.layer], validate=False)[self.layer]

    def _loss(self, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # each method defines its data term

    def _context(self):
        """Changes to the network during the optimization (none here; see `ActivationMaximization`)."""
        return contextlib.nullcontext()

    def energy(self, images: torch.Tensor, index: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """R_alpha + R_TV + C x loss for each image, shape (n_images,) (jittered when a generator is given)."""
        return self._energy_terms(images, index, generator)[0]

    def _energy_terms(self, images, index=None, generator=None) -> tuple[torch.Tensor, dict]:
        """The energy and its parts per image: ``prior`` (R_alpha + R_TV) and ``data`` (the loss)."""
        index = torch.arange(len(images), device=images.device) if index is None else index
        prior = self.prior(images)
        data = self._loss(self._features(images, generator), index)
        return prior + self.C * data, {"prior": prior.detach(), "data": data.detach()}

    def synthesize(self, max_iter: int = 300, *, progress: bool | None = None, device=None):
        """Run the optimization (the paper: 300 iterations), then the second phase. Returns self."""
        device = resolve_device(device) if device is not None else self.model.device
        self.model.to(device)
        generator = torch.Generator().manual_seed(self.seed)
        n_pixels = int(self.start.shape[-2] * self.start.shape[-1])
        units = self.prior.paper_units_per_pixel if self.optimizer == "adagrad_momentum" else 1.0
        randomized = self.jitter_amount > 1 or self.transforms is not None
        phases = [(max_iter, self.learning_rate(n_pixels), generator if randomized else None)]
        if self.second_phase:
            phases.append((self.second_phase, 0.1 * self.learning_rate(n_pixels), None))
        images, results, steps = self.start, [], 0
        with self._context():
            for n_steps, lr, phase_generator in phases:

                def objective(batch, index, phase_generator=phase_generator):
                    return self._energy_terms(batch, index, phase_generator)

                result = optimize_pixels(images, objective, optimizer=self.optimizer, lr=lr, max_iter=n_steps,
                                         project=self.prior.project if self.parameterization is None else None,
                                         units=units, parameterization=self.parameterization, device=device,
                                         progress=progress, desc=self.method)
                images = result.images
                results.append(result)
                steps += int(result.n_iter.max()) if len(result.n_iter) else 0
        self.images = images
        self.losses = np.concatenate([r.loss_history for r in results]) if results else np.zeros((0, len(images)))
        self.history = _concatenate_histories([r.aux_history for r in results], [len(r.loss_history) for r in results],
                                              len(images))
        self.n_iter = np.full(len(images), steps)
        return self

    # -- persistence -----------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"start": self.start, "images": self.images,
                **{f"history/{key}": torch.from_numpy(value) for key, value in self.history.items()}}

    def _settings(self) -> dict:
        return {"method": self.method, "layer": self.layer, "C": self.C, "jitter_amount": self.jitter_amount,
                "optimizer": self.optimizer, "lr": self.lr, "second_phase": self.second_phase, "seed": self.seed,
                "n_iter": np.asarray(self.n_iter).tolist(), "model": self.model.name,
                "parameterization": None if self.parameterization is None else vars(self.parameterization),
                "transforms": None if self.transforms is None else vars(self.transforms)}

    @staticmethod
    def _saved_options(settings: dict) -> dict:
        transforms = settings.get("transforms")
        fourier = settings.get("parameterization")
        return {"optimizer": settings["optimizer"], "lr": settings["lr"], "seed": settings["seed"],
                "second_phase": settings.get("second_phase"),
                "parameterization": None if fourier is None else FourierParameterization(**fourier),
                "transforms": None if transforms is None else RandomTransforms(**{**transforms,
                                                                                  "scale": tuple(transforms["scale"])})}

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save results and settings (not the network) with ``torch.save``; load with `load`."""
        return write_synthesis(path, self._settings(), self._state(), self.losses, overwrite=overwrite)

    def _restore(self, saved: dict) -> None:
        self.images = saved.get("images")
        self.losses = saved["losses"].numpy()
        self.history = {key.split("/", 1)[1]: value.numpy() for key, value in saved.items()
                        if key.startswith("history/")}

    @classmethod
    def load(cls, path, model: LayeredModel):
        """Read a file written by `save` (tensors only: ``torch.load(weights_only=True)``)."""
        settings, saved = read_synthesis(path, cls.method)
        check_saved_model(path, settings, model)
        obj = cls._from_saved(model, settings, saved)
        obj._restore(saved)
        obj.n_iter = np.broadcast_to(np.asarray(settings["n_iter"], dtype=int), (len(obj.start),)).copy()
        return obj

    def to(self, device):
        """Move the network and every tensor attribute to ``device``. Returns self."""
        self.model.to(device)
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self


def _as_parameterization(value):
    """None for pixels; a `FourierParameterization` for ``"fourier"`` or one given."""
    if value is None or (isinstance(value, str) and value == "pixels"):
        return None
    if isinstance(value, str) and value == "fourier":
        return FourierParameterization()
    if isinstance(value, FourierParameterization):
        return value
    raise ValueError(f"parameterization: expected 'pixels', 'fourier' or a FourierParameterization, found {value!r}")


def _concatenate_histories(histories: list[dict], lengths: list[int], n_images: int) -> dict[str, np.ndarray]:
    """Join the per-step aux numbers of consecutive phases (NaN where a phase lacks a key)."""
    keys = sorted({key for history in histories for key in history})
    return {key: np.concatenate([history.get(key, np.full((length, n_images), np.nan))
                                 for history, length in zip(histories, lengths, strict=True)]) for key in keys}


def _quarter_stride(model, layer: str, size: int, jitter_amount: int | None) -> int:
    """Paper 004's jitter T (section 5.2, and section 6 for activation maximization): a quarter of
    the layer's stride, rounded (at least 1: no jitter); ``jitter_amount`` when given."""
    if jitter_amount is not None:
        return int(jitter_amount)
    if not isinstance(model, LayeredModel):
        return 0
    return max(1, round(layer_stride(model, layer, size=size) / 4))


def _noise_start(n: int, size: int, seed: int) -> torch.Tensor:
    """004's random i.i.d. noise start, around the mean pixel (the paper's images are zero-mean)."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (mean + 0.05 * torch.randn(n, 3, size, size, generator=generator)).clamp(0, 1)


def layer_maximum(model: LayeredModel, layer: str, images: torch.Tensor, kind: str = "unit", weights=None,
                  *, batch_size: int = 16) -> float:
    """M of paper 004's activation maximization: a statistic of the whole layer, not of one component.

    The paper takes the largest value of the visualized component over the ImageNet validation
    images. Over a small reference set the largest value of one component is a matter of which
    photographs happen to be there (a class logit can stay negative on all of them), so that the
    balance between the data term and the priors changed from one component to the next. Here M
    is the largest value over the reference images of any component of the same kind in the
    layer: the same M for every unit (``"unit"``: largest single value; ``"direction"``: that
    value times the direction's L1 norm) or every channel (``"channel"``: largest channel sum).

    Parameters
    ----------
    model : LayeredModel
    layer : str
    images : tensor (n_images, 3, H, W)
        The reference set.
    kind : {"unit", "channel", "direction"}
    weights : tensor shaped like one layer output, optional
        The direction (``kind="direction"``).

    Returns
    -------
    float
        M > 0. When the layer's largest value is not positive (or not finite), the largest
        absolute value is used and a warning says so.
    """
    largest = -math.inf
    largest_abs = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(model.device)
            output = model.layer_outputs(batch, [layer], validate=False)[layer].float()
            values = output.flatten(2).sum(dim=2) if kind == "channel" and output.ndim > 2 else output.flatten(1)
            largest = max(largest, float(values.max()))
            largest_abs = max(largest_abs, float(values.abs().max()))
    scale = float(torch.as_tensor(weights).abs().sum()) if kind == "direction" and weights is not None else 1.0
    if not math.isfinite(largest) or largest <= 0:
        warnings.warn(f"activation maximization: layer {layer!r} has no positive {kind} response over the "
                      f"{len(images)} reference images (largest {largest:.3g}); the data term is normalized by the "
                      f"largest absolute value ({largest_abs:.3g}) instead", RuntimeWarning, stacklevel=3)
        largest = largest_abs if math.isfinite(largest_abs) and largest_abs > 0 else 1.0
    return largest * scale


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
    jitter_amount : int, optional
        T; default a quarter of the layer's stride (`layer_stride`), as paper 004 inverts
        (at least 1: no jitter).
    prior, optimizer, lr, second_phase, seed
        As in `PreImageSynthesis`; the optimization starts from random noise and ends with 50
        steps at a tenth of the rate without jitter.

    Attributes
    ----------
    images : tensor (n_images, 3, H, W)
        The pre-images, after `synthesize`.
    losses : array (n_steps, n_images)
        The energy at each step (both phases).
    history : dict of str to array (n_steps, n_images)
        ``prior``, ``data`` (the normalized error) and ``error`` (its square root) at each step
        (`brainprobe.plotting.synthesis_progress` draws them).
    reconstruction_error_ : array (n_images,)
        ||Phi(x*) - Phi_0|| / ||Phi_0|| (paper 004, Table 5), after `synthesize`.

    Examples
    --------
    >>> from brainprobe.synth import Inversion
    >>> inv = Inversion(model, images, "conv1", C=300).synthesize(300)  # doctest: +SKIP
    >>> inv.reconstruction_error_                                       # doctest: +SKIP
    """

    method = "inversion"
    default_second_phase = 50

    def __init__(self, model, images, layer, *, mask=None, C: float = 300.0, jitter_amount: int | None = None,
                 **options):
        self.targets_images = as_image_tensor(images).detach().cpu()
        jitter_amount = _quarter_stride(model, layer, self.targets_images.shape[-1], jitter_amount)
        super().__init__(model, layer, C=C, jitter_amount=jitter_amount, **options)
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

    def _energy_terms(self, images, index=None, generator=None):
        energy, parts = super()._energy_terms(images, index, generator)
        return energy, {**parts, "error": parts["data"].clamp_min(0).sqrt()}  # as reconstruction_error_

    def _loss(self, features, index):
        target = self.target.to(features.device)[index]
        mask = self.mask.to(features.device) if self.mask is not None else 1.0
        difference = ((features - target) * mask).flatten(1).pow(2).sum(dim=1)
        return difference / (target * mask).flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)

    def synthesize(self, max_iter: int = 300, **options):
        super().synthesize(max_iter, **options)
        self.reconstruction_error_ = self.reconstruction_error(self.images)
        return self

    def _table(self):
        return pd.DataFrame({"image": np.arange(len(self.images)), "layer": self.layer,
                             "reconstruction_error": self.reconstruction_error_})

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
        return cls(model, saved["targets_images"], settings["layer"], mask=saved.get("mask"), C=settings["C"],
                   jitter_amount=settings["jitter_amount"], **cls._saved_options(settings))

    def _restore(self, saved):
        super()._restore(saved)
        if self.images is not None:
            self.reconstruction_error_ = self.reconstruction_error(self.images)


class ActivationMaximization(PreImageSynthesis):
    """Images that maximally excite a unit, a channel or a direction of a layer (paper 004, eq. 4).

    The data term is -<Phi(x), Phi_0> / Z with Z = M rho^2 / rho_ref^2: M the largest value of
    any component of the same kind in the layer over ``reference_images`` (`layer_maximum`; the
    paper takes the visualized component's own largest value over the ImageNet validation set,
    which over a dozen photographs depends on which photographs they are; default the bundled
    photographs), rho the receptive-field side (`receptive_field_size`) and rho_ref =
    100 px. Dividing by M rho^2 is what makes the data term comparable to the priors, which are
    means over the image (the paper's section 6 writes the factor as Z = 1 / (M rho^2) inside a
    1 / Z, which read literally multiplies by M rho^2 and leaves the priors without effect); the
    constant rho_ref^2 = 10^4 is the one the authors' released code uses. As in the paper: C = 1
    and jitter of a quarter of the layer's stride (`layer_stride`). The authors' code also makes
    the ReLUs leaky (slope 0.05) while maximizing; that is ``leak=0.05`` here, off by default:
    on EfficientNet-Lite0 (ReLU6, class 281, 300 Adam steps, the paper's priors) it lowered the
    target probability of the unmodified network from 0.994 to 0.62, the leaky network being
    a different network from the one measured. `response` always reads the unmodified network.

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
    size : int, optional
        Image side (default the network's input size).
    C : float
    jitter_amount : int, optional
        T; default round(stride / 4) (at least 1: no jitter).
    leak : float
        Slope of the ReLUs for negative inputs during the optimization (`leaky_relu`); 0 keeps
        the network.
    rho_reference : float
        rho_ref above, in pixels.
    prior, optimizer, lr, seed
        As in `PreImageSynthesis`.

    Attributes
    ----------
    images : tensor (n_images, 3, size, size), after `synthesize`
    losses : array (n_steps, n_images)
        The energy at each step.
    history : dict of str to array (n_steps, n_images)
        ``prior``, ``data`` and ``response`` (<Phi(x), Phi_0> of the jittered image) at each step.
    max_response : float
        M (`layer_maximum`).
    normalizer : str
        What M is, over which reference set.
    receptive_field, stride : int
        rho and the layer's stride, in pixels.
    Z : float
    """

    method = "activation_maximization"

    def __init__(self, model, layer, *, unit: int | None = None, channel: int | None = None, direction=None,
                 n_images: int = 1, reference_images=None, size: int | None = None, C: float = 1.0,
                 jitter_amount: int | None = None, leak: float = 0.0, rho_reference: float = 100.0, **options):
        given = [v is not None for v in (unit, channel, direction)]
        if sum(given) != 1:
            raise ValueError("give exactly one of unit=, channel= or direction=")
        size = size or model.input_size
        stride = layer_stride(model, layer, size=size) if isinstance(model, LayeredModel) else 1
        if jitter_amount is None:
            jitter_amount = max(1, round(stride / 4))
        super().__init__(model, layer, C=C, jitter_amount=jitter_amount, **options)
        if leak < 0:
            raise ValueError(f"leak: expected a slope >= 0, found {leak}")
        if rho_reference <= 0:
            raise ValueError(f"rho_reference: expected a positive side in pixels, found {rho_reference}")
        self.size, self.stride, self.leak, self.rho_reference = size, stride, float(leak), float(rho_reference)
        with leaky_relu(model, self.leak):  # fails early on networks whose ReLUs cannot leak
            pass
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
        self.objective_kind = "unit" if unit is not None else ("channel" if channel is not None else "direction")
        if reference_images is None:
            from ..stimuli import sample_images

            reference_images = sample_images(size=self.size)
        reference_images = as_image_tensor(reference_images)
        self.max_response = layer_maximum(model, layer, reference_images, self.objective_kind, weights)
        self.normalizer = (f"largest {self.objective_kind} response of layer {layer!r} over "
                           f"{len(reference_images)} reference images")
        self.receptive_field = receptive_field_size(model, layer, size=self.size)
        self.Z = self.max_response * self.receptive_field**2 / self.rho_reference**2
        if self.parameterization is None:
            self.start = _noise_start(n_images, self.size, self.seed)
        else:  # lucid's start: a faint random spectrum, a nearly grey image
            self.start = self.parameterization.random(n_images, (self.size, self.size), self.seed)

    def _context(self):
        return leaky_relu(self.model, self.leak)

    def _energy_terms(self, images, index=None, generator=None):
        energy, parts = super()._energy_terms(images, index, generator)
        return energy, {**parts, "response": -parts["data"] * self.Z}  # <Phi(x), Phi_0> as the network saw it

    def _score(self, features):
        return (features * self.weights.to(features.device)).flatten(1).sum(dim=1)

    def _loss(self, features, index):
        return -self._score(features) / self.Z

    def _table(self):
        return pd.DataFrame({"image": np.arange(len(self.images)), "layer": self.layer,
                             "response_start": self.response(self.start), "response": self.response(self.images),
                             "normalizer": self.max_response})

    def response(self, images) -> np.ndarray:
        """<Phi(images), Phi_0> of the unmodified network (no leak): the maximized quantity, per image."""
        with torch.no_grad():
            features = self.model.layer_outputs(as_image_tensor(images).to(self.model.device), [self.layer])[self.layer]
            return self._score(features).cpu().numpy()

    def _state(self):
        return {**super()._state(), "weights": self.weights}

    def _settings(self):
        return {**super()._settings(), "size": self.size, "leak": self.leak, "rho_reference": self.rho_reference,
                "max_response": self.max_response}

    @classmethod
    def _from_saved(cls, model, settings, saved):
        obj = cls(model, settings["layer"], direction=saved["weights"], n_images=len(saved["start"]), C=settings["C"],
                  size=settings["size"], jitter_amount=settings["jitter_amount"], leak=settings["leak"],
                  rho_reference=settings["rho_reference"], **cls._saved_options(settings))
        obj.max_response = settings["max_response"]  # M of the reference images used when it was made
        obj.Z = obj.max_response * obj.receptive_field**2 / obj.rho_reference**2
        obj.start = saved["start"]
        return obj


class Caricature(PreImageSynthesis):
    """Exaggerate what a layer detects in an image (paper 004, section 7).

    Phi_0 = max(0, Phi(x_0)); the data term is -<Phi(x), Phi_0> / ||Phi_0||^2, which is -1 at
    the start x_0 (so it is balanced with the priors whatever the layer's scale), and the
    optimization starts from x_0 itself.

    Parameters
    ----------
    model : LayeredModel
    images : tensor (n_images, 3, H, W) or StimulusSet
        The images x_0.
    layer : str
    jitter_amount : int, optional
        T; default a quarter of the layer's stride (`layer_stride`), as for inversion.
    C, prior, optimizer, lr, second_phase, seed
        As in `PreImageSynthesis`.

    Attributes
    ----------
    images : tensor (n_images, 3, H, W), after `synthesize`
    reference : tensor
        Phi_0 for each image.
    """

    method = "caricature"

    def __init__(self, model, images, layer, *, C: float = 1.0, jitter_amount: int | None = None, **options):
        start = as_image_tensor(images).detach().cpu().clone()
        jitter_amount = _quarter_stride(model, layer, start.shape[-1], jitter_amount)
        super().__init__(model, layer, C=C, jitter_amount=jitter_amount, **options)
        self.start = start
        with torch.no_grad():
            self.reference = model.layer_outputs(self.start.to(model.device), [layer])[layer].clamp_min(0).cpu()
        self.squared_norms = self.reference.flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)

    def _loss(self, features, index):
        reference = self.reference.to(features.device)[index]
        return -(features * reference).flatten(1).sum(dim=1) / self.squared_norms.to(features.device)[index]

    def _table(self):
        return pd.DataFrame({"image": np.arange(len(self.images)), "layer": self.layer,
                             "alignment_before": self.alignment(self.start),
                             "alignment_after": self.alignment(self.images)})

    def alignment(self, images) -> np.ndarray:
        """<Phi(images), Phi_0>, the exaggerated quantity, per image."""
        with torch.no_grad():
            features = self.model.layer_outputs(as_image_tensor(images).to(self.model.device), [self.layer])[self.layer].cpu()
            return (features * self.reference).flatten(1).sum(dim=1).numpy()

    @classmethod
    def _from_saved(cls, model, settings, saved):
        return cls(model, saved["start"], settings["layer"], C=settings["C"], jitter_amount=settings["jitter_amount"],
                   **cls._saved_options(settings))
