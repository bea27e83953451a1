"""Natural colour images that ship inside installed packages (no download)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import torch

from .._images import resize_and_crop
from ._io import read_image
from ._stimulus_set import StimulusSet

__all__ = ["sample_images", "sample_patches", "SAMPLE_IMAGE_IDS"]


def _skimage(name):
    def load():
        from skimage import data

        image = getattr(data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle -> left view

    return load


def _sklearn(index):
    def load():
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _matplotlib(filename):
    def load():
        from matplotlib import cbook

        return read_image(cbook.get_sample_data(filename, asfileobj=False))

    return load


# image_id -> (category, loader). All are photographs in colour.
_SOURCES = {
    "chelsea": ("cat", _skimage("chelsea")),
    "coffee": ("coffee", _skimage("coffee")),
    "astronaut": ("person", _skimage("astronaut")),
    "rocket": ("rocket", _skimage("rocket")),
    "motorcycle": ("motorcycle", _skimage("stereo_motorcycle")),
    "china": ("building", _sklearn(0)),
    "flower": ("flower", _sklearn(1)),
    "grace_hopper": ("person", _matplotlib("grace_hopper.jpg")),
    "present": ("gift box", _matplotlib("Minduka_Present_Blue_Pack.png")),
    "hubble_deep_field": ("galaxy", _skimage("hubble_deep_field")),
    "immunohistochemistry": ("tissue", _skimage("immunohistochemistry")),
    "retina": ("retina", _skimage("retina")),
}
SAMPLE_IMAGE_IDS = tuple(_SOURCES)


def _as_float_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return image.astype(np.float32)


def sample_images(n: int | None = None, *, size: int = 224) -> StimulusSet:
    """Up to 12 natural colour photographs that ship with scikit-image, scikit-learn and matplotlib.

    Parameters
    ----------
    n : int, optional
        How many (the first ``n`` of `SAMPLE_IMAGE_IDS`); default all 12.
    size : int
        Shorter side resized to ``size``, centre square cropped.

    Returns
    -------
    StimulusSet
        ``kind`` RE, ``category`` a plain-words label (not an ImageNet class).

    Examples
    --------
    >>> from brainprobe.stimuli import sample_images
    >>> stim = sample_images(4, size=64)
    >>> stim.images.shape
    torch.Size([4, 3, 64, 64])
    """
    if importlib.util.find_spec("skimage") is None:
        raise ImportError("sample_images needs scikit-image: pip install 'brainprobe[demo]'")
    ids = list(_SOURCES)[: len(_SOURCES) if n is None else n]
    if n is not None and not 1 <= n <= len(_SOURCES):
        raise ValueError(f"n: expected 1..{len(_SOURCES)}, found {n}")
    tensors = []
    for image_id in ids:
        array = _as_float_rgb(_SOURCES[image_id][1]())
        tensors.append(resize_and_crop(torch.from_numpy(array).permute(2, 0, 1)[None], size).clamp(0, 1))
    table = pd.DataFrame({"image_id": ids, "category": [_SOURCES[i][0] for i in ids]})
    return StimulusSet(torch.cat(tensors), table)


def sample_patches(n: int, *, size: int = 32, photo_size: int = 96, crop: int = 48, seed: int = 0) -> torch.Tensor:
    """``n`` random crops of the bundled photographs: many natural images from a few, e.g. to fit
    or probe encoding models of small networks.

    Parameters
    ----------
    n : int
        Number of patches.
    size : int
        Side of each returned patch in pixels.
    photo_size : int
        The photographs are first resized to ``photo_size`` (`sample_images`).
    crop : int
        Side of the square cut from a photograph (``crop <= photo_size``), then resized to ``size``.
    seed : int

    Returns
    -------
    tensor (n, 3, size, size)
        Float pixels in [0, 1].

    Examples
    --------
    >>> from brainprobe.stimuli import sample_patches
    >>> sample_patches(8, size=32).shape
    torch.Size([8, 3, 32, 32])
    """
    if not 0 < crop <= photo_size:
        raise ValueError(f"crop: expected 1..photo_size ({photo_size}), found {crop}")
    photos = sample_images(size=photo_size).images
    generator = torch.Generator().manual_seed(seed)
    which = torch.randint(0, len(photos), (n,), generator=generator)
    corners = torch.randint(0, max(photo_size - crop, 1), (n, 2), generator=generator)
    crops = [photos[i:i + 1, :, y:y + crop, x:x + crop] for i, (y, x) in zip(which.tolist(), corners.tolist(), strict=True)]
    resized = [torch.nn.functional.interpolate(c, size=size, mode="bilinear", antialias=True) for c in crops]
    return torch.cat(resized).clamp(0, 1)
