"""Fitted encoding models as differentiable functions of images, and their held-out accuracy.

An encoding model predicts a vertex's response as a linear readout of one layer's flattened
activations: ``coef_ @ features + intercept_`` (`fit_encoding_models` fits it on the raw
activations that `brainprobe.models.extract` returns, with any centring folded into the
intercept). `EncodingModule` puts that readout on top of the `LayeredModel`, so the chain
image -> network -> layer -> readout is one torch module a pixel optimizer can differentiate.
Only the feature columns some target reads are kept (a ROMP model of s = 5 reads at most 10
units per vertex), which makes the readout of a sparse model nearly free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from ..models import LayeredModel
from ..stats import accuracy_permutation_test, prediction_accuracy
from ._study import (
    EncodingModels,
    _as_subjects,
    heldout_predictions,
    layer_rows,
)

__all__ = ["EncodingModule", "encoding_modules", "heldout_accuracy"]


def _dense_columns(coef) -> tuple[np.ndarray, np.ndarray]:
    """The feature columns any target reads, and the coefficients restricted to them."""
    if sp.issparse(coef):
        coef = sp.csr_matrix(coef)
        used = np.unique(coef.indices)
        return used, np.asarray(coef[:, used].todense(), dtype=np.float64)
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    used = np.flatnonzero(np.any(coef != 0, axis=0))
    return used, coef[:, used]


class EncodingModule(nn.Module):
    """A fitted encoding model on top of its network: images -> predicted responses.

    ``forward(images)`` returns ``features[:, columns] @ weight.T + bias`` with ``features`` the
    layer's flattened output (C order, as `brainprobe.models.extract` stores it), i.e. exactly
    what the fitted estimator predicts from extracted activations, but differentiable with
    respect to the pixels.

    Parameters
    ----------
    network : LayeredModel
    layer : str
        The layer the model reads.
    coef : array or sparse matrix (n_targets, n_features)
    intercept : array (n_targets,)
    name : str
        How tables and plots call it (e.g. ``"sub-01 V1 conv3"``).
    accuracy : float
        The model's held-out accuracy (`heldout_accuracy`), reported with every synthesis.
    accuracy_null : float
        The 95th percentile of that accuracy's permutation null (`heldout_accuracy`'s
        ``accuracy_null95``); synthesis through a model whose accuracy is not above it is
        flagged (`brainprobe.synth.BrainSynthesis`). NaN: not tested.
    size : int, optional
        Image side the model was fitted at (default the network's input size); the layer's
        flattened size at that side must be n_features.

    Attributes
    ----------
    columns : long tensor (n_used,)
        Feature columns that some target reads.
    weight : tensor (n_targets, n_used)
    bias : tensor (n_targets,)

    Examples
    --------
    >>> from brainprobe.encoding import EncodingModule
    >>> v1 = EncodingModule.from_models(network, models, "sub-01", "V1", "conv2")  # doctest: +SKIP
    >>> v1.roi_response(images)  # (n_images,), differentiable  # doctest: +SKIP
    """

    def __init__(self, network: LayeredModel, layer: str, coef, intercept, *, name: str = "", accuracy: float = math.nan,
                 size: int | None = None, accuracy_null: float = math.nan):
        super().__init__()
        if not isinstance(network, LayeredModel):
            raise TypeError(f"network: expected a LayeredModel, found {type(network).__name__}")
        network.resolve_layer(layer)
        used, weight = _dense_columns(coef)
        intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
        if intercept.shape != (weight.shape[0],):
            raise ValueError(f"intercept: expected ({weight.shape[0]},) (one per target), found {intercept.shape}")
        if not (np.isfinite(weight).all() and np.isfinite(intercept).all()):
            raise ValueError("coef and intercept: contain NaN or infinite values")
        self.network, self.layer, self.name = network, layer, name or layer
        self.accuracy = float(accuracy)
        self.accuracy_null = float(accuracy_null)
        self.size = int(size or network.input_size)
        self.n_features = int(np.shape(coef)[1])
        with torch.no_grad():
            probe = network.layer_outputs(torch.zeros(1, 3, self.size, self.size, device=network.device), [layer],
                                          validate=False)[layer]
        if probe[0].numel() != self.n_features:
            raise ValueError(f"coef: {self.n_features} features, but layer {layer!r} of {network.name} has "
                             f"{probe[0].numel()} units at {self.size} px: fit and synthesize at the same image size")
        device = network.device
        self.register_buffer("columns", torch.as_tensor(used, dtype=torch.long, device=device))
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.as_tensor(intercept, dtype=torch.float32, device=device))

    @classmethod
    def from_estimator(cls, network: LayeredModel, layer: str, estimator, **options) -> EncodingModule:
        """From any fitted estimator with ``coef_`` (n_targets, n_features) and ``intercept_``."""
        coef = getattr(estimator, "coef_", None)  # once: a dual-form ridge forms its weights on each access
        if coef is None:
            raise ValueError(f"estimator: {type(estimator).__name__} is not fitted (no coef_)")
        return cls(network, layer, coef, estimator.intercept_, **options)

    @classmethod
    def from_models(cls, network: LayeredModel, models: EncodingModels, subject: str, roi: str, layer: str,
                    **options) -> EncodingModule:
        """The (subject, roi, layer) model of `fit_encoding_models`'s result."""
        key = (subject, roi, layer)
        if key not in models.models:
            raise KeyError(f"no encoding model for {key}; subjects {models.subjects}, ROIs {models.rois}, "
                           f"layers {models.layers}")
        options.setdefault("name", f"{subject} {roi} {layer}")
        return cls.from_estimator(network, layer, models[key], **options)

    @property
    def n_targets(self) -> int:
        return int(self.weight.shape[0])

    def readout(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted responses (n_images, n_targets) from the layer's output (n_images, ...)."""
        flat = features.flatten(1)
        return flat[:, self.columns] @ self.weight.T + self.bias

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted responses (n_images, n_targets) to images (n_images, 3, H, W) in [0, 1]."""
        return self.readout(self.network.layer_outputs(images, [self.layer], validate=False)[self.layer])

    def roi_response(self, images: torch.Tensor) -> torch.Tensor:
        """The ROI's predicted response: the mean over its targets, (n_images,)."""
        return self(images).mean(dim=1)

    @torch.no_grad()
    def predict(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Predicted responses as a float64 array (n_images, n_targets), without gradients."""
        images = torch.as_tensor(images)
        parts = [self(images[i:i + batch_size].to(self.weight.device)).double().cpu()
                 for i in range(0, len(images), batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.n_targets))

    def state(self) -> dict:
        """What `from_state` needs besides the network (tensors and JSON-able settings)."""
        return {"columns": self.columns.cpu(), "weight": self.weight.cpu(), "bias": self.bias.cpu(),
                "settings": {"layer": self.layer, "name": self.name, "accuracy": self.accuracy, "size": self.size,
                             "accuracy_null": self.accuracy_null,
                             "n_features": self.n_features}}

    @classmethod
    def from_state(cls, network: LayeredModel, state: dict) -> EncodingModule:
        """Rebuild a module saved with `state` on ``network``."""
        settings = state["settings"]
        weight = state["weight"].numpy().astype(np.float64)
        n_targets, n_used = weight.shape
        rows = np.repeat(np.arange(n_targets), n_used)
        coef = sp.csr_matrix((weight.ravel(), (rows, np.tile(state["columns"].numpy(), n_targets))),
                             shape=(n_targets, settings["n_features"]))
        return cls(network, settings["layer"], coef, state["bias"].numpy(), name=settings["name"],
                   accuracy=settings["accuracy"], size=settings["size"],
                   accuracy_null=settings.get("accuracy_null", math.nan))

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, layer={self.layer!r}, n_targets={self.n_targets}, "
                f"n_used_features={len(self.columns)}, accuracy={self.accuracy:.3g}")


def heldout_accuracy(models: EncodingModels, activations, responses, *, cv: int = 5, per: str = "centered",
                     estimator=None, n_perm: int = 1000, seed=0) -> pd.DataFrame:
    """Each model's accuracy on training images it did not see, by ``cv``-fold cross-validation.

    The models are refitted on each fold's training images (with ``estimator``, default a clone
    of the fitted model) and predict the held-out fold; the accuracy (`brainprobe.stats.
    prediction_accuracy` of ``per``) is computed once over all held-out predictions. The folds'
    fits are kept in ``models.heldout`` and shared with `best_layer` (`heldout_predictions`).
    Its null: the same accuracy with the images of the held-out predictions relabeled ``n_perm``
    times (`brainprobe.stats.accuracy_permutation_test`; exact when every relabeling fits); a
    model whose accuracy is not above the null's 95th percentile predicts nothing a synthesis
    could rely on.

    Returns
    -------
    DataFrame
        One row per (subject, roi, layer): ``heldout_accuracy``, ``accuracy_null95`` (95th
        percentile of the permutation null; NaN when ``n_perm=0``), ``accuracy_p`` (one-sided
        permutation p; NaN when ``n_perm=0``), ``n_perm``, ``accuracy_definition``, ``n_images``,
        ``n_vertices``, ``cv``.
    """
    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    subjects = _as_subjects(responses)
    records = []
    for subject in models.subjects:
        patterns, table = subjects[subject].average_repeats()
        if estimator is None:  # every ROI of a layer from one fit per fold, once
            models._cross_validate_subject(subject, patterns, table, activations, cv)
        ids = models.train_images[subject]
        rows = pd.Series(np.arange(len(table)), index=table["image_id"].tolist()).loc[ids].to_numpy()
        n_folds = min(cv, len(ids))
        for layer in models.layers:
            X = layer_rows(activations, layer, ids)
            for roi in models.rois:
                columns = models.columns[(subject, roi)]
                measured = patterns[rows][:, columns]
                predicted = heldout_predictions(models, subject, roi, layer, X, measured, cv, estimator)
                null95, p_value, n_used = math.nan, math.nan, 0
                if n_perm > 0:
                    _, null, p_value = accuracy_permutation_test(predicted, measured, per=per, n_perm=n_perm,
                                                                 seed=rng)
                    null95, n_used = float(np.quantile(null, 0.95)), len(null)
                records.append({"subject": subject, "roi": roi, "layer": layer,
                                "heldout_accuracy": prediction_accuracy(predicted, measured, per=per),
                                "accuracy_null95": null95, "accuracy_p": p_value, "n_perm": n_used,
                                "accuracy_definition": per, "n_images": len(ids), "n_vertices": len(columns),
                                "cv": n_folds})
    return pd.DataFrame.from_records(records)


def encoding_modules(network: LayeredModel, models: EncodingModels, *, subject: str | None = None,
                     rois: Sequence[str] | None = None, layers: Sequence[str] | None = None,
                     accuracy: pd.DataFrame | None = None, size: int | None = None) -> dict:
    """`EncodingModule` for every chosen (roi, layer) of one subject, keyed ``"roi layer"``.

    ``accuracy`` (`heldout_accuracy`'s table) fills each module's ``accuracy`` and
    ``accuracy_null``.
    """
    subject = models.subjects[0] if subject is None else subject
    found = {}
    for roi in (models.rois if rois is None else rois):
        for layer in (models.layers if layers is None else layers):
            score = null95 = math.nan
            if accuracy is not None:
                match = accuracy[(accuracy["subject"] == subject) & (accuracy["roi"] == roi) & (accuracy["layer"] == layer)]
                score = float(match["heldout_accuracy"].iloc[0]) if len(match) else math.nan
                if len(match) and "accuracy_null95" in match:
                    null95 = float(match["accuracy_null95"].iloc[0])
            found[f"{roi} {layer}"] = EncodingModule.from_models(network, models, subject, roi, layer,
                                                                 name=f"{roi} {layer}", accuracy=score, size=size,
                                                                 accuracy_null=null95)
    return found
