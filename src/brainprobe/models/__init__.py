"""Networks with named layers, and activation extraction.

`load_model` builds a `LayeredModel` (a torch module taking images in [0, 1]); `extract` runs it
over an image set and returns `Activations`, one ``(n_images, n_units)`` array per layer.
"""

from ._extract import Activations, extract
from ._layered import IMAGENET_MEAN, IMAGENET_STD, LayeredModel, LayerSpec
from ._zoo import (
    CAFFE_TRANSFORM,
    IMAGENET_TRANSFORM,
    TRANSFORMS,
    architecture_notes,
    available_models,
    fetch_weights,
    find_local_weights,
    imagenet_class_names,
    import_network_builder,
    input_transform,
    is_custom_network,
    load_demo_model,
    load_model,
    resolve_device,
)

__all__ = [
    "CAFFE_TRANSFORM",
    "IMAGENET_TRANSFORM",
    "TRANSFORMS",
    "Activations",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LayerSpec",
    "LayeredModel",
    "architecture_notes",
    "available_models",
    "extract",
    "fetch_weights",
    "find_local_weights",
    "imagenet_class_names",
    "import_network_builder",
    "input_transform",
    "is_custom_network",
    "load_demo_model",
    "load_model",
    "resolve_device",
]
