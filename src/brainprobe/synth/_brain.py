"""Images that tell the brain and the network apart, synthesized through fitted encoding models.

A fitted encoding model on top of its network (`brainprobe.encoding.EncodingModule`) is a
differentiable map image -> predicted ROI response, so the optimization core can push pixels
against it as it does against a network's units:

- `ROIMaximization`: drive (or suppress) an ROI's predicted response: most exciting images
  ("MEIs") for V1 .. LO;
- `ControversialImages`: drive one model while holding another at its starting value, and the
  reverse, so that the two models rank the two image sets in opposite orders (two ROIs, two
  layers, two networks, or an ROI model against the network's own readout, `NetworkReadout`);
- `BrainMetamer`: keep an ROI's predicted response pattern to an image while the network's class
  changes to a target class (the mirror of the AI images: same brain, different label).

Objectives are measured in units of the natural-image null: z = (response - mean) / sd over
a stated reference set of natural images (default 256 random crops of the bundled photographs,
`brainprobe.stimuli.sample_patches`; a dozen images make sd, and so every z, a matter of which
images they are), so one ``target_z`` means the same for every ROI; ``z_random`` reads the same
response against uniform-noise images. No image stops before its first step. A synthesis through
an encoding model whose held-out accuracy is not above its permutation null is refused
(``untrusted="raise"``) or flagged: a warning, and ``trusted = False`` in `validity_`. Every synthesized set comes
with its validity evidence (`BrainSynthesis.responses_`, `BrainSynthesis.validity_`): every
model's predicted responses to the synthesized, starting, natural and random images, and each
encoding model's own held-out accuracy, so a user sees whether the image took a model to where
it was never tested (responses far beyond the natural range).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .._device import resolve_device
from .._images import as_image_tensor
from ..models import LayeredModel
from ._core import optimize_pixels
from ._persistence import read_synthesis, write_synthesis
from ._preimage import _noise_start
from ._regularizers import PreImagePrior, jitter
from ._synthesis import Synthesis

__all__ = ["NetworkReadout", "BrainSynthesis", "ROIMaximization", "ControversialImages", "BrainMetamer",
           "model_responses"]


class NetworkReadout(nn.Module):
    """The network's own readout as a response model: a class logit, or one unit of a layer.

    Has the interface of `brainprobe.encoding.EncodingModule` (``network``, ``layer``,
    ``readout``, ``name``, ``accuracy``), so it can stand on either side of a controversial pair.

    Parameters
    ----------
    network : LayeredModel
    class_index : int, optional
        A class logit (the network's output).
    layer, unit : str, int, optional
        Instead of a class: the flat index ``unit`` of ``layer``'s output.
    name : str, optional

    Examples
    --------
    >>> from brainprobe.synth import NetworkReadout
    >>> cat = NetworkReadout(network, class_index=281)  # the "tabby cat" logit  # doctest: +SKIP
    """

    def __init__(self, network: LayeredModel, *, class_index: int | None = None, layer: str | None = None,
                 unit: int | None = None, name: str | None = None):
        super().__init__()
        if (class_index is None) == (unit is None):
            raise ValueError("give class_index= (a logit) or layer= and unit=")
        self.network = network
        self.layer = "logits" if class_index is not None else layer
        network.resolve_layer(self.layer)
        self.unit = int(class_index if class_index is not None else unit)
        self.name = name or (network.class_name(self.unit) if class_index is not None else f"{layer}[{unit}]")
        self.accuracy = math.nan
        self.size = network.input_size

    def readout(self, features: torch.Tensor) -> torch.Tensor:
        return features.flatten(1)[:, self.unit:self.unit + 1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.readout(self.network.layer_outputs(images, [self.layer], validate=False)[self.layer])

    def state(self) -> dict:
        return {"settings": {"layer": self.layer, "unit": self.unit, "name": self.name}}


def model_responses(models: Sequence[nn.Module], images: torch.Tensor, *, logits_of: LayeredModel | None = None):
    """Predicted responses (n_images, n_targets) of several response models in one forward pass
    per network; with ``logits_of``, that network's logits too (appended last)."""
    by_network: dict[int, tuple[LayeredModel, list[str]]] = {}
    for model in models:
        entry = by_network.setdefault(id(model.network), (model.network, []))
        if model.layer not in entry[1]:
            entry[1].append(model.layer)
    if logits_of is not None:
        entry = by_network.setdefault(id(logits_of), (logits_of, []))
        if "logits" not in entry[1]:
            entry[1].append("logits")
    outputs = {key: network.layer_outputs(images, layers, validate=False) for key, (network, layers) in by_network.items()}
    found = [model.readout(outputs[id(model.network)][model.layer]) for model in models]
    if logits_of is not None:
        found.append(outputs[id(logits_of)]["logits"])
    return found


class BrainSynthesis(Synthesis):
    """Shared machinery: response models, the natural/random null, the energy, results, persistence.

    Parameters
    ----------
    models : mapping of str to response model
        `brainprobe.encoding.EncodingModule` or `NetworkReadout` objects, by name. The objective
        reads some of them; every one is reported in `responses_`.
    null_images : tensor (n, 3, H, W) or StimulusSet, optional
        Natural images that define z units (mean and sd of each model's response) and the
        validity null; default ``n_natural`` random crops of the bundled photographs at the
        models' size (`brainprobe.stimuli.sample_patches`). Fewer than 100 images: a warning
        (z would be measured against too few images).
    n_natural : int
        Size of the default reference set.
    n_random : int
        Uniform-noise images in the validity null (``z_random``).
    untrusted : {"warn", "raise"}
        What `synthesize` does when a model the objective reads has a held-out accuracy that is
        not above its permutation null (``accuracy_null``; without one, not above 0): warn (and
        flag ``trusted = False`` in `validity_`), or refuse.
    prior : PreImagePrior, "default" or None
        Natural-image prior (paper 004: alpha-norm + total variation, and the B+ pixel bound);
        "default": `PreImagePrior.for_model` of the first model's network.
    prior_weight : float
        Weight of the prior against the objective (which is in z units).
    jitter_amount : int
        Random circular shift in [0, T)^2 at each step (0: none; encoding models read positions,
        so jitter blurs what a spatial readout wants).
    optimizer : {"adam", "sgd", "adagrad_momentum"}
    lr : float
        Step in pixel units.
    seed : int

    Attributes
    ----------
    images : tensor (n_images, 3, H, W)
        After `synthesize`.
    converged : bool array (n_images,)
        Each image met its stopping criterion (always False without one).
    n_iter : int array (n_images,)
        Updates each image took (per-image stopping).
    losses : array (n_steps, n_images)
    responses_ : DataFrame
        One row per (image, model) over the synthesized, start, natural and random images:
        ``set``, ``image``, ``group``, ``model``, ``response`` (the ROI response: mean over
        targets), ``z`` (in natural-image units), ``z_random`` (in random-image units).
    validity_ : DataFrame
        One row per model: ``heldout_accuracy``, ``accuracy_null95``, ``trusted`` (the accuracy
        is above its permutation null; a `NetworkReadout` is the network itself: trusted),
        ``accuracy_status`` (in words), ``reference`` (the natural reference set),
        ``n_natural``, natural and random null mean / sd / max, the synthesized images' mean
        response, z and ``synthesized_z_random``, and ``beyond_natural``: the fraction of
        synthesized images outside the natural images' range (the model extrapolates there).
    reference : str
        What the natural reference set is.
    """

    method = "brain"

    def __init__(self, models: Mapping[str, nn.Module], *, null_images=None, n_random: int = 64,
                 prior="default", prior_weight: float = 1.0, jitter_amount: int = 0, optimizer: str = "adam",
                 lr: float = 0.01, seed: int = 0, n_natural: int = 256, untrusted: str = "warn"):
        if not isinstance(models, Mapping) or not models:
            raise ValueError("models: expected a non-empty mapping of name to response model")
        for name, model in models.items():
            if not all(hasattr(model, a) for a in ("network", "layer", "readout")):
                raise TypeError(f"models[{name!r}]: expected an EncodingModule or NetworkReadout, "
                                f"found {type(model).__name__}")
        sizes = {getattr(m, "size", m.network.input_size) for m in models.values()}
        if len(sizes) != 1:
            raise ValueError(f"models: fitted at different image sizes {sorted(sizes)}; synthesize at one size")
        if optimizer not in ("adam", "sgd", "adagrad_momentum"):
            raise ValueError(f"optimizer: expected 'adam', 'sgd' or 'adagrad_momentum', found {optimizer!r}")
        if lr <= 0 or prior_weight < 0 or jitter_amount < 0 or n_random < 0:
            raise ValueError("lr must be > 0; prior_weight, jitter_amount and n_random >= 0")
        if untrusted not in ("warn", "raise"):
            raise ValueError(f"untrusted: expected 'warn' or 'raise', found {untrusted!r}")
        self.untrusted = untrusted
        self.models = dict(models)
        self.size = sizes.pop()
        network = next(iter(self.models.values())).network
        self.prior = PreImagePrior.for_model(network) if isinstance(prior, str) and prior == "default" else prior
        if self.prior is not None and not isinstance(self.prior, PreImagePrior):
            raise TypeError(f"prior: expected a PreImagePrior, 'default' or None, found {prior!r}")
        self.prior_weight, self.jitter_amount = float(prior_weight), int(jitter_amount)
        self.optimizer, self.lr, self.seed, self.n_random = optimizer, float(lr), int(seed), int(n_random)
        if null_images is None:
            from ..stimuli import sample_patches

            null_images = sample_patches(int(n_natural), size=self.size, photo_size=max(96, 2 * self.size),
                                         crop=max(48, self.size), seed=self.seed)
            self.reference = (f"{int(n_natural)} random crops of the bundled photographs "
                              f"(brainprobe.stimuli.sample_patches)")
        else:
            self.reference = f"{len(null_images)} natural images given as null_images"
        self.n_natural = int(n_natural)
        self.null_images = as_image_tensor(null_images).detach().cpu().float()
        if len(self.null_images) < 3:
            raise ValueError(f"null_images: expected at least 3 natural images, found {len(self.null_images)}")
        if len(self.null_images) < 100:
            warnings.warn(f"null_images: z is measured against only {len(self.null_images)} natural images; its sd, "
                          "and every z and target_z, depend on which images they are (use 100 or more, e.g. the "
                          "default reference set)", UserWarning, stacklevel=3)
        if tuple(self.null_images.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"null_images: expected {self.size}x{self.size} images (the models' size), found "
                             f"{tuple(self.null_images.shape[-2:])}")
        generator = torch.Generator().manual_seed(self.seed + 1)
        self.random_images = torch.rand(self.n_random, 3, self.size, self.size, generator=generator)
        full = self._predict(self.null_images)
        self.null_mean = {name: float(r.mean(1).mean()) for name, r in full.items()}
        self.null_sd = {name: float(r.mean(1).std(unbiased=True).clamp_min(1e-8)) for name, r in full.items()}
        noise = self._predict(self.random_images) if self.n_random > 1 else {}
        self.random_mean = {name: float(r.mean(1).mean()) for name, r in noise.items()}
        self.random_sd = {name: float(r.mean(1).std(unbiased=True).clamp_min(1e-8)) for name, r in noise.items()}
        # per-target spread over natural images: the units of a pattern match (BrainMetamer)
        self.target_sd = {name: r.std(dim=0, unbiased=True).clamp_min(1e-8) for name, r in full.items()}
        self.images: torch.Tensor | None = None
        self.converged = np.zeros(0, dtype=bool)
        self.n_iter = np.zeros(0, dtype=int)
        self.losses = np.zeros((0, 0))
        self.history: dict[str, np.ndarray] = {}
        self.responses_: pd.DataFrame | None = None
        self.validity_: pd.DataFrame | None = None

    # -- responses -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(iter(self.models.values())).network.device

    def _predict(self, images: torch.Tensor, batch_size: int = 64) -> dict:
        """Every model's predicted responses (n_images, n_targets) on the CPU, without gradients."""
        names = list(self.models)
        parts: dict[str, list] = {name: [] for name in names}
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size].to(self.device)
                for name, value in zip(names, model_responses([self.models[n] for n in names], batch), strict=True):
                    parts[name].append(value.float().cpu())
        return {name: torch.cat(p) if p else torch.zeros(0, 1) for name, p in parts.items()}

    def z(self, name: str, response: torch.Tensor) -> torch.Tensor:
        """An ROI response (n,) in natural-image units."""
        return (response - self.null_mean[name]) / self.null_sd[name]

    def z_random(self, name: str, response: torch.Tensor) -> torch.Tensor:
        """An ROI response (n,) in units of the random-image null (NaN without one)."""
        if name not in self.random_mean:
            return torch.full_like(response, math.nan)
        return (response - self.random_mean[name]) / self.random_sd[name]

    # -- is a model worth synthesizing through? -------------------------------------------------
    def trust(self, name: str) -> tuple[bool, str]:
        """Whether model ``name``'s predictions can be relied on, and why (in words)."""
        model = self.models[name]
        if isinstance(model, NetworkReadout):
            return True, "the network's own readout (no fitted model)"
        accuracy = float(getattr(model, "accuracy", math.nan))
        null = float(getattr(model, "accuracy_null", math.nan))
        if math.isnan(accuracy):
            return False, "held-out accuracy unknown (pass heldout_accuracy's table to encoding_modules)"
        if math.isnan(null):
            if accuracy <= 0:
                return False, f"held-out accuracy {accuracy:.3g} <= 0"
            return False, f"held-out accuracy {accuracy:.3g} not tested against a permutation null"
        if accuracy <= null:
            return False, f"held-out accuracy {accuracy:.3g} not above its permutation null (95th percentile {null:.3g})"
        return True, f"held-out accuracy {accuracy:.3g} above its permutation null (95th percentile {null:.3g})"

    def _objective_models(self) -> list[str]:
        """The models the objective reads (each method says which)."""
        return list(self.models)

    def _check_trust(self) -> None:
        doubtful = {name: why for name in self._objective_models() for ok, why in [self.trust(name)] if not ok}
        if not doubtful:
            return
        message = ("synthesis through models whose predictions are not shown to beat chance: "
                   + "; ".join(f"{name}: {why}" for name, why in doubtful.items())
                   + ". The images say nothing about the brain; validity_['trusted'] is False for them.")
        if self.untrusted == "raise":
            raise ValueError(message + " (untrusted='warn' synthesizes anyway)")
        warnings.warn(message, UserWarning, stacklevel=3)

    def roi_responses(self, images) -> pd.DataFrame:
        """Every model's ROI response (mean over targets) and its z, one row per (image, model)."""
        predicted = self._predict(as_image_tensor(images).float())
        rows = []
        for name, values in predicted.items():
            response = values.mean(1)
            rows.append(pd.DataFrame({"image": np.arange(len(response)), "model": name,
                                      "response": response.double().numpy(),
                                      "z": self.z(name, response).double().numpy(),
                                      "z_random": self.z_random(name, response).double().numpy()}))
        return pd.concat(rows, ignore_index=True)

    # -- the energy ---------------------------------------------------------------------------
    def _prior(self, images: torch.Tensor) -> torch.Tensor:
        if self.prior is None or self.prior_weight == 0:
            return torch.zeros(len(images), device=images.device)
        return self.prior_weight * self.prior(images)

    def _shift(self, images: torch.Tensor, generator) -> torch.Tensor:
        return jitter(images, self.jitter_amount, generator) if self.jitter_amount > 1 else images

    def _objective(self, images, index, generator):
        raise NotImplementedError  # each method defines its data term and aux

    def _criterion(self):
        return None  # each method may stop images one by one

    def _groups(self) -> list[str]:
        """What each synthesized image was made for (a label per image, for the tables)."""
        return [self.method] * len(self.start)

    def synthesize(self, max_iter: int = 200, *, progress: bool | None = None, device=None, checkpoint=None,
                   checkpoint_every: int = 50):
        """Optimize every image (each stops on its own criterion), then measure validity. Returns self."""
        device = resolve_device(device) if device is not None else self.device
        self._check_trust()
        self.to(device)
        generator = torch.Generator().manual_seed(self.seed)

        def objective(images, index):
            return self._objective(images, index, generator)

        project = self.prior.project if self.prior is not None else None
        units = self.prior.paper_units_per_pixel if (self.optimizer == "adagrad_momentum" and self.prior) else 1.0
        result = optimize_pixels(self.start, objective, criterion=self._criterion(), optimizer=self.optimizer,
                                 lr=self.lr, max_iter=max_iter, project=project, units=units, device=device,
                                 checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=progress,
                                 desc=self.method, min_iter=min(1, max_iter))
        self.images, self.converged, self.n_iter = result.images, result.converged, result.n_iter
        self.losses, self.history = result.loss_history, result.aux_history
        self._measure()
        return self

    def _measure(self) -> None:
        """The validity tables: every model on the synthesized, start, natural and random images."""
        sets = {"synthesized": self.images, "start": self.start, "natural": self.null_images,
                "random": self.random_images}
        groups = {"synthesized": self._groups(), "start": self._groups()}
        frames = []
        for label, images in sets.items():
            if images is None or not len(images):
                continue
            frame = self.roi_responses(images)
            group = groups.get(label)
            frame.insert(0, "set", label)
            frame.insert(2, "group", [group[i] for i in frame["image"]] if group else label)
            frames.append(frame)
        self.responses_ = pd.concat(frames, ignore_index=True)
        records = []
        for name, model in self.models.items():
            mine = self.responses_[self.responses_["model"] == name]
            natural = mine[mine["set"] == "natural"]["response"]
            random = mine[mine["set"] == "random"]["response"]
            made = mine[mine["set"] == "synthesized"]
            beyond = (made["response"] > natural.max()) | (made["response"] < natural.min())
            trusted, status = self.trust(name)
            records.append({"model": name, "heldout_accuracy": getattr(model, "accuracy", math.nan),
                            "accuracy_null95": getattr(model, "accuracy_null", math.nan), "trusted": trusted,
                            "accuracy_status": status, "reference": self.reference, "n_natural": len(natural),
                            "natural_mean": natural.mean(), "natural_sd": natural.std(), "natural_max": natural.max(),
                            "random_mean": random.mean() if len(random) else math.nan,
                            "random_sd": random.std() if len(random) > 1 else math.nan,
                            "synthesized_mean": made["response"].mean(), "synthesized_z": made["z"].mean(),
                            "synthesized_z_random": made["z_random"].mean(),
                            "beyond_natural": float(beyond.mean())})
        self.validity_ = pd.DataFrame(records)

    def _table(self) -> pd.DataFrame:
        """Every model's response and z on each synthesized image, whether the model is trusted,
        and whether the image converged: one row per (image, model)."""
        made = self.responses_[self.responses_["set"] == "synthesized"].drop(columns="set")
        trusted = self.validity_.set_index("model")["trusted"]
        rows = made["image"].to_numpy()
        return made.assign(trusted=made["model"].map(trusted).astype(bool), converged=self.converged[rows],
                           n_iter=self.n_iter[rows]).reset_index(drop=True)

    # -- persistence --------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {"method": self.method, "models": list(self.models), "prior": self.prior is not None,
                "prior_weight": self.prior_weight, "jitter_amount": self.jitter_amount, "optimizer": self.optimizer,
                "lr": self.lr, "seed": self.seed, "n_random": self.n_random, "untrusted": self.untrusted,
                "reference": self.reference,
                "model_settings": json.dumps({n: m.state()["settings"] for n, m in self.models.items()})}

    def _state(self) -> dict:
        tensors = {"start": self.start, "null_images": self.null_images,
                   "converged": torch.as_tensor(self.converged), "n_iter": torch.as_tensor(self.n_iter)}
        if self.images is not None:
            tensors["images"] = self.images
        for name, model in self.models.items():
            if hasattr(model, "weight"):
                tensors[f"model::{name}::weight"] = model.weight.detach().cpu()
        return tensors

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save images, settings and the models' weights (not the networks) with ``torch.save``."""
        return write_synthesis(path, self._settings(), self._state(), self.losses, overwrite=overwrite)

    @classmethod
    def load(cls, path, models: Mapping[str, nn.Module]):
        """Read a file written by `save`; ``models`` must be the same response models (checked)."""
        settings, saved = read_synthesis(path, cls.method)
        if list(models) != settings["models"]:
            raise ValueError(f"{path}: saved with models {settings['models']}, given {list(models)}")
        for name, model in models.items():
            key = f"model::{name}::weight"
            if key in saved and not torch.equal(saved[key], model.weight.detach().cpu()):
                raise ValueError(f"{path}: model {name!r} has other weights than the one the images were made with")
        obj = cls._from_saved(models, settings, saved)
        obj.reference = settings.get("reference", obj.reference)
        obj.images = saved.get("images")
        obj.converged, obj.n_iter = saved["converged"].numpy(), saved["n_iter"].numpy()
        obj.losses = saved["losses"].numpy()
        if obj.images is not None:
            obj._measure()
        return obj

    @staticmethod
    def _options(settings: dict, saved: dict) -> dict:
        return {"null_images": saved["null_images"], "n_random": settings["n_random"],
                "prior": "default" if settings["prior"] else None, "prior_weight": settings["prior_weight"],
                "jitter_amount": settings["jitter_amount"], "optimizer": settings["optimizer"], "lr": settings["lr"],
                "seed": settings["seed"], "untrusted": settings.get("untrusted", "warn")}

    def to(self, device):
        """Move the networks, the models and every tensor attribute to ``device``. Returns self."""
        for model in self.models.values():
            model.network.to(device)
            model.to(device)
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor) and name not in ("start", "null_images", "random_images", "images"):
                setattr(self, name, value.to(device))
        self.target_sd = {n: v.to(device) for n, v in self.target_sd.items()}
        return self


def _check_name(models: Mapping, name: str, what: str) -> str:
    if name not in models:
        raise KeyError(f"{what}: {name!r} is not one of the models {list(models)}")
    return name


class ROIMaximization(BrainSynthesis):
    """Images that drive (or suppress) an ROI's predicted response: most exciting images.

    Minimizes -s z(x) + prior(x), with z the ROI response in natural-image units and s = +1
    (``"drive"``) or -1 (``"suppress"``), from noise. With ``target_z`` each image stops as soon
    as s z >= target_z (per-image stopping: finished images leave the batch).

    Parameters
    ----------
    models : mapping of str to response model
    target : str
        The model whose response is driven.
    direction : {"drive", "suppress"}
    n_images : int
        Independent restarts, optimized together.
    target_z : float, optional
    **options
        As in `BrainSynthesis`.

    Examples
    --------
    >>> from brainprobe.encoding import encoding_modules
    >>> from brainprobe.synth import ROIMaximization
    >>> models = encoding_modules(network, fitted, rois=["V1", "LO"], layers=["conv3"])  # doctest: +SKIP
    >>> mei = ROIMaximization(models, "V1 conv3", n_images=8, target_z=6).synthesize(300)  # doctest: +SKIP
    >>> mei.validity_                                                                     # doctest: +SKIP
    """

    method = "roi_maximization"

    def __init__(self, models, target: str, *, direction: str = "drive", n_images: int = 8,
                 target_z: float | None = None, **options):
        super().__init__(models, **options)
        self.target = _check_name(self.models, target, "target")
        if direction not in ("drive", "suppress"):
            raise ValueError(f"direction: expected 'drive' or 'suppress', found {direction!r}")
        if n_images < 1:
            raise ValueError(f"n_images: expected >= 1, found {n_images}")
        self.direction, self.sign = direction, (1.0 if direction == "drive" else -1.0)
        self.target_z = None if target_z is None else float(target_z)
        self.start = _noise_start(n_images, self.size, self.seed)

    def _objective(self, images, index, generator):
        (response,) = model_responses([self.models[self.target]], self._shift(images, generator))
        z = self.z(self.target, response.mean(1))
        aux = {"z": z.detach()}
        if self.jitter_amount > 1 and self.target_z is not None:
            with torch.no_grad():  # the criterion judges the image itself, not its shifted copy
                (plain,) = model_responses([self.models[self.target]], images)
                aux["z"] = self.z(self.target, plain.mean(1))
        return -self.sign * z + self._prior(images), aux

    def _criterion(self):
        if self.target_z is None:
            return None
        return lambda aux, index: self.sign * aux["z"] >= self.target_z

    def _objective_models(self):
        return [self.target]

    def _groups(self):
        return [f"{self.direction} {self.target}"] * len(self.start)

    def _settings(self):
        return {**super()._settings(), "target": self.target, "direction": self.direction, "target_z": self.target_z,
                "n_images": len(self.start)}

    @classmethod
    def _from_saved(cls, models, settings, saved):
        obj = cls(models, settings["target"], direction=settings["direction"], n_images=settings["n_images"],
                  target_z=settings["target_z"], **cls._options(settings, saved))
        obj.start = saved["start"]
        return obj


class ControversialImages(BrainSynthesis):
    """Images on which two models disagree: each drives one model and holds the other.

    The first ``n_images`` images drive ``first`` while holding ``second`` at its value on the
    starting image; the next ``n_images`` do the reverse. Energy per image:
    -(z_drive - z_drive(start)) + ``hold_weight`` (z_hold - z_hold(start))^2 + prior, in
    natural-image units. The first model then ranks the first set above the second and the
    second model ranks them the other way: `separation_` measures by how much.

    Parameters
    ----------
    models : mapping of str to response model
    first, second : str
        Two model names: two ROIs, two layers, two networks, or an ROI model and a
        `NetworkReadout`.
    n_images : int
        Images per direction.
    start : tensor (n_images, 3, H, W), optional
        Starting images, used for both directions; default the first ``n_images`` natural
        (null) images, cycled.
    hold_weight : float
    target_z : float, optional
        Stop an image once its driven model has risen by ``target_z`` while the held one stays
        within ``hold_tolerance`` of its start.
    hold_tolerance : float
    **options
        As in `BrainSynthesis`; ``prior`` defaults to None here: paper 004's prior is made for
        images grown from noise, and its alpha-norm penalizes the bright, saturated pixels of
        the natural images these start from.

    Attributes
    ----------
    drive, hold : lists of str
        Per image, the model it drives and the one it holds.
    separation_ : dict
        ``first``: mean z of ``first`` on its driven set minus on the other set; ``second``:
        the same for ``second``; ``controversy``: the smaller of the two (> 0: the two models
        rank the sets in opposite orders); ``trusted``: both models' held-out accuracies are
        above their permutation nulls (otherwise the controversy is between two models that
        predict nothing).

    Examples
    --------
    >>> from brainprobe.synth import ControversialImages
    >>> pair = ControversialImages(models, "V1 conv2", "LO fc6", n_images=4).synthesize(200)  # doctest: +SKIP
    >>> pair.separation_["controversy"], pair.validity_                                      # doctest: +SKIP
    """

    method = "controversial"

    def __init__(self, models, first: str, second: str, *, n_images: int = 4, start=None, hold_weight: float = 10.0,
                 target_z: float | None = None, hold_tolerance: float = 0.25, **options):
        options.setdefault("prior", None)  # from natural images: 004's prior (made for noise starts) would pull them away
        super().__init__(models, **options)
        self.first = _check_name(self.models, first, "first")
        self.second = _check_name(self.models, second, "second")
        if first == second:
            raise ValueError("first and second: expected two different models")
        if n_images < 1 or hold_weight < 0 or hold_tolerance <= 0:
            raise ValueError("n_images >= 1, hold_weight >= 0 and hold_tolerance > 0 expected")
        self.hold_weight, self.hold_tolerance = float(hold_weight), float(hold_tolerance)
        self.target_z = None if target_z is None else float(target_z)
        if start is None:
            start = self.null_images[torch.arange(n_images) % len(self.null_images)]
        start = as_image_tensor(start).detach().cpu().float()
        if len(start) != n_images:
            raise ValueError(f"start: expected {n_images} images (n_images), found {len(start)}")
        self.start = torch.cat([start, start])
        self.drive = [self.first] * n_images + [self.second] * n_images
        self.hold = [self.second] * n_images + [self.first] * n_images
        initial = self._predict(self.start)
        self.drive_start = torch.stack([self.z(d, initial[d][i].mean()) for i, d in enumerate(self.drive)])
        self.hold_start = torch.stack([self.z(h, initial[h][i].mean()) for i, h in enumerate(self.hold)])
        self.separation_: dict | None = None

    def _objective(self, images, index, generator):
        first, second = model_responses([self.models[self.first], self.models[self.second]],
                                        self._shift(images, generator))
        z_first, z_second = self.z(self.first, first.mean(1)), self.z(self.second, second.mean(1))
        drives_first = (index < len(self.start) // 2)
        z_drive = torch.where(drives_first, z_first, z_second)
        z_hold = torch.where(drives_first, z_second, z_first)
        gain = z_drive - self.drive_start.to(z_drive.device)[index]
        drift = z_hold - self.hold_start.to(z_hold.device)[index]
        loss = -gain + self.hold_weight * drift.pow(2) + self._prior(images)
        return loss, {"gain": gain.detach(), "drift": drift.detach()}

    def _criterion(self):
        if self.target_z is None:
            return None
        return lambda aux, index: (aux["gain"] >= self.target_z) & (aux["drift"].abs() <= self.hold_tolerance)

    def _groups(self):
        return [f"drive {d}, hold {h}" for d, h in zip(self.drive, self.hold, strict=True)]

    def _objective_models(self):
        return [self.first, self.second]

    def _measure(self):
        super()._measure()
        made = self.responses_[self.responses_["set"] == "synthesized"]
        half = len(self.start) // 2

        def gap(name):
            z = made[made["model"] == name].set_index("image")["z"]
            mine = z[z.index < half] if name == self.first else z[z.index >= half]
            other = z[z.index >= half] if name == self.first else z[z.index < half]
            return float(mine.mean() - other.mean())

        first, second = gap(self.first), gap(self.second)
        trusted = self.trust(self.first)[0] and self.trust(self.second)[0]
        self.separation_ = {"first": first, "second": second, "controversy": min(first, second), "trusted": trusted}

    def _settings(self):
        return {**super()._settings(), "first": self.first, "second": self.second, "n_images": len(self.start) // 2,
                "hold_weight": self.hold_weight, "target_z": self.target_z, "hold_tolerance": self.hold_tolerance}

    @classmethod
    def _from_saved(cls, models, settings, saved):
        half = settings["n_images"]
        return cls(models, settings["first"], settings["second"], n_images=half, start=saved["start"][:half],
                   hold_weight=settings["hold_weight"], target_z=settings["target_z"],
                   hold_tolerance=settings["hold_tolerance"], **cls._options(settings, saved))


class BrainMetamer(BrainSynthesis):
    """Keep an ROI's predicted response pattern while the network's class changes (brain metamers).

    Energy per image: ``match_weight`` x mean over the ROI's targets of
    ((p(x) - p(x_0)) / sd)^2, sd each target's spread over the natural images, plus the
    cross-entropy of ``target_class`` under the network that the ROI model reads, plus the
    prior. It starts from x_0; an image stops once the network gives the target class
    probability >= ``threshold`` and the pattern's RMS error is <= ``tolerance`` (in sd).

    Parameters
    ----------
    models : mapping of str to response model
    target : str
        The ROI model whose pattern is kept.
    images : tensor (n_images, 3, H, W) or StimulusSet
        x_0.
    target_classes : int or sequence of int
        The class each image should be given (one for all, or one per image).
    threshold, tolerance, match_weight : float
    **options
        As in `BrainSynthesis`; ``prior`` defaults to None (see `ControversialImages`).

    Attributes
    ----------
    pattern_error_ : array (n_images,)
        RMS error of the ROI's predicted pattern, in natural-image sd, after `synthesize`.
    p_target_ : array (n_images,)
        The network's probability of each image's target class.

    Examples
    --------
    >>> from brainprobe.synth import BrainMetamer
    >>> same_brain = BrainMetamer(models, "LO fc6", images, target_classes=281).synthesize(300)  # doctest: +SKIP
    >>> same_brain.p_target_, same_brain.pattern_error_                                        # doctest: +SKIP
    """

    method = "brain_metamer"

    def __init__(self, models, target: str, images, target_classes, *, threshold: float = 0.9,
                 tolerance: float = 0.1, match_weight: float = 10.0, **options):
        options.setdefault("prior", None)  # as the AI images: no prior on an image that starts natural
        super().__init__(models, **options)
        self.target = _check_name(self.models, target, "target")
        self.start = as_image_tensor(images).detach().cpu().float()
        classes = np.broadcast_to(np.asarray(target_classes, dtype=np.int64), (len(self.start),)).copy()
        self.target_classes = torch.as_tensor(classes)
        if not 0 < threshold < 1 or tolerance <= 0 or match_weight <= 0:
            raise ValueError("threshold in (0, 1), tolerance > 0 and match_weight > 0 expected")
        self.threshold, self.tolerance, self.match_weight = float(threshold), float(tolerance), float(match_weight)
        self.network = self.models[self.target].network
        self.reference = self._predict(self.start)[self.target]
        self.pattern_error_ = None
        self.p_target_ = None

    def _errors(self, images, index):
        response, logits = model_responses([self.models[self.target]], images, logits_of=self.network)
        reference = self.reference.to(response.device)[index]
        error = ((response - reference) / self.target_sd[self.target].to(response.device)).pow(2).mean(1)
        return error, logits

    def _objective(self, images, index, generator):
        error, logits = self._errors(self._shift(images, generator), index)
        classes = self.target_classes.to(logits.device)[index]
        cross_entropy = F.cross_entropy(logits, classes, reduction="none")
        p_target = torch.softmax(logits.detach(), dim=1).gather(1, classes[:, None])[:, 0]
        loss = self.match_weight * error + cross_entropy + self._prior(images)
        return loss, {"rms": error.detach().sqrt(), "p_target": p_target}

    def _criterion(self):
        return lambda aux, index: (aux["p_target"] >= self.threshold) & (aux["rms"] <= self.tolerance)

    def _groups(self):
        return [f"keep {self.target}, class {int(c)}" for c in self.target_classes]

    def _objective_models(self):
        return [self.target]

    def _measure(self):
        super()._measure()
        with torch.no_grad():
            images = self.images.to(self.device)
            index = torch.arange(len(images), device=images.device)
            error, logits = self._errors(images, index)
            classes = self.target_classes.to(logits.device)
            self.pattern_error_ = error.sqrt().cpu().numpy()
            self.p_target_ = torch.softmax(logits.double(), 1).gather(1, classes[:, None])[:, 0].cpu().numpy()

    def _state(self):
        return {**super()._state(), "target_classes": self.target_classes}

    def _settings(self):
        return {**super()._settings(), "target": self.target, "threshold": self.threshold,
                "tolerance": self.tolerance, "match_weight": self.match_weight}

    @classmethod
    def _from_saved(cls, models, settings, saved):
        return cls(models, settings["target"], saved["start"], saved["target_classes"].numpy(),
                   threshold=settings["threshold"], tolerance=settings["tolerance"],
                   match_weight=settings["match_weight"], **cls._options(settings, saved))
