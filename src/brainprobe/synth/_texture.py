"""Gram-matrix texture representations and Gatys texture synthesis (paper 003)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import AgglomerativeClustering

from .._device import resolve_device
from .._images import as_image_tensor
from ..models import LayeredModel
from ..rsa import rdm
from ..stats import mutual_information
from ._core import optimize_pixels
from ._persistence import read_synthesis, write_synthesis
from ._synthesis import Synthesis, check_saved_model

__all__ = ["gram_matrices", "gram_vectors", "gram_rdms", "texture_clustering", "TextureSynthesis", "gram_loss"]


def _gram(features: torch.Tensor) -> torch.Tensor:
    flat = features.flatten(2)  # (n, N channels, M positions)
    return flat @ flat.transpose(1, 2)


def gram_matrices(model: LayeredModel, images, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """G^l = F^l F^l^T for each layer: tensors (n_images, N_l, N_l), summed over the M_l positions."""
    features = model.layer_outputs(as_image_tensor(images).to(model.device), list(layers), validate=False)
    return {layer: _gram(value) for layer, value in features.items()}


def gram_vectors(model: LayeredModel, images, layers: Sequence[str], *, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Upper triangles (with diagonal) of the Gram matrices: {layer: (n_images, N (N + 1) / 2)}."""
    images = as_image_tensor(images)
    parts: dict[str, list] = {layer: [] for layer in layers}
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            grams = gram_matrices(model, images[start:start + batch_size], layers)
            for layer, gram in grams.items():
                rows, cols = torch.triu_indices(gram.shape[1], gram.shape[2])
                parts[layer].append(gram[:, rows, cols].double().cpu().numpy())
    return {layer: np.concatenate(chunks) for layer, chunks in parts.items()}


def gram_rdms(model: LayeredModel, images, layers: Sequence[str], *, metric: str = "euclidean") -> dict[str, np.ndarray]:
    """One RDM per layer over the images' Gram representations (paper 003, Fig. 1)."""
    return {layer: rdm(vectors, metric) for layer, vectors in gram_vectors(model, images, layers).items()}


def texture_clustering(representations: dict[str, np.ndarray], labels, *, n_clusters: int | None = None,
                       correction: str = "nsb") -> pd.DataFrame:
    """Ward clustering of each layer's Gram vectors into as many clusters as label classes, and the
    mutual information between clusters and labels, NSB-corrected as in the paper (paper 003, Fig. 2;
    other corrections: `brainprobe.stats.mutual_information`).

    Returns
    -------
    DataFrame
        One row per layer: ``layer``, ``mi``, ``mi_plugin``, ``upper_bound``, ``n_clusters``.
    """
    labels = np.asarray(labels)
    n_clusters = n_clusters or len(np.unique(labels))
    rows = []
    for layer, vectors in representations.items():
        if len(vectors) != len(labels):
            raise ValueError(f"representations[{layer!r}]: {len(vectors)} rows for {len(labels)} labels")
        clusters = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(vectors)
        rows.append({"layer": layer, "n_clusters": n_clusters, **mutual_information(labels, clusters, correction=correction)})
    return pd.DataFrame(rows)


def gram_loss(grams: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], sizes: dict[str, tuple]) -> torch.Tensor:
    """Sum over layers of ||G - G_target||^2 / (N_l^2 M_l) per image (paper 003's layer weighting:
    with standardized activations each layer's expected loss is proportional to N_l^2 M_l)."""
    total = 0.0
    for layer, gram in grams.items():
        channels, positions = sizes[layer]
        total = total + (gram - targets[layer]).flatten(1).pow(2).sum(dim=1) / (channels**2 * positions)
    return total


NOISE_SD = 1.0 / 255


class TextureSynthesis(Synthesis):
    """Gatys texture synthesis: match an exemplar's Gram matrices with L-BFGS from Gaussian noise.

    Parameters
    ----------
    model : LayeredModel
    textures : tensor (n_images, 3, H, W) or StimulusSet
        Exemplar textures (each synthesized independently, in one batch).
    layers : sequence of str
    seed : int
    noise_sd : float
        The start is N(network mean, noise_sd^2) noise, clipped to [0, 1]: Gatys et al.'s start,
        one 8-bit grey level wide by default.
    standardize : bool
        Divide each layer's activations by the exemplar's RMS activation there before the Gram
        matrices, so paper 003's 1 / (N_l^2 M_l) weighting (derived for standardized batch-norm
        outputs) balances layers whose activations have different spreads.

    Attributes
    ----------
    images : tensor, after `synthesize`
    scales : dict of str to tensor (n_images,)
        Each exemplar's RMS activation per layer (ones with ``standardize=False``).
    losses : array (n_steps,)
        The Gram loss summed over images after each L-BFGS step.
    n_iter : int array (n_images,)
        L-BFGS steps of each image (each has its own optimizer and line search).
    """

    method = "texture"

    def __init__(self, model: LayeredModel, textures, layers: Sequence[str], *, seed: int = 0,
                 noise_sd: float = NOISE_SD, standardize: bool = True):
        for layer in layers:
            model.resolve_layer(layer)  # fail on unknown layers before any work
        if noise_sd < 0:
            raise ValueError(f"noise_sd: expected a standard deviation >= 0, found {noise_sd}")
        self.model, self.layers = model, list(layers)
        self.seed, self.noise_sd, self.standardize = seed, noise_sd, standardize
        self.textures = as_image_tensor(textures).detach().cpu()
        with torch.no_grad():
            features = model.layer_outputs(self.textures.to(model.device), self.layers)
        # paper 003 weights layer l by 1 / (N_l^2 M_l), derived for standardized activations (its
        # layers are batch norms); the layers here are not, and a layer with 5x the spread would
        # weigh 5^4 = 625x more, so each layer is divided by the exemplar's RMS activation there
        self.scales = {layer: (value.pow(2).mean(dim=(1, 2, 3)).sqrt().clamp_min(1e-12).cpu() if standardize
                               else torch.ones(len(value))) for layer, value in features.items()}
        self.targets = {layer: _gram(value.cpu() / self.scales[layer].view(-1, 1, 1, 1))
                        for layer, value in features.items()}
        self.sizes = {layer: (value.shape[1], int(np.prod(value.shape[2:]))) for layer, value in features.items()}
        generator = torch.Generator().manual_seed(seed)
        # Gatys et al.'s start: Gaussian noise around the network's mean input, one 8-bit grey
        # level wide by default (wider noise survives in directions the Gram matrices barely see:
        # colour speckle)
        centre = (model.mean.detach().cpu() / model.pixel_scale).view(1, 3, 1, 1)
        self.start = (centre + noise_sd * torch.randn(self.textures.shape, generator=generator)).clamp(0, 1)
        self.images, self.losses = None, np.zeros(0)
        self.n_iter, self.history = np.zeros(0, dtype=int), {}

    def loss(self, images: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Gram loss of each image against its exemplar: tensor (n_images,).

        ``index`` (n_images,) names the exemplar of each image (default: image i against exemplar
        i; one exemplar is compared with every image)."""
        device = images.device
        if index is None:
            index = torch.arange(len(images)) if len(self.textures) > 1 else torch.zeros(len(images), dtype=torch.long)
        index = torch.as_tensor(index).cpu()
        if len(index) != len(images):
            raise ValueError(f"index: expected one exemplar per image ({len(images)}), found {len(index)}")
        features = self.model.layer_outputs(images, self.layers, validate=False)
        grams = {k: _gram(v / self.scales[k][index].to(device).view(-1, 1, 1, 1)) for k, v in features.items()}
        targets = {k: v[index].to(device) for k, v in self.targets.items()}
        return gram_loss(grams, targets, self.sizes)

    def synthesize(self, max_iter: int = 100, *, lr: float = 1.0, progress: bool | None = None, device=None):
        """L-BFGS (PyTorch's, as in paper 003) on the optimization core, pixels kept in [0, 1]. Returns self."""
        device = resolve_device(device) if device is not None else self.model.device
        self.model.to(device)
        result = optimize_pixels(self.start, lambda images, index: (self.loss(images, index), {}), optimizer="lbfgs", lr=lr,
                                 max_iter=max_iter, device=device, progress=progress, desc="texture")
        self.images, self.n_iter, self.history = result.images, result.n_iter, result.aux_history
        self.losses = np.nansum(result.loss_history, axis=1)
        return self

    def _table(self):
        with torch.no_grad():
            start = self.loss(self.start.to(self.model.device)).double().cpu().numpy()
            end = self.loss(self.images.to(self.model.device)).double().cpu().numpy()
        return pd.DataFrame({"image": np.arange(len(self.images)), "layer": ",".join(self.layers),
                             "gram_loss_start": start, "gram_loss": end})

    def to(self, device):
        """Move the network (and later syntheses) to ``device``. Returns self."""
        self.model.to(device)
        return self

    def save(self, path, *, overwrite: bool = False):
        """Save exemplars, start, result and losses (not the network); read back with `load`."""
        settings = {"method": self.method, "layers": self.layers, "seed": self.seed, "noise_sd": self.noise_sd,
                    "standardize": self.standardize, "model": self.model.name, "n_iter": np.asarray(self.n_iter).tolist()}
        tensors = {"textures": self.textures, "start": self.start}
        if self.images is not None:
            tensors["images"] = self.images
        return write_synthesis(path, settings, tensors, self.losses, overwrite=overwrite)

    @classmethod
    def load(cls, path, model: LayeredModel) -> TextureSynthesis:
        """A synthesis saved by `save`, on ``model`` (the same network it was made with)."""
        settings, saved = read_synthesis(path, cls.method)
        check_saved_model(path, settings, model)
        obj = cls(model, saved["textures"], settings["layers"], seed=settings["seed"], noise_sd=settings["noise_sd"],
                  standardize=settings.get("standardize", False))
        obj.n_iter = np.asarray(settings.get("n_iter", []), dtype=int)
        obj.start = saved["start"]
        obj.images = saved.get("images")
        obj.losses = saved["losses"].numpy()
        return obj
