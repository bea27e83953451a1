"""`LayeredModel`: a network, its input transform and the names of its layers."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._images import as_image_tensor, resize_and_crop

__all__ = ["LayerSpec", "LayeredModel", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LayerSpec:
    """Where a named layer's output is read.

    Parameters
    ----------
    module : str or None
        Dotted path of the module inside the network (as in ``network.named_modules()``);
        ``None`` reads the network's final output.
    post : callable, optional
        Applied to the module's output, e.g. a softmax for ``prob`` or the activation that a
        network applies functionally after a module (EfficientNet's shared ReLU6).
    output : int or str, optional
        For a module (or network) that returns a tuple, list, named tuple or dict of tensors
        (an attention block's ``(values, weights)``, a model output object): which element is
        the layer, by index, field name or key. Default: the first tensor element.
    """

    module: str | None
    post: Callable[[torch.Tensor], torch.Tensor] | None = None
    output: int | str | None = None


def _select_output(value, element: int | str | None, where: str) -> torch.Tensor:
    """The tensor of a module's output that a layer reads (see `LayerSpec.output`)."""
    if isinstance(value, torch.Tensor):
        if element is not None:
            raise KeyError(f"{where} returned one tensor: there is no element {element!r} to choose")
        return value
    if element is None:
        items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (tuple, list)) else ()
        found = next((item for item in items if isinstance(item, torch.Tensor)), None)
        if found is None:
            raise TypeError(f"{where} returned {type(value).__name__}, not a tensor nor a tuple, list or dict "
                            "holding one")
        return found
    try:
        found = value[element] if isinstance(element, int) or isinstance(value, Mapping) else getattr(value, element)
    except (IndexError, KeyError, AttributeError, TypeError):
        raise KeyError(f"{where} returned {type(value).__name__}, which has no element {element!r}") from None
    if not isinstance(found, torch.Tensor):
        raise TypeError(f"{where}: element {element!r} of its output is {type(found).__name__}, not a tensor")
    return found


class _StopForward(Exception):
    """Raised inside a hook once every requested layer is captured, to skip deeper layers."""


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=1)


class LayeredModel(nn.Module):
    """A torch network that takes images in [0, 1] and exposes its layers by name.

    The input transform (the weights' own: resize, centre crop, normalize; see `preprocess`) lives
    inside the model and is differentiable, so optimizers work in the pixel space a user sees.
    Parameters are frozen (``requires_grad=False``) and the network is kept in eval mode: the
    package analyses networks, it does not train them.

    Parameters
    ----------
    network : torch.nn.Module
        The network; its output must be class logits of shape (n_images, n_classes).
    layers : mapping of str to str or LayerSpec
        Ordered layer names, shallow to deep, each a module path or a `LayerSpec`.
    input_size : int
        Side of the square input the network expects.
    mean, std : sequence of 3 floats
        Per-channel normalization applied after resizing.
    class_names : sequence of str, optional
        One name per output class.
    name : str
        Short name of the architecture, used in tables and file names.
    weights_source : str
        Where the weights came from (a path, ``"random (seed 0)"``, ...), for reports.
    resize_size : int, optional
        The input transform of torchvision's weights (``weights.transforms()``): resize the
        shorter side to ``resize_size`` (torchvision's rounding of the longer side), then crop
        the centre ``input_size`` square. Default (None): resize the shorter side straight to
        ``input_size``.
    interpolation : {"bilinear", "bicubic"}
        Resampling of that resize (antialiased).
    channel_order : {"RGB", "BGR"}
        Channel order the network expects (Caffe networks: BGR).
    pixel_scale : float
        Pixels are multiplied by this before normalization (Caffe networks: 255, with the mean
        pixel as ``mean`` and ``std`` of 1).
    channels_last : bool
        Feed the network channels-last images (oneDNN on CPU and cuDNN pick faster kernels:
        on 2 CPU cores a gradient step through EfficientNet-Lite0 costs ~1.5x less, AlexNet
        conv2 ~1.2x). Layer outputs are returned in the standard layout either way. A network
        that cannot take them (a ``.view`` on a feature map) is detected on its first forward
        pass and then runs in the standard layout.

    Examples
    --------
    >>> import torch, torchvision
    >>> from brainprobe.models import LayeredModel
    >>> net = torchvision.models.alexnet(weights=None)
    >>> model = LayeredModel(net, {"conv1": "features.1", "fc8": "classifier.6"})
    >>> outs = model.layer_outputs(torch.rand(2, 3, 224, 224), ["conv1"])
    >>> tuple(outs["conv1"].shape)
    (2, 64, 55, 55)
    """

    def __init__(
        self,
        network: nn.Module,
        layers: Mapping[str, str | LayerSpec],
        *,
        input_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        class_names: Sequence[str] | None = None,
        name: str = "custom",
        weights_source: str = "unknown",
        resize_size: int | None = None,
        interpolation: str = "bilinear",
        channel_order: str = "RGB",
        pixel_scale: float = 1.0,
        channels_last: bool = True,
    ):
        super().__init__()
        self.network = network.eval()
        for p in self.network.parameters():
            p.requires_grad_(False)
        self._modules_by_path = dict(self.network.named_modules())
        self.layers: OrderedDict[str, LayerSpec] = OrderedDict(
            (layer_name, self._as_spec(spec, layer_name)) for layer_name, spec in layers.items()
        )
        self.input_size = int(input_size)
        self.resize_size = None if resize_size is None else int(resize_size)
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation: expected 'bilinear' or 'bicubic', found {interpolation!r}")
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order: expected 'RGB' or 'BGR', found {channel_order!r}")
        self.interpolation, self.channel_order, self.pixel_scale = interpolation, channel_order, float(pixel_scale)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.class_names = list(class_names) if class_names is not None else None
        self.name = name
        self.weights_source = weights_source
        self.channels_last = bool(channels_last)

    # -- layer names -------------------------------------------------------------------------
    def _as_spec(self, spec: str | LayerSpec, layer_name: str) -> LayerSpec:
        if isinstance(spec, str):
            spec = LayerSpec(spec)
        if not isinstance(spec, LayerSpec):
            raise TypeError(f"layer {layer_name!r}: expected a module path or LayerSpec, found {spec!r}")
        if spec.module is not None and spec.module not in self._modules_by_path:
            raise ValueError(
                f"layer {layer_name!r}: the network has no module {spec.module!r}; "
                f"some of its modules: {self.module_names()[:12]}"
            )
        return spec

    @property
    def layer_names(self) -> list[str]:
        """The default layer names, shallow to deep."""
        return list(self.layers)

    def module_names(self) -> list[str]:
        """Every module path in the network; each can be passed as a layer name."""
        return [path for path in self._modules_by_path if path]

    def resolve_layer(self, layer: str) -> LayerSpec:
        """The `LayerSpec` for a layer name, a raw module path, or ``"logits"`` (the network's output,
        unless a layer of that name exists): objectives that need a layer and the class logits
        read both in one forward pass."""
        if layer in self.layers:
            return self.layers[layer]
        if layer == "logits":
            return LayerSpec(None)
        if layer in self._modules_by_path and layer:
            return LayerSpec(layer)
        raise KeyError(
            f"unknown layer {layer!r} for model {self.name!r}; named layers: {self.layer_names} "
            "(any module path from model.module_names() works too)"
        )

    # -- forward passes ----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.mean.device

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1], shape (n_images, 3, H, W), to the network's input (differentiable).

        Images whose shorter side is at least ``resize_size`` (photos as a user brings them) go
        through exactly torchvision's ``weights.transforms()``: the shorter side resized to
        ``resize_size`` (torchvision's rounding), the centre ``input_size`` square cropped.
        Smaller images (the package's stimuli and syntheses, made at the network's
        ``input_size``, and the jittered crops of them an optimizer feeds) are taken as already
        framed: the shorter side is resized to ``input_size`` and the centre square cropped,
        which leaves ``input_size`` squares unchanged. (Framing those again would zoom them by
        ``resize_size / input_size`` and hide their borders from the network.) Then channels
        are reordered (BGR networks), scaled by ``pixel_scale`` and normalized.
        """
        if tuple(images.shape[-2:]) != (self.input_size, self.input_size):
            if self.resize_size is None or min(images.shape[-2:]) < self.resize_size:
                images = resize_and_crop(images, self.input_size)
            else:
                from torchvision.transforms import InterpolationMode
                from torchvision.transforms import functional as TF

                mode = InterpolationMode.BICUBIC if self.interpolation == "bicubic" else InterpolationMode.BILINEAR
                images = TF.resize(images, [self.resize_size], interpolation=mode, antialias=True)
                images = TF.center_crop(images, [self.input_size])
        if self.channel_order == "BGR":
            images = images.flip(1)
        if self.pixel_scale != 1.0:
            images = images * self.pixel_scale
        return (images - self.mean) / self.std

    def describe_transform(self) -> str:
        """The input transform in words (for reports and the README's network table)."""
        frame = (f"images of {self.resize_size} px or more: resize shorter side to {self.resize_size} "
                 f"({self.interpolation}, antialiased), centre crop {self.input_size}; smaller: resize shorter side "
                 f"to {self.input_size}, centre crop" if self.resize_size
                 else f"resize shorter side to {self.input_size}, centre crop")
        scale = f"x{self.pixel_scale:g}, " if self.pixel_scale != 1.0 else ""
        mean = [round(float(v), 4) for v in self.mean.flatten()]
        std = [round(float(v), 4) for v in self.std.flatten()]
        return f"{frame}; {self.channel_order}, {scale}minus mean {mean}, divided by std {std}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (n_images, n_classes), for images in [0, 1] (a network returning a
        tuple or dict: its first tensor)."""
        return _select_output(self._run_network(self.preprocess(images)), None, f"network {self.name!r}")

    def _run_network(self, inputs: torch.Tensor, before_retry: Callable[[], None] | None = None) -> torch.Tensor:
        if not self.channels_last or inputs.ndim != 4:
            return self.network(inputs)
        try:
            return self.network(inputs.contiguous(memory_format=torch.channels_last))
        except RuntimeError as error:
            if "view size is not compatible" not in str(error):
                raise
            # the network reshapes a feature map with .view: it needs the standard layout
            warnings.warn(f"model {self.name!r} cannot run channels-last ({error}); using the standard layout",
                          RuntimeWarning, stacklevel=3)
            self.channels_last = False
            if before_retry is not None:
                before_retry()
            return self.network(inputs)

    def layer_outputs(
        self,
        images,
        layers: Iterable[str] | None = None,
        *,
        stop_early: bool = True,
        validate: bool = True,
    ) -> OrderedDict[str, torch.Tensor]:
        """Outputs of the named layers for a batch of images, keeping the autograd graph.

        Parameters
        ----------
        images : tensor (n_images, 3, H, W) in [0, 1], numpy array or StimulusSet
        layers : iterable of str, optional
            Layer names or module paths; default: all named layers.
        stop_early : bool
            Skip the rest of the network once every requested layer is captured (much faster
            when only early layers are needed, e.g. when synthesizing against ``conv1``).
        validate : bool
            Check shape and range of ``images``; optimizers that already did so pass False.

        Returns
        -------
        OrderedDict of str to tensor
            One tensor per requested layer, in the order requested, each the true output of that
            layer: hooks copy outputs at once, so in-place operations that run later (such as
            torchvision's ``ReLU(inplace=True)``) cannot overwrite them.
        """
        if validate:
            images = as_image_tensor(images)
        names = self.layer_names if layers is None else list(layers)
        if not names:
            raise ValueError("layers: expected at least one layer name")
        specs = {name: self.resolve_layer(name) for name in names}
        by_module: dict[str, set] = {}  # module path -> the elements of its output that are read
        for spec in specs.values():
            if spec.module is not None:
                by_module.setdefault(spec.module, set()).add(spec.output)
        needs_output = any(spec.module is None for spec in specs.values())
        captured: dict[str, dict] = {}

        def make_hook(module_path: str):
            def hook(_module, _inputs, output):
                read = {element: _select_output(output, element, f"module {module_path!r}")
                        for element in by_module[module_path]}
                if module_path in captured:
                    raise RuntimeError(
                        f"module {module_path!r} runs more than once in one forward pass (a shared "
                        "module); its output is ambiguous; name a module that runs once"
                    )
                # copies in the standard layout (whatever layout the network ran in)
                captured[module_path] = {element: value.clone(memory_format=torch.contiguous_format)
                                         for element, value in read.items()}
                if stop_early and not needs_output and len(captured) == len(by_module):
                    raise _StopForward

            return hook

        handles = [self._modules_by_path[path].register_forward_hook(make_hook(path)) for path in by_module]
        network_output = None
        try:
            network_output = self._run_network(self.preprocess(images), before_retry=captured.clear)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        missing = [path for path in by_module if path not in captured]
        if missing:
            raise RuntimeError(f"modules {missing} did not run in the forward pass of {self.name!r}")
        outputs: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, spec in specs.items():
            value = (_select_output(network_output, spec.output, f"network {self.name!r}") if spec.module is None
                     else captured[spec.module][spec.output])
            outputs[name] = spec.post(value) if spec.post is not None else value
        return outputs

    # -- classification ----------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Softmax class probabilities, float64 array (n_images, n_classes)."""
        images = as_image_tensor(images)
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(self.device)
            chunks.append(torch.softmax(self.forward(batch).double(), dim=1).cpu())
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))

    def predict(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Top-1 class index per image, int array (n_images,)."""
        return self.predict_proba(images, batch_size=batch_size).argmax(axis=1)

    def class_name(self, index: int) -> str:
        """The name of class ``index`` (``"class <index>"`` when the model has no names)."""
        if self.class_names is None or not 0 <= index < len(self.class_names):
            return f"class {index}"
        return self.class_names[index]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_size={self.input_size}, layers={self.layer_names}"


def softmax_layer() -> LayerSpec:
    """The ``prob`` layer: softmax of the network's logits."""
    return LayerSpec(None, _softmax)
