"""Batched activation extraction."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from .._device import model_on
from .._errors import BrainprobeInputError, InputFileError, MissingFileError
from .._images import as_image_tensor, resize_and_crop
from .._memory import check_allocation, memory_budget_bytes
from .._npz import read_npz, write_npz
from .._progress import tqdm
from ._layered import LayeredModel
from ._store import LayerFolderWriter, check_output_folder, read_folder

__all__ = ["Activations", "extract"]


class Activations(dict):
    """Per-layer activations, ``{layer: float32 array (n_images, n_units)}``, rows aligned with the images.

    A plain dict with extra attributes: ``image_ids`` (the row labels when the images came
    from a StimulusSet, else None), ``shapes`` (each layer's unflattened unit shape),
    ``model_name``, and ``folder`` (the folder its arrays are memory-mapped from, see
    ``extract(..., out=...)``; None when they are in memory).
    """

    def __init__(self, arrays, *, image_ids: Sequence[str] | None = None, shapes=None, model_name: str = "",
                 folder=None):
        super().__init__(arrays)
        self.image_ids = None if image_ids is None else list(image_ids)
        self.shapes = dict(shapes or {})
        self.model_name = model_name
        self.folder = None if folder is None else Path(folder)

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
        """Read a ``.npz`` file written by `Activations.save`, or a folder written by
        ``extract(..., out=folder)`` (no pickles are loaded).

        A folder's layers come back as read-only memory maps (``np.memmap``, mode ``"r"``):
        nothing is read until a layer's values are used, and then only the pages touched. Each
        file is checked against the folder's ``activations.json`` (dtype, images, units).
        """
        if Path(path).is_dir():
            arrays, manifest = read_folder(path)
            return cls(arrays, image_ids=manifest.get("image_ids"), model_name=str(manifest.get("model_name", "")),
                       shapes={layer["name"]: tuple(layer["shape"]) for layer in manifest["layers"] if "shape" in layer},
                       folder=path)
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
        """A table, one row per layer: units, mean, std, fraction of exact zeros, constant units.

        Read in blocks of rows sized by the memory budget (`brainprobe._memory`), so memory-mapped
        layers larger than memory are summarized too; sums are taken in float64.
        """
        import pandas as pd

        rows = []
        for layer, values in self.items():
            rows.append(dict(layer=layer, n_units=values.shape[1],
                             shape="x".join(map(str, self.shapes.get(layer, (values.shape[1],)))),
                             **_layer_summary(values)))
        return pd.DataFrame(rows)


def _layer_summary(values: np.ndarray) -> dict:
    """Mean, std, fraction of zeros and constant units of one (n_images, n_units) layer, a block of
    rows at a time (two passes: the deviations from the mean, not the raw squares, are summed)."""
    n_images, n_units = values.shape
    if not values.size:
        return dict(mean=float("nan"), std=float("nan"), frac_zero=float("nan"), constant_units=0)
    step = max(1, memory_budget_bytes() // (4 * 8 * n_units))  # a few float64 copies of a block
    blocks = [slice(start, start + step) for start in range(0, n_images, step)]
    total, zeros = 0.0, 0
    low, high = np.full(n_units, np.inf), np.full(n_units, -np.inf)
    for rows in blocks:
        block = np.asarray(values[rows], dtype=np.float64)
        total += block.sum()
        zeros += int(np.count_nonzero(block == 0))
        np.minimum(low, block.min(axis=0), out=low)
        np.maximum(high, block.max(axis=0), out=high)
    mean = total / values.size
    squares = sum(float(((np.asarray(values[rows], dtype=np.float64) - mean) ** 2).sum()) for rows in blocks)
    return dict(mean=mean, std=float(np.sqrt(squares / values.size)), frac_zero=zeros / values.size,
                constant_units=int(np.count_nonzero(low == high)))


def extract(
    model: LayeredModel,
    images,
    layers: Iterable[str] | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    out=None,
    overwrite: bool = False,
) -> Activations:
    """Activations of ``model`` at ``layers`` for every image, in input order.

    Parameters
    ----------
    model : LayeredModel
    images : StimulusSet, tensor or array (n_images, 3, H, W) in [0, 1], or list of image paths
        A numpy array (a ``np.memmap`` or ``np.load(..., mmap_mode="r")`` of stored images
        included) is read and checked one batch at a time, and so are image files: each is read
        as `brainprobe.stimuli.load_folder` with ``size=model.input_size`` reads it (shorter
        side resized, centre square cropped), its id the file name without extension. Either
        way images on disk are never loaded whole.
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
    out : path, optional
        A folder to stream the activations into, for image sets whose activations do not fit in
        memory (AlexNet's eight layers take ~2 MB per image: 20 GB for NSD's 10,000). Each
        batch is appended to one float32 ``.npy`` file per layer, so at most one batch of
        activations is held at a time; the folder gets an ``activations.json`` manifest (image
        ids, layers, shapes, dtype, model) and appears only when every batch is written (an
        interrupted run leaves no partial folder under that name). The returned layers are
        read-only memory maps of those files; `Activations.load` reopens the folder later.
        Default: the activations are returned in memory.
    overwrite : bool
        With ``out``: replace activations an earlier ``extract`` wrote there. A folder holding
        anything else is never replaced.

    Returns
    -------
    Activations
        ``{layer: float32 array (n_images, n_units)}``, units flattened in C order from the
        layer's (channels, height, width); with ``out``, each array a read-only ``np.memmap``.

    Examples
    --------
    >>> import torch
    >>> from brainprobe.models import Activations, load_model, extract
    >>> model = load_model("alexnet", weights=None)
    >>> acts = extract(model, torch.rand(4, 3, 224, 224), layers=["conv1", "fc8"])
    >>> acts["fc8"].shape
    (4, 1000)
    >>> acts = extract(model, torch.rand(4, 3, 224, 224), out="acts/alexnet")  # doctest: +SKIP
    >>> Activations.load("acts/alexnet")["fc6"]                                # doctest: +SKIP
    memmap([[...]], dtype=float32)
    """
    source, image_ids, names = _prepare(model, images, layers, batch_size)
    if out is not None:
        if not names or not len(source):
            raise ValueError(f"out {out}: nothing to write ({len(source)} images, {len(names)} layers)")
        out = check_output_folder(out, overwrite)  # before the network runs, not after
        manifest = _manifest(model, image_ids)
    with model_on(model, device):
        batches = _forward_batches(model, source, names, batch_size, progress)
        if out is None:
            return _collect(batches, len(source), names, image_ids, model.name)
        return _stream(batches, len(source), out, overwrite, manifest)


def extract_within(model: LayeredModel, images, layers: Iterable[str] | None = None, *, spill, memory_bytes: int,
                   batch_size: int = 32, device: str | torch.device | None = None,
                   progress: bool | None = None) -> Activations:
    """`extract`, in memory when every layer's activations together take at most ``memory_bytes``,
    else streamed to the new folder ``spill`` as ``extract(..., out=spill)`` writes it.

    The choice is made at the first batch, where the layers' widths are known, so the network
    runs once either way, and both ways give the same float32 values bit for bit (the same
    batches through the same forward pass). The study's activations step uses it with
    ``[compute] memory_gb`` as ``memory_bytes``.

    Returns
    -------
    Activations
        In memory (``folder`` None), or read-only memory maps of the files in ``spill``.
    """
    source, image_ids, names = _prepare(model, images, layers, batch_size)
    spill = check_output_folder(spill, overwrite=False)
    manifest = _manifest(model, image_ids)
    with model_on(model, device):
        batches = _forward_batches(model, source, names, batch_size, progress)
        first = next(batches, None)
        if first is None:  # no images or no layers: nothing to stream
            return _collect(batches, len(source), names, image_ids, model.name)
        n_bytes = len(source) * sum(values.shape[1] for values in first[0].values()) * np.dtype(np.float32).itemsize
        batches = _prepend(first, batches)
        if n_bytes <= memory_bytes:
            return _collect(batches, len(source), names, image_ids, model.name)
        return _stream(batches, len(source), spill, False, manifest)


def _prepend(first, rest: Iterator) -> Iterator:
    """``first``, then what ``rest`` yields; closing it closes ``rest`` (its progress bar ends)."""
    try:
        yield first
        yield from rest
    finally:
        rest.close()


def _prepare(model: LayeredModel, images, layers, batch_size: int) -> tuple:
    """The image source, its ids (or None) and the layer names, every argument checked before any work."""
    image_ids = None
    if hasattr(images, "table") and "image_id" in images.table:
        image_ids = list(images.table["image_id"])
    if isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, os.PathLike)) for p in images):
        source = _ImageFiles(images, model.input_size)
        image_ids = source.image_ids
    else:
        source = _ImageSource(images)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
    # one name is one layer ("conv1"), never the letters of it; the softmax `prob` only when asked
    names = ([n for n in model.layer_names if n != "prob"] if layers is None
             else [layers] if isinstance(layers, str) else list(layers))
    for name in names:
        model.resolve_layer(name)  # fail on a bad name before any work
    return source, image_ids, names


def _manifest(model: LayeredModel, image_ids) -> dict:
    """A streamed folder's manifest fields, as JSON before the run (an id JSON cannot hold fails now)."""
    return {"image_ids": None if image_ids is None else [str(i) for i in image_ids],
            "model_name": str(model.name), "weights_source": str(model.weights_source),
            "brainprobe_version": __version__}


class _ImageSource:
    """The images, one batch at a time: tensors (already in memory) are checked once; numpy arrays
    (possibly memory maps) are checked and converted batch by batch, so they are never read whole."""

    def __init__(self, images):
        self.tensor, self.array = None, None
        if isinstance(images, np.ndarray) and images.ndim in (3, 4):
            self.array = images[None] if images.ndim == 3 else images
            self.batch(0, 1)  # dtype and shape, before any work
        else:
            self.tensor = as_image_tensor(images)

    def __len__(self) -> int:
        return len(self.tensor if self.tensor is not None else self.array)

    def batch(self, start: int, stop: int) -> torch.Tensor:
        if self.tensor is not None:
            return self.tensor[start:stop]
        chunk = self.array[start:stop]
        if not chunk.flags.writeable:  # a read-only memory map: torch wants its own (one batch) copy
            chunk = np.array(chunk)
        return as_image_tensor(chunk, name=f"images[{start}:{stop}]")


class _ImageFiles:
    """Image files read one batch at a time, as `brainprobe.stimuli.load_folder` (and ``brainprobe
    extract --size``) read them: shorter side resized to ``size``, centre square cropped."""

    def __init__(self, paths, size: int):
        self.paths, self.size = [Path(p) for p in paths], int(size)
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:  # every file is there before the network runs, not at batch 300
            raise MissingFileError(f"images: {len(missing)} file(s) not found: {', '.join(missing[:3])}"
                                   f"{', ...' if len(missing) > 3 else ''}")
        seen: dict[str, Path] = {}
        for path in self.paths:
            if path.stem in seen:
                raise BrainprobeInputError(f"images: {seen[path.stem]} and {path} would both be image {path.stem!r} "
                                           "(image ids are file names without extension); rename one")
            seen[path.stem] = path
        self.image_ids = list(seen)

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, start: int, stop: int) -> torch.Tensor:
        from ..stimuli import read_image

        paths = self.paths[start:stop]
        framed = [resize_and_crop(torch.from_numpy(read_image(path, size=self.size)).permute(2, 0, 1).unsqueeze(0),
                                  self.size).clamp(0.0, 1.0) for path in paths]
        return as_image_tensor(torch.cat(framed), name=f"images {paths[0]} ... {paths[-1]}")


def _forward_batches(model: LayeredModel, source: _ImageSource | _ImageFiles, names: list[str], batch_size: int,
                     progress: bool | None) -> Iterator[tuple[dict[str, np.ndarray], dict[str, tuple]]]:
    """Per batch: ``{layer: float32 array (batch, n_units)}`` and each layer's unit shape."""
    n_batches = -(-len(source) // batch_size)
    bar = tqdm(total=len(source), unit="img", desc=f"extract {model.name}",
               disable=(n_batches < 2 or None) if progress is None else not progress)
    with torch.no_grad(), bar:
        for start in range(0, len(source), batch_size):
            batch = source.batch(start, start + batch_size).to(model.device, non_blocking=True)
            outputs = model.layer_outputs(batch, names, validate=False)
            yield ({name: value.reshape(len(batch), -1).float().cpu().numpy() for name, value in outputs.items()},
                   {name: tuple(value.shape[1:]) for name, value in outputs.items()})
            bar.update(len(batch))


def _collect(batches, n_images: int, names: list[str], image_ids, model_name: str) -> Activations:
    """Fill one array per layer, allocated at the first batch (no list of chunks to concatenate:
    the peak is the result plus one batch, not twice the result)."""
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple] = {}
    row = 0
    for outputs, batch_shapes in batches:
        if not arrays:
            units = {name: values.shape[1] for name, values in outputs.items()}
            check_allocation(n_images * sum(units.values()) * 4, f"activations of {n_images} images at {list(units)}",
                             "pass out=<folder> to stream them to disk (read back as memory maps), or fewer layers")
            arrays = {name: np.empty((n_images, n_units), np.float32) for name, n_units in units.items()}
            shapes = batch_shapes
        for name, values in outputs.items():
            arrays[name][row:row + len(values)] = values
        row += len(next(iter(outputs.values())))
    if not arrays:
        arrays = {name: np.zeros((0, 0), np.float32) for name in names}
    return Activations(arrays, image_ids=image_ids, shapes=shapes, model_name=model_name)


def _stream(batches, n_images: int, out: Path, overwrite: bool, manifest: dict) -> Activations:
    """Append every batch to the per-layer files of a hidden folder, then rename it to ``out``."""
    writer = LayerFolderWriter(out, n_images, overwrite)
    try:
        for outputs, shapes in batches:
            writer.append(outputs, shapes)
        writer.commit(manifest)
    except BaseException:
        batches.close()  # the progress bar ends now, not when the generator is collected
        writer.abort()  # an exception or Ctrl-C: no partial folder is left behind
        raise
    return Activations.load(out)
