"""Model metamers (paper 000, Feather et al.): images that match a natural image at one layer."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._device import resolve_device
from .._images import as_image_tensor
from .._internal import correlate_rows, rank_rows_torch
from ..models import LayeredModel
from ._core import optimize_pixels
from ._preimage import PreImageSynthesis

__all__ = ["Metamer", "linear_gradient_relu", "linear_gradient_applies", "layer_fidelity", "fidelity_null",
           "cross_model_recognition"]


def _centred_ranks(values: torch.Tensor) -> torch.Tensor:
    """Row ranks with ties averaged (as scipy's rankdata), centred and scaled to unit norm.

    In torch, on the tensors' device: ReLU layers hold many tied zeros, so ties must be averaged
    for the value to be Spearman's rho.
    """
    ranks = rank_rows_torch(values, dtype=torch.float64)
    ranks -= ranks.mean(dim=1, keepdim=True)
    return ranks / ranks.norm(dim=1, keepdim=True)


def _spearman_to(values: torch.Tensor, reference_ranks: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of each row with precomputed centred ranks, on the tensors' device.

    Equal to `layer_fidelity`'s value (up to float rounding), computed where the activations are.
    """
    return (_centred_ranks(values) * reference_ranks).sum(dim=1)


def _is_relu_like(function) -> bool:
    """Whether an elementwise function acts as ReLU or ReLU6 (checked on a probe)."""
    probe = torch.linspace(-10, 10, 201)
    try:
        value = function(probe)
    except Exception:  # noqa: BLE001 - anything that cannot take a vector is not an activation
        return False
    return isinstance(value, torch.Tensor) and value.shape == probe.shape and (
        torch.equal(value, torch.relu(probe)) or torch.equal(value, probe.clamp(0, 6)))


def linear_gradient_applies(model: LayeredModel, layer: str) -> bool:
    """Whether ``layer`` is a ReLU / ReLU6 output that `linear_gradient_relu` can modify: read at
    an ``nn.ReLU`` / ``nn.ReLU6`` module, or at a module followed by a ReLU-like function
    (EfficientNet's stem and head, whose shared ReLU6 runs as a function)."""
    spec = model.resolve_layer(layer)
    module = model._modules_by_path.get(spec.module) if spec.module else None
    if spec.post is not None:
        return module is not None and _is_relu_like(spec.post)
    return isinstance(module, (nn.ReLU, nn.ReLU6))


@contextlib.contextmanager
def linear_gradient_relu(model: LayeredModel, layer: str):
    """Within the block, the ReLU that produces ``layer`` passes gradients through unchanged.

    The forward pass is untouched (the same outputs); the backward pass treats the ReLU as the
    identity, so units that start at zero can still be driven toward their targets (paper 000).
    Works, without rewriting the network, on a layer read at an ``nn.ReLU`` / ``nn.ReLU6``
    module (in place or not) or at a module whose output goes through a ReLU-like function
    (a `LayerSpec` ``post``, as EfficientNet's functional ReLU6). Other layers raise
    ``ValueError`` (`linear_gradient_applies` says which).
    """
    spec = model.resolve_layer(layer)
    module = model._modules_by_path.get(spec.module) if spec.module else None
    if not linear_gradient_applies(model, layer):
        found = type(module).__name__ if module is not None else "the network output"
        raise ValueError(f"layer {layer!r} is read at {found}, not a ReLU: a linear-gradient ReLU does not apply")
    if spec.post is not None:
        # the activation is applied by the layer spec: swap it for a straight-through version
        original = model.layers[layer]

        def straight_through(value, post=spec.post):
            return value + (post(value) - value).detach()

        model.layers[layer] = type(spec)(spec.module, straight_through)
        try:
            yield
        finally:
            model.layers[layer] = original
        return
    saved: dict = {}

    def keep_input(_module, inputs):
        saved["input"] = inputs[0].clone()  # before an in-place ReLU overwrites it

    def pass_gradient(_module, _inputs, output):
        before = saved.pop("input")
        return before + (output - before).detach()

    handles = [module.register_forward_pre_hook(keep_input), module.register_forward_hook(pass_gradient)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layer_fidelity(model: LayeredModel, images, references, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """Spearman correlation of each image's activations with its reference's, at every layer.

    Returns
    -------
    DataFrame
        One row per (image, layer): ``image``, ``layer``, ``fidelity``.
    """
    layers = model.layer_names if layers is None else list(layers)
    images, references = as_image_tensor(images), as_image_tensor(references, name="references")
    with torch.no_grad():
        a = model.layer_outputs(images.to(model.device), layers)
        b = model.layer_outputs(references.to(model.device), layers)
    rows = []
    for layer in layers:
        values = correlate_rows(a[layer].flatten(1).double().cpu().numpy(), b[layer].flatten(1).double().cpu().numpy(),
                                "spearman")
        rows += [{"image": i, "layer": layer, "fidelity": float(v)} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def fidelity_null(model: LayeredModel, images, layers: Sequence[str] | None = None, *, n_pairs: int | None = None,
                  batch_size: int = 32, seed=0) -> pd.DataFrame:
    """The null of `layer_fidelity`: Spearman correlations between random pairs of distinct images.

    Each image's activations are ranked once, so every pair costs one dot product: with n
    images all n (n - 1) / 2 pairs are available (the paper drew 10^6 pairs from its training
    set; pass a large natural image set, e.g. the study's stimuli, for a null of that size).

    Parameters
    ----------
    images : tensor or StimulusSet
        Natural images.
    n_pairs : int, optional
        Default: every pair. Fewer: a random subset of distinct pairs; more than there are:
        an error (a null cannot hold more distinct pairs than the images give).
    batch_size : int
        Images per forward pass.
    seed : int

    Returns
    -------
    DataFrame with ``layer``, ``first``, ``second`` (image indices), ``fidelity``; one row per
    pair and layer. ``attrs["n_pairs"]`` and ``attrs["n_images"]`` state its size.
    """
    images = as_image_tensor(images)
    layers = model.layer_names if layers is None else list(layers)
    n = len(images)
    first, second = np.triu_indices(n, 1)
    if n_pairs is not None:
        if n_pairs > len(first):
            raise ValueError(f"n_pairs: {n} images give {len(first)} distinct pairs, not {n_pairs}; pass more images")
        chosen = np.sort(np.random.default_rng(seed).choice(len(first), n_pairs, replace=False))
        first, second = first[chosen], second[chosen]
    ranks: dict[str, list] = {layer: [] for layer in layers}
    with torch.no_grad():
        for start in range(0, n, batch_size):
            outputs = model.layer_outputs(images[start:start + batch_size].to(model.device), layers)
            for layer in layers:
                ranks[layer].append(_centred_ranks(outputs[layer].flatten(1).double()).cpu())
    tables = []
    for layer in layers:
        centred = torch.cat(ranks[layer])
        values = (centred[torch.as_tensor(first)] * centred[torch.as_tensor(second)]).sum(dim=1).numpy()
        tables.append(pd.DataFrame({"layer": layer, "first": first, "second": second, "fidelity": values}))
    table = pd.concat(tables, ignore_index=True)
    table.attrs.update(n_pairs=len(first), n_images=n)
    return table


class Metamer(PreImageSynthesis):
    """Images whose activations at one layer match those of natural images (paper 000).

    Starts from white noise centred in the pixel range, minimizes the squared error at ``layer``
    with Adam (lr 0.001; the paper runs 15 000 iterations), no other regularization, pixels in
    [0, 1]. Optionally each image stops as soon as its Spearman fidelity at the layer reaches
    ``stop_fidelity``.

    Parameters
    ----------
    model : LayeredModel
    images : tensor (n_images, 3, H, W) or StimulusSet
    layer : str
    linear_gradient : bool or "auto"
        Use the linear-gradient ReLU at the matched layer, as paper 000 did for every metamer
        generated after a ReLU. ``"auto"`` (default): on when `linear_gradient_applies` (a ReLU /
        ReLU6 module, or a ReLU-like function after the layer's module), off otherwise;
        ``True`` on a layer where it cannot apply raises ``ValueError``.
    stop_fidelity : float, optional
    check_every : int
        Steps between fidelity checks (ranking a large layer every step would cost more than the
        step itself); recorded in ``history``. With ``stop_fidelity`` an image stops at the first
        check it passes.
    lr : float
    seed : int

    Attributes
    ----------
    images : tensor, after `synthesize`
    fidelity_ : array (n_images,)
        Spearman fidelity at ``layer``.
    losses : array (n_steps, n_images)
    history : dict
        ``fidelity``: array (n_steps, n_images), the Spearman fidelity every ``check_every``
        steps (NaN between checks).
    n_iter_ : int array (n_images,)
    same_class_ : bool array (n_images,)
        The network gives the metamer its original's class (paper 000's first test); when one
        does not, `synthesize` warns that the step budget was too small.
    """

    method = "metamer"

    def __init__(self, model, images, layer, *, linear_gradient: bool | str = "auto", stop_fidelity: float | None = None,
                 check_every: int = 10, lr: float = 0.001, seed: int = 0, noise_sd: float = 0.1):
        super().__init__(model, layer, C=1.0, optimizer="adam", lr=lr, seed=seed)
        self.originals = as_image_tensor(images).detach().cpu()
        if linear_gradient == "auto":
            linear_gradient = linear_gradient_applies(model, layer)
        elif linear_gradient:
            with linear_gradient_relu(model, layer):  # validates the layer is a ReLU
                pass
        if stop_fidelity is not None and not 0 < stop_fidelity <= 1:
            raise ValueError(f"stop_fidelity: expected a correlation in (0, 1], found {stop_fidelity}")
        if check_every < 1:
            raise ValueError(f"check_every: expected a positive number of steps, found {check_every}")
        self.linear_gradient, self.stop_fidelity, self.check_every = bool(linear_gradient), stop_fidelity, int(check_every)
        with torch.no_grad():
            self.target = model.layer_outputs(self.originals.to(model.device), [layer])[layer].cpu()
        generator = torch.Generator().manual_seed(seed)
        self.start = (0.5 + noise_sd * torch.randn(self.originals.shape, generator=generator)).clamp(0, 1)
        self.fidelity_ = None
        self.n_iter_ = None
        self.same_class_ = None

    def _loss(self, features, index):
        target = self.target.to(features.device)[index]
        return (features - target).flatten(1).pow(2).sum(dim=1) / target.flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)

    def synthesize(self, max_iter: int = 15000, *, progress: bool | None = None, device=None):
        """Run the optimization; returns self."""
        device = resolve_device(device) if device is not None else self.model.device
        self.model.to(device)
        target = self.target.to(device)
        target_ranks = _centred_ranks(target.flatten(1))
        calls = {"n": 0}

        def objective(images, index):
            features = self.model.layer_outputs(images, [self.layer], validate=False)[self.layer]
            calls["n"] += 1
            if (calls["n"] - 1) % self.check_every == 0:  # also recorded without a stop, for progress plots
                fidelity = _spearman_to(features.detach().flatten(1), target_ranks[index])
            else:
                fidelity = torch.full((len(index),), float("nan"), device=device, dtype=torch.float64)
            return self._loss(features, index), {"fidelity": fidelity}

        criterion = None if self.stop_fidelity is None else (lambda aux, index: aux["fidelity"] >= self.stop_fidelity)
        context = linear_gradient_relu(self.model, self.layer) if self.linear_gradient else contextlib.nullcontext()
        with context:
            result = optimize_pixels(self.start, objective, criterion=criterion, optimizer="adam", lr=self.lr,
                                     max_iter=max_iter, device=device, progress=progress, desc="metamer",
                                     watch=None if self.stop_fidelity is None else ("fidelity", self.stop_fidelity))
        self.images, self.losses, self.history = result.images, result.loss_history, result.aux_history
        self.n_iter_ = self.n_iter = result.n_iter
        self.fidelity_ = layer_fidelity(self.model, self.images, self.originals, [self.layer])["fidelity"].to_numpy()
        self.same_class_ = self.model.predict(self.images) == self.model.predict(self.originals)
        if not self.same_class_.all():  # the paper's first test: a metamer the network labels otherwise is unfinished
            warnings.warn(f"metamer at {self.layer!r}: {int((~self.same_class_).sum())} of {len(self.images)} images "
                          f"are not given their original's class after {int(self.n_iter.max())} steps (paper 000 ran 15000); "
                          "they are not metamers yet: raise max_iter", UserWarning, stacklevel=2)
        return self

    def _table(self):
        return pd.DataFrame({"image": np.arange(len(self.images)), "layer": self.layer, "fidelity": self.fidelity_,
                             "same_class": self.same_class_})

    def acceptance(self, null: pd.DataFrame, *, quantile: float = 0.99) -> pd.DataFrame:
        """The paper's two tests: same predicted class as the original, and fidelity at the layer
        beyond the null's ``quantile`` (from `fidelity_null`)."""
        if self.images is None:
            raise RuntimeError("call synthesize() first")
        threshold = float(null.loc[null["layer"] == self.layer, "fidelity"].quantile(quantile))
        same = self.model.predict(self.images) == self.model.predict(self.originals)
        return pd.DataFrame({"image": np.arange(len(self.images)), "fidelity": self.fidelity_,
                             "null_threshold": threshold, "same_class": same,
                             "accepted": same & (self.fidelity_ > threshold)})

    def _state(self):
        return {**super()._state(), "originals": self.originals}

    def _settings(self):
        return {**super()._settings(), "linear_gradient": self.linear_gradient}

    @classmethod
    def _from_saved(cls, model, settings, saved):
        return cls(model, saved["originals"], settings["layer"], lr=settings["lr"], seed=settings["seed"],
                   linear_gradient=settings.get("linear_gradient", "auto"))

    def _restore(self, saved):
        super()._restore(saved)
        if self.images is not None:
            self.fidelity_ = layer_fidelity(self.model, self.images, self.originals, [self.layer])["fidelity"].to_numpy()


def cross_model_recognition(metamers: Mapping[tuple[str, str], Metamer], models: Mapping[str, LayeredModel], *,
                            labels=None) -> pd.DataFrame:
    """Does each model recognize each metamer? (paper 000)

    Parameters
    ----------
    metamers : mapping of (generating model name, layer) to a synthesized `Metamer`
    models : mapping of name to LayeredModel (the recognizers; may include the generators)
    labels : array of int (n_images,), optional
        True class of each original image (the same order in every metamer). With labels, a
        metamer is recognized when the recognizer gives its true class, as in the paper, and
        the original's own recognition is reported beside it; without, when the recognizer
        gives the class it gives the original.

    Returns
    -------
    DataFrame
        One row per (generator, layer, image, recognizer): ``same_class`` (metamer and original
        get the same class), and with ``labels``: ``label``, ``correct`` (the metamer gets the
        true class), ``original_correct``; ``chance`` is 1 / the recognizer's number of classes.
        The recognition rate is the mean over images.
    """
    rows = []
    for (generator, layer), metamer in metamers.items():
        if metamer.images is None:
            raise RuntimeError(f"metamer {(generator, layer)} has not been synthesized")
        truth = None
        if labels is not None:
            truth = np.asarray(labels, dtype=int)
            if truth.shape != (len(metamer.images),):
                raise ValueError(f"labels: expected one class per image ({len(metamer.images)}), found {truth.shape}")
        for name, model in models.items():
            probabilities = model.predict_proba(metamer.images)
            predicted = probabilities.argmax(axis=1)
            original = model.predict(metamer.originals)
            for i in range(len(predicted)):
                row = {"generator": generator, "layer": layer, "image": i, "recognizer": name,
                       "same_class": bool(predicted[i] == original[i]), "chance": 1.0 / probabilities.shape[1]}
                if truth is not None:
                    row.update(label=int(truth[i]), correct=bool(predicted[i] == truth[i]),
                               original_correct=bool(original[i] == truth[i]))
                rows.append(row)
    return pd.DataFrame(rows)
