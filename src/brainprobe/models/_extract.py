"""Batched activation extraction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .._device import model_on
from .._errors import InputFileError
from .._images import as_image_tensor
from .._npz import read_npz, write_npz
from .._progress import tqdm
from ._layered import LayeredModel

__all__ = ["Activations", "extract"]


class Activations(dict):
    """Per-layer activations, ``{layer: float32 array (n_images, n_units)}``, rows aligned with the images.

    A plain dict with two extra attributes: ``image_ids`` (the row labels when the images came
    from a StimulusSet, else None) and ``shapes`` (each layer's unflattened unit shape).
    """

    def __init__(self, arrays, *, image_ids: Sequence[str] | None = None, shapes=None, model_name: str = ""):
        super().__init__(arrays)
        self.image_ids = None if image_ids is None else list(image_ids)
        self.shapes = dict(shapes or {})
        self.model_name = model_name

    @property
    def layers(self) -> list[str]:
        return list(self)

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write to one ``.npz`` file (what ``brainprobe extract --out`` and the study's cache write).

        Each layer's array (n_images, n_units) under its own name, ``image_ids`` (the row
        labels), ``layers`` (their order), ``model_name`` and each layer's unflattened shape as
        ``shape:<layer>``. Read it back with `Activations.load` (or ``np.load``).

        Parameters
        ----------
        path : path to a ``.npz`` file
        overwrite : bool
            Replace an existing file; otherwise that is an error.
        """
        clash = sorted((set(self) & {"image_ids", "layers", "model_name"}) | {k for k in self if k.startswith("shape:")})
        if clash:
            raise ValueError(f"Activations.save: layer names {clash} are reserved in the .npz layout; rename them")
        arrays = {name: np.asarray(values) for name, values in self.items()}
        arrays["image_ids"] = np.asarray([] if self.image_ids is None else self.image_ids, dtype=str)
        arrays["layers"] = np.asarray(self.layers, dtype=str)
        arrays["model_name"] = np.asarray(self.model_name, dtype=str)
        arrays.update({f"shape:{name}": np.asarray(shape, dtype=np.int64) for name, shape in self.shapes.items()})
        return write_npz(path, arrays, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> Activations:
        """Read a file written by `Activations.save` (no pickles are loaded)."""
        arrays = read_npz(path, required=("layers", "image_ids"))
        layers = arrays["layers"].tolist()
        missing = [name for name in layers if name not in arrays]
        if missing:
            raise InputFileError(f"{path}: lists layers {missing} but holds no array for them")
        ids = arrays["image_ids"].tolist()
        n_images = len(arrays[layers[0]]) if layers else 0
        return cls({name: arrays[name] for name in layers}, image_ids=ids if ids or not n_images else None,
                   shapes={name: tuple(arrays[f"shape:{name}"].tolist()) for name in layers if f"shape:{name}" in arrays},
                   model_name=str(arrays["model_name"]) if "model_name" in arrays else "")

    @property
    def n_images(self) -> int:
        return len(next(iter(self.values()))) if self else 0

    def summary(self):
        """A table, one row per layer: units, mean, fraction of exact zeros, dead units."""
        import pandas as pd

        rows = []
        for layer, values in self.items():
            rows.append(
                dict(
                    layer=layer,
                    n_units=values.shape[1],
                    shape="x".join(map(str, self.shapes.get(layer, (values.shape[1],)))),
                    mean=float(values.mean()),
                    std=float(values.std()),
                    frac_zero=float((values == 0).mean()),
                    constant_units=int((values.std(axis=0) == 0).sum()),
                )
            )
        return pd.DataFrame(rows)


def extract(
    model: LayeredModel,
    images,
    layers: Iterable[str] | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> Activations:
    """Activations of ``model`` at ``layers`` for every image, in input order.

    Parameters
    ----------
    model : LayeredModel
    images : StimulusSet, tensor or array (n_images, 3, H, W) in [0, 1]
    layers : iterable of str, optional
        Layer names or module paths; default: all of the model's named layers but the softmax
        ``prob`` (as a study uses them: a probability layer is a monotone copy of the logits, and
        the trend tests over layers would differ between the two). Name ``"prob"`` to get it.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Where to run; default the model's own device. Another device is used for this call
        only: the model is moved back where it was afterwards.
    progress : bool, optional
        Show a progress bar; default: only when there are several batches and stderr is a terminal.

    Returns
    -------
    Activations
        ``{layer: float32 array (n_images, n_units)}``, units flattened in C order from the
        layer's (channels, height, width).

    Examples
    --------
    >>> import torch
    >>> from brainprobe.models import load_model, extract
    >>> model = load_model("alexnet", weights=None)
    >>> acts = extract(model, torch.rand(4, 3, 224, 224), layers=["conv1", "fc8"])
    >>> acts["fc8"].shape
    (4, 1000)
    """
    image_ids = None
    if hasattr(images, "table") and "image_id" in images.table:
        image_ids = list(images.table["image_id"])
    images = as_image_tensor(images)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
    # one name is one layer ("conv1"), never the letters of it; the softmax `prob` only when asked
    names = ([n for n in model.layer_names if n != "prob"] if layers is None
             else [layers] if isinstance(layers, str) else list(layers))
    for name in names:
        model.resolve_layer(name)  # fail on a bad name before any work
    with model_on(model, device):
        return _extract_batches(model, images, names, batch_size, progress, image_ids)


def _extract_batches(model: LayeredModel, images: torch.Tensor, names: list[str], batch_size: int,
                     progress: bool | None, image_ids) -> Activations:
    n_batches = -(-len(images) // batch_size)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    shapes: dict[str, tuple] = {}
    bar = tqdm(total=len(images), unit="img", desc=f"extract {model.name}",
               disable=(n_batches < 2 or None) if progress is None else not progress)
    with torch.no_grad(), bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(model.device, non_blocking=True)
            outputs = model.layer_outputs(batch, names, validate=False)
            for name, value in outputs.items():
                shapes[name] = tuple(value.shape[1:])
                chunks[name].append(value.reshape(len(batch), -1).float().cpu().numpy())
            bar.update(len(batch))
    arrays = {name: np.concatenate(parts) if parts else np.zeros((0, 0), np.float32) for name, parts in chunks.items()}
    return Activations(arrays, image_ids=image_ids, shapes=shapes, model_name=model.name)
