"""A network's input transform as `LayeredModel` keyword arguments, from where its library keeps it.

A network expects its inputs framed and normalized as it was trained: a CLIP model wants CLIP's
mean and std and bicubic resizing, not ImageNet's. For a network of the user's, the transform is
read from the network itself when its library records it:

- timm: ``network.pretrained_cfg`` (older timm: ``default_cfg``): ``input_size``, ``crop_pct``,
  ``interpolation``, ``mean``, ``std``; the frame is timm's evaluation transform (shorter side
  to ``floor(size / crop_pct)``, centre crop ``size``).
- open_clip: ``visual.preprocess_cfg`` (older open_clip: ``visual.image_size``, ``image_mean``,
  ``image_std``); shorter side to ``size``, centre crop ``size``, bicubic unless it says otherwise.
- torchvision builders (``"torchvision.models:resnet18"``): the builder's default weights'
  ``transforms()``.

An explicit transform always wins: ``"imagenet"``, ``"caffe"``, a dict of `LayeredModel`
keyword arguments, a torchvision weights enum member, its ``transforms()`` preset, or a
``Compose`` of Resize / CenterCrop / Normalize (what timm's ``create_transform`` and open_clip's
``preprocess`` return). A network that records nothing gets torchvision's ImageNet transform
with a warning that says how to choose.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

from torch import nn

from ._layered import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CAFFE_TRANSFORM", "IMAGENET_TRANSFORM", "TRANSFORMS", "network_transform", "resolve_custom_transform",
           "transform_settings"]

TRANSFORMS = ("default", "imagenet", "caffe")
# Caffe's ImageNet networks (the study's AlexNet): 227 px crops of 256 px images, BGR channels in
# 0..255 minus the ImageNet mean pixel (B, G, R), no scaling by a standard deviation
CAFFE_TRANSFORM = {"input_size": 227, "resize_size": 256, "interpolation": "bilinear", "channel_order": "BGR",
                   "pixel_scale": 255.0, "mean": (104.0, 117.0, 123.0), "std": (1.0, 1.0, 1.0)}
# what torchvision's ImageNet weights expect (ImageClassification: resize 256, crop 224)
IMAGENET_TRANSFORM = {"input_size": 224, "resize_size": 256, "interpolation": "bilinear", "channel_order": "RGB",
                      "pixel_scale": 1.0, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
_KEYS = set(IMAGENET_TRANSFORM)
# steps of a Compose that do nothing to float RGB tensors in [0, 1] (they convert PIL images)
_NEUTRAL_STEPS = ("ToTensor", "PILToTensor", "MaybeToTensor", "MaybeConvertMode", "ConvertImageDtype", "ToImage",
                  "_convert_to_rgb", "convert_to_rgb")


def _settings(input_size, resize_size, interpolation, mean, std, where: str) -> dict:
    interpolation = str(getattr(interpolation, "value", interpolation)).lower()
    if interpolation not in ("bilinear", "bicubic"):
        raise ValueError(f"{where}: interpolation {interpolation!r}: brainprobe resizes bilinear or bicubic; "
                         "pass transform= explicitly")
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"{where}: expected 3 channel means and stds (RGB), found {mean} and {std}")
    return {"input_size": int(input_size), "resize_size": None if resize_size is None else int(resize_size),
            "interpolation": interpolation, "channel_order": "RGB", "pixel_scale": 1.0, "mean": mean, "std": std}


def _square(size, where: str) -> int:
    sizes = [int(size)] if isinstance(size, int) else [int(s) for s in size]
    if len(set(sizes)) != 1:
        raise ValueError(f"{where}: a non-square size {tuple(sizes)}; brainprobe crops squares: pass transform=")
    return sizes[0]


def _from_timm(config: Mapping, where: str) -> dict:
    size = _square(config.get("input_size", (3, 224, 224))[-2:], where)
    crop_pct = config.get("crop_pct") or 0.875  # timm's DEFAULT_CROP_PCT
    if config.get("crop_mode", "center") not in (None, "center"):
        raise ValueError(f"{where}: crop_mode {config['crop_mode']!r}: only timm's 'center' frame is supported; "
                         "pass transform=")
    return _settings(size, math.floor(size / crop_pct), config.get("interpolation") or "bilinear",
                     config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD), where)


def _from_open_clip(config: Mapping, where: str) -> dict:
    if config.get("resize_mode", "shortest") != "shortest":
        raise ValueError(f"{where}: resize_mode {config['resize_mode']!r}: only open_clip's 'shortest' is "
                         "supported; pass transform=")
    size = _square(config.get("size", 224), where)
    return _settings(size, size, config.get("interpolation") or "bicubic", config["mean"], config["std"], where)


def _from_compose(steps, where: str) -> dict:
    found: dict = {}
    for step in steps:
        kind = getattr(step, "__name__", None) or type(step).__name__  # a function, else the class
        if kind == "Resize":
            size = step.size if isinstance(step.size, int) else list(step.size)
            if isinstance(size, list) and len(size) != 1:
                raise ValueError(f"{where}: Resize{tuple(size)} changes the aspect ratio; brainprobe resizes the "
                                 "shorter side: pass a dict of LayeredModel settings instead")
            found["resize_size"] = size if isinstance(size, int) else size[0]
            found["interpolation"] = step.interpolation
        elif kind == "CenterCrop":
            found["input_size"] = _square(step.size, where)
        elif kind == "Normalize":
            found["mean"], found["std"] = step.mean, step.std
        elif kind not in _NEUTRAL_STEPS:
            raise ValueError(f"{where}: step {kind or step!r} has no equivalent in brainprobe's input transform "
                             "(Resize, CenterCrop, Normalize); pass a dict of LayeredModel settings instead")
    if "mean" not in found:
        raise ValueError(f"{where}: no Normalize step; pass a dict of LayeredModel settings instead")
    input_size = found.get("input_size", found.get("resize_size"))
    if input_size is None:
        raise ValueError(f"{where}: neither Resize nor CenterCrop: the input size is unknown")
    return _settings(input_size, found.get("resize_size"), found.get("interpolation", "bilinear"),
                     found["mean"], found["std"], where)


def transform_settings(transform, where: str = "transform") -> dict:
    """An explicit transform as `LayeredModel` keyword arguments.

    Parameters
    ----------
    transform : str, dict, torchvision weights, preset or Compose
        ``"imagenet"`` or ``"caffe"``; a dict of `LayeredModel` keyword arguments (the missing
        ones as torchvision's ImageNet transform); a torchvision weights enum member or its
        ``transforms()``; a ``Compose`` of Resize (shorter side), CenterCrop and Normalize, as
        timm's ``create_transform`` and open_clip's ``preprocess`` return.
    """
    if isinstance(transform, str):
        if transform == "imagenet":
            return dict(IMAGENET_TRANSFORM)
        if transform == "caffe":
            return dict(CAFFE_TRANSFORM)
        raise ValueError(f"{where}: expected one of {TRANSFORMS} or a transform object, found {transform!r}")
    if isinstance(transform, Mapping):
        unknown = sorted(set(transform) - _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown settings {unknown}; expected some of {sorted(_KEYS)}")
        return {**IMAGENET_TRANSFORM, **transform}
    if hasattr(transform, "transforms") and callable(transform.transforms):  # a torchvision weights member
        transform = transform.transforms()
    if all(hasattr(transform, a) for a in ("crop_size", "resize_size", "mean", "std", "interpolation")):
        return _settings(_square(transform.crop_size, where), _square(transform.resize_size, where),
                         transform.interpolation, transform.mean, transform.std, where)
    if isinstance(getattr(transform, "transforms", None), (list, tuple)):
        return _from_compose(transform.transforms, where)
    raise ValueError(f"{where}: expected one of {TRANSFORMS}, a dict of LayeredModel settings, torchvision weights "
                     f"or a Compose, found {type(transform).__name__}")


def network_transform(network: nn.Module, builder: Callable | None = None, where: str = "network") -> dict | None:
    """The transform a network's own library records (timm, open_clip, torchvision builders), or None."""
    config = getattr(network, "pretrained_cfg", None) or getattr(network, "default_cfg", None)
    if isinstance(config, Mapping) and "mean" in config:
        return _from_timm(config, f"{where} (timm pretrained_cfg)")
    visual = getattr(network, "visual", network)
    config = getattr(visual, "preprocess_cfg", None)
    if not config and getattr(visual, "image_mean", None) is not None:  # open_clip before preprocess_cfg
        config = {"size": visual.image_size, "mean": visual.image_mean, "std": visual.image_std}
    if isinstance(config, Mapping) and "mean" in config:
        return _from_open_clip(config, f"{where} (open_clip preprocess_cfg)")
    if builder is not None and getattr(builder, "__module__", "").startswith("torchvision.models"):
        import torchvision

        try:
            weights = torchvision.models.get_model_weights(builder)
        except (KeyError, ValueError):
            return None
        return transform_settings(weights.DEFAULT, f"{where} (torchvision {weights.__name__})")
    return None


def resolve_custom_transform(network: nn.Module, transform, builder: Callable | None, label: str) -> dict:
    """The transform of a network of the user's: the explicit one, else its own, else ImageNet's (warned)."""
    where = f"network {label!r}"
    if not (isinstance(transform, str) and transform == "default"):
        return transform_settings(transform, f"{where}: transform")
    found = network_transform(network, builder, where)
    if found is not None:
        return found
    warnings.warn(
        f"{where}: it records no input transform (no timm pretrained_cfg, open_clip preprocess_cfg or "
        "torchvision weights), so it gets torchvision's ImageNet transform (resize 256, crop 224, ImageNet mean "
        "and std). A network trained otherwise (CLIP, Caffe, TF) then sees wrongly normalized images: pass "
        "transform= its own (a dict, torchvision weights, a Compose, 'caffe'), or transform='imagenet' to "
        "confirm ImageNet's", UserWarning, stacklevel=4)
    return dict(IMAGENET_TRANSFORM)
