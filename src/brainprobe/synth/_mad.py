"""Maximum differentiation (MAD) competition of two models (Wang & Simoncelli 2008).

Two models each define a distance from a reference image. Starting from a distorted reference,
MAD synthesizes four images: for each model, the image it finds closest to the reference (its
"best") and the one it finds farthest (its "worst"), while the other model's distance is held
at its starting value. The image pairs where one model says "as distorted as before" and the
other "much closer" or "much farther" are the stimuli on which the two models disagree most; an
observer's judgement of them decides between the models. As in plenoptic's ``MADCompetition``,
the constraint is a penalty: each image minimizes

    s d_opt(x) / d_opt(x_0) + lambda (d_fix(x) / d_fix(x_0) - 1)^2

(s = +1 for the best, -1 for the worst image), with the pixels kept in [0, 1]. All four
images are optimized together in one batch of the optimization core.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .._device import resolve_device
from .._images import as_image_tensor
from ..models import LayeredModel
from ._core import optimize_pixels
from ._persistence import read_synthesis, write_synthesis
from ._synthesis import Synthesis

__all__ = ["LayerDistance", "MADCompetition"]


class LayerDistance:
    """The relative distance ||Phi(x) - Phi(x_ref)|| / ||Phi(x_ref)|| at one layer of a network.

    Parameters
    ----------
    model : LayeredModel
    layer : str

    Examples
    --------
    >>> distance = LayerDistance(model, "conv2")            # doctest: +SKIP
    >>> distance(reference, images)                         # doctest: +SKIP
    tensor([...])   # (n_images,)
    """

    def __init__(self, model: LayeredModel, layer: str):
        if not isinstance(model, LayeredModel):
            raise TypeError(f"model: expected a LayeredModel, found {type(model).__name__}")
        model.resolve_layer(layer)
        self.model, self.layer = model, layer
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None

    def _reference_features(self, reference: torch.Tensor) -> torch.Tensor:
        # the reference does not change during a synthesis: its features are computed once
        if self._cached is None or self._cached[0].shape != reference.shape or not torch.equal(self._cached[0], reference):
            with torch.no_grad():
                features = self.model.layer_outputs(reference, [self.layer], validate=False)[self.layer]
            self._cached = (reference.detach().clone(), features.flatten(1))
        return self._cached[1]

    def __call__(self, reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Distances (n_images,) of ``images`` (n_images, 3, H, W) from ``reference`` (1, 3, H, W)."""
        return self.from_features(reference, self.model.layer_outputs(images, [self.layer], validate=False)[self.layer])

    def from_features(self, reference: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Distances of images whose ``layer`` output is ``features`` (n_images, ...)."""
        target = self._reference_features(reference)
        features = features.flatten(1)
        return (features - target).norm(dim=1) / target.norm(dim=1).clamp_min(1e-12)

    def to(self, device):
        self.model.to(device)
        self._cached = None
        return self

    def __repr__(self) -> str:
        return f"LayerDistance({self.model.name!r}, {self.layer!r})"


Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# the four syntheses: (optimized metric, direction, sign of its term); the other metric is held
_SYNTHESES = ((0, "min", 1.0), (0, "max", -1.0), (1, "min", 1.0), (1, "max", -1.0))


def _as_metric(metric, name: str) -> Metric:
    if isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], LayeredModel):
        return LayerDistance(*metric)
    if callable(metric):
        return metric
    raise TypeError(f"{name}: expected a (LayeredModel, layer) pair or a callable metric(reference, images), "
                    f"found {type(metric).__name__}")


class MADCompetition(Synthesis):
    """MAD competition between two models at one reference image (Wang & Simoncelli 2008).

    Parameters
    ----------
    image : tensor (3, H, W) or (1, 3, H, W) in [0, 1], or StimulusSet (its first image)
        The reference.
    metric_a, metric_b : (LayeredModel, layer) or callable
        The two models' distances: a pair means `LayerDistance`; a callable
        ``metric(reference (1, 3, H, W), images (n, 3, H, W)) -> tensor (n,)`` is used as is (it
        must be differentiable in ``images`` and positive at the start).
    names : (str, str)
        Labels of the two models in results and plots.
    noise_sd : float
        The start: the reference plus Gaussian noise of this standard deviation (pixel units),
        clipped to [0, 1]; both distances are held at, or moved from, their values there.
    tradeoff : float
        lambda: weight of the penalty on the held distance's relative change.
    lr : float
        Adam's step size (pixel units).
    seed : int

    Attributes
    ----------
    images : tensor (4, 3, H, W), after `synthesize`
        In the order of `table_`: best for A, worst for A, best for B, worst for B.
    table_ : DataFrame, after `synthesize`
        One row per image: ``image``, ``optimized`` (the model whose distance was optimized),
        ``held``, ``direction`` ("min" = best, "max" = worst), ``distance_<A>``,
        ``distance_<B>`` (final), ``optimized_change`` and ``held_change`` (final / start).
    initial_distances : array (2,)
        The two distances of the start.
    losses : array (n_steps, 4)
    history : dict of str to array (n_steps, 4)
        ``distance_<A>`` and ``distance_<B>`` at each step.

    Examples
    --------
    >>> mad = MADCompetition(photo, (alexnet, "conv1"), (alexnet, "conv5"), names=("conv1", "conv5"))  # doctest: +SKIP
    >>> mad.synthesize(200).table_                                                                     # doctest: +SKIP
    """

    method = "mad_competition"

    def __init__(self, image, metric_a, metric_b, *, names: tuple[str, str] = ("A", "B"), noise_sd: float = 0.1,
                 tradeoff: float = 100.0, lr: float = 0.01, seed: int = 0):
        reference = as_image_tensor(image).detach().cpu()
        if reference.ndim == 3:
            reference = reference[None]
        if reference.shape[0] != 1:
            raise ValueError(f"image: expected one reference image, found {reference.shape[0]}")
        names = tuple(str(n) for n in names)
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"names: expected two different labels, found {names}")
        if noise_sd <= 0 or tradeoff <= 0 or lr <= 0:
            raise ValueError(f"noise_sd, tradeoff and lr: expected positive values, found {noise_sd}, {tradeoff}, {lr}")
        self.metrics = (_as_metric(metric_a, "metric_a"), _as_metric(metric_b, "metric_b"))
        self.names, self.noise_sd, self.tradeoff, self.lr, self.seed = names, float(noise_sd), float(tradeoff), float(lr), int(seed)
        self.reference = reference
        generator = torch.Generator().manual_seed(self.seed)
        self.initial = (reference + self.noise_sd * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
        self.initial_distances = self._distances(self.initial, self._device())[0]
        if not np.all(np.isfinite(self.initial_distances)) or np.any(self.initial_distances <= 0):
            raise ValueError(f"both distances must be positive at the start, found {self.initial_distances}; "
                             "raise noise_sd")
        self.images: torch.Tensor | None = None
        self.losses = np.zeros((0, 4))
        self.history: dict[str, np.ndarray] = {}
        self.n_iter = np.zeros(0, dtype=int)

    def _device(self) -> torch.device:
        for metric in self.metrics:
            if isinstance(metric, LayerDistance):
                return metric.model.device
        return torch.device("cpu")

    def _both(self, reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Both distances of each image, tensor (n_images, 2); two layers of one network share
        one forward pass."""
        first, second = self.metrics
        if isinstance(first, LayerDistance) and isinstance(second, LayerDistance) and first.model is second.model:
            features = first.model.layer_outputs(images, [first.layer, second.layer], validate=False)
            return torch.stack([first.from_features(reference, features[first.layer]),
                                second.from_features(reference, features[second.layer])], 1)
        return torch.stack([metric(reference, images) for metric in self.metrics], 1)

    def _distances(self, images: torch.Tensor, device) -> np.ndarray:
        """Both distances of each image, array (n_images, 2)."""
        with torch.no_grad():
            return self._both(self.reference.to(device), images.to(device)).double().cpu().numpy()

    def synthesize(self, max_iter: int = 300, *, progress: bool | None = None, device=None):
        """Optimize the four images for ``max_iter`` Adam steps. Returns self."""
        device = resolve_device(device) if device is not None else self._device()
        self.to(device)
        reference = self.reference.to(device)
        start_distances = torch.as_tensor(self.initial_distances, dtype=torch.float32, device=device)
        optimized = torch.tensor([s[0] for s in _SYNTHESES], device=device)
        signs = torch.tensor([s[2] for s in _SYNTHESES], device=device)

        def objective(images, index):
            distances = self._both(reference, images)  # (n, 2)
            relative = distances / start_distances
            rows = torch.arange(len(index), device=device)
            chosen = optimized[index]
            loss = signs[index] * relative[rows, chosen] + self.tradeoff * (relative[rows, 1 - chosen] - 1).pow(2)
            aux = {f"distance_{name}": distances[:, i].detach() for i, name in enumerate(self.names)}
            return loss, aux

        start = self.initial.expand(len(_SYNTHESES), -1, -1, -1)
        result = optimize_pixels(start, objective, optimizer="adam", lr=self.lr, max_iter=max_iter, device=device,
                                 progress=progress, desc="MAD")
        self.images, self.losses, self.history = result.images, result.loss_history, result.aux_history
        self.n_iter = result.n_iter
        return self

    def _table(self) -> pd.DataFrame:
        final = self._distances(self.images, self._device())
        rows = []
        for i, (which, direction, _) in enumerate(_SYNTHESES):
            held = 1 - which
            rows.append({"image": i, "optimized": self.names[which], "held": self.names[held], "direction": direction,
                         f"distance_{self.names[0]}": final[i, 0], f"distance_{self.names[1]}": final[i, 1],
                         "optimized_change": final[i, which] / self.initial_distances[which],
                         "held_change": final[i, held] / self.initial_distances[held]})
        return pd.DataFrame(rows)

    @property
    def titles(self) -> list[str]:
        """A label for each of the four images: "best for A" etc."""
        return [f"{'best' if direction == 'min' else 'worst'} for {self.names[which]}"
                for which, direction, _ in _SYNTHESES]

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path, *, overwrite: bool = False):
        """Save the reference, start, images and histories (not the metrics); read with `load`."""
        settings = {"method": self.method, "names": list(self.names), "noise_sd": self.noise_sd,
                    "tradeoff": self.tradeoff, "lr": self.lr, "seed": self.seed, "n_iter": np.asarray(self.n_iter).tolist(),
                    "metrics": [repr(m) for m in self.metrics]}
        tensors = {"reference": self.reference, "initial": self.initial,
                   **({"images": self.images} if self.images is not None else {}),
                   **{f"history/{key}": torch.from_numpy(value) for key, value in self.history.items()}}
        return write_synthesis(path, settings, tensors, self.losses, overwrite=overwrite)

    @classmethod
    def load(cls, path, metric_a, metric_b) -> MADCompetition:
        """A competition saved by `save`, with the same two metrics (networks are not saved)."""
        settings, saved = read_synthesis(path, cls.method)
        given = [repr(_as_metric(m, "metric")) for m in (metric_a, metric_b)]
        # a network's layer is named in the file; a plain function's repr holds its memory address
        if settings.get("metrics") and any(saved_one != given_one for saved_one, given_one
                                           in zip(settings["metrics"], given, strict=False)
                                           if " at 0x" not in saved_one + given_one):
            raise ValueError(f"{path}: made with metrics {settings['metrics']}, given {given}")
        obj = cls(saved["reference"], metric_a, metric_b, names=tuple(settings["names"]), noise_sd=settings["noise_sd"],
                  tradeoff=settings["tradeoff"], lr=settings["lr"], seed=settings["seed"])
        obj.initial = saved["initial"]
        obj.initial_distances = obj._distances(obj.initial, obj._device())[0]
        obj.losses = saved["losses"].numpy()
        obj.n_iter = np.broadcast_to(np.asarray(settings["n_iter"], dtype=int), (len(_SYNTHESES),)).copy()
        obj.history = {key.split("/", 1)[1]: value.numpy() for key, value in saved.items() if key.startswith("history/")}
        obj.images = saved.get("images")
        return obj

    def to(self, device):
        """Move the networks of `LayerDistance` metrics and every tensor attribute. Returns self."""
        for metric in self.metrics:
            if hasattr(metric, "to"):
                metric.to(device)
        for name in ("reference", "initial", "images"):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self
