"""Validation of image batches at the package boundary (shared by `models` and `stimuli`)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_image_tensor", "resize_and_crop"]


def as_image_tensor(images, *, name: str = "images") -> torch.Tensor:
    """Return `images` as a float32 tensor of shape (n_images, 3, H, W) with values in [0, 1].

    Accepts a `StimulusSet` (anything with an ``images`` tensor attribute), a torch tensor or a
    numpy array. A single image (3, H, W) becomes a batch of one. The tensor is not copied when it
    already has the right dtype, so gradients flow through it.

    Raises
    ------
    TypeError, ValueError
        With the name of the argument, what was expected and what was found.
    """
    if hasattr(images, "images") and isinstance(images.images, torch.Tensor):
        images = images.images
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8:
            raise ValueError(
                f"{name}: expected float images in [0, 1], found uint8; divide by 255 first "
                "(images are always floats in [0, 1] in brainprobe)"
            )
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name}: expected a StimulusSet, torch.Tensor or numpy array, found {type(images).__name__}"
        )
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"{name}: expected shape (n_images, 3, H, W), found {tuple(images.shape)}"
            + (" (channels last? use images.permute(0, 3, 1, 2))" if images.ndim == 4 and images.shape[-1] == 3 else "")
        )
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor in [0, 1], found dtype {images.dtype}")
    if images.dtype != torch.float32:
        images = images.float()
    with torch.no_grad():
        if images.numel():
            # one pass and no temporaries: min and max propagate NaN and show infinities (an
            # isfinite mask of 10,000 images would take several GB for a moment)
            lo, hi = (float(v) for v in torch.aminmax(images.detach()))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"{name}: contains NaN or infinite pixel values")
            # a tiny tolerance for values produced by float arithmetic on [0, 1] images
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise ValueError(
                    f"{name}: expected pixel values in [0, 1], found range [{lo:.4g}, {hi:.4g}]"
                    " (network normalization happens inside LayeredModel; pass raw pixels)"
                )
    return images


def resize_and_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and crop the centre square.

    Differentiable; images already ``size`` x ``size`` are returned unchanged.

    Parameters
    ----------
    images : tensor (n_images, C, H, W)
    size : int

    Returns
    -------
    tensor (n_images, C, size, size)
    """
    import torch.nn.functional as F

    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return images[..., top:top + size, left:left + size]
