"""Networks from other libraries: the input transform comes from the network's own source (timm,
open_clip, torchvision), never silently ImageNet's; modules returning tuples or dicts are read."""

import warnings
from collections import namedtuple

import pytest
import torch
import torchvision
from torch import nn

from brainprobe.models import LayerSpec, extract, input_transform, load_model

IMAGE = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(1))  # a photo-sized image


def _hooked(network, inputs, path):
    captured = {}
    handle = dict(network.named_modules())[path].register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("out", out.detach().clone()))
    with torch.no_grad():
        network(inputs)
    handle.remove()
    return captured["out"]


def test_a_timm_network_sees_images_through_timms_own_eval_transform():
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    network = timm.create_model("vit_tiny_patch16_224.augreg_in21k_ft_in1k", pretrained=False).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read from the network: no "records no transform" warning
        model = load_model(network, layers={"block2": "blocks.2"}, device="cpu")
    assert model.resize_size == 248 and model.interpolation == "bicubic"  # crop_pct 0.9, not ImageNet's 256
    torch.testing.assert_close(model.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))
    reference = create_transform(**resolve_data_config({}, model=network))  # timm's own, on the tensor image
    expected = _hooked(network, reference(IMAGE), "blocks.2")
    got = extract(model, IMAGE, ["block2"])["block2"]
    torch.testing.assert_close(torch.from_numpy(got), expected.reshape(1, -1), rtol=1e-4, atol=1e-4)


def test_an_open_clip_image_tower_gets_clip_normalization_not_imagenets():
    open_clip = pytest.importorskip("open_clip")
    from open_clip.transform import PreprocessCfg

    tower = nn.Sequential(nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(6))
    config = {"size": 64, "mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD,
              "interpolation": "bicubic", "resize_mode": "shortest"}
    open_clip.set_model_preprocess_cfg(tower, {**vars(PreprocessCfg()), **config})  # as create_model does
    tower(torch.zeros(1, 3, 64, 64))
    model = load_model(tower, layers={"conv": "1"}, device="cpu")
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))
    preprocess = open_clip.image_transform(64, is_train=False, mean=config["mean"], std=config["std"])
    expected = _hooked(tower, preprocess(IMAGE), "1")
    torch.testing.assert_close(torch.from_numpy(extract(model, IMAGE, ["conv"])["conv"]), expected.reshape(1, -1),
                               rtol=1e-4, atol=1e-4)
    # the preprocess Compose itself, given explicitly, is read the same way
    explicit = load_model(tower, layers={"conv": "1"}, transform=preprocess, device="cpu")
    assert explicit.describe_transform() == model.describe_transform()


def test_a_torchvision_builder_gets_its_weights_transform():
    model = load_model("torchvision.models:resnet50", layers={"block4": "layer4"}, device="cpu")
    assert model.resize_size == 232  # ResNet50's default (V2) weights: resize 232, crop 224
    given = load_model(torchvision.models.resnet18(), layers={"fc": "fc"},
                       transform=torchvision.models.ResNet18_Weights.IMAGENET1K_V1, device="cpu")
    assert given.describe_transform() == load_model("resnet18", None, device="cpu").describe_transform()
    assert input_transform("resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V1)["resize_size"] == 256


def test_a_network_that_records_nothing_is_warned_about_and_imagenet_can_be_chosen():
    network = nn.Sequential(nn.Conv2d(3, 2, 3))
    with pytest.warns(UserWarning, match="records no input transform.*transform="):
        model = load_model(network, layers={"conv": "0"}, device="cpu")
    assert model.resize_size == 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = load_model(network, layers={"conv": "0"}, transform="imagenet", device="cpu")
        own = load_model(network, layers={"conv": "0"}, transform={"input_size": 96, "resize_size": 110,
                                                                   "mean": (0.5, 0.5, 0.5), "std": (0.25,) * 3},
                         device="cpu")
    assert chosen.describe_transform() == model.describe_transform()
    assert own.input_size == 96 and own.resize_size == 110
    squash = torchvision.transforms.Compose([torchvision.transforms.Resize((224, 224)),
                                             torchvision.transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    with pytest.raises(ValueError, match="aspect ratio"):
        load_model(network, layers={"conv": "0"}, transform=squash, device="cpu")
    with pytest.raises(ValueError, match="unknown settings"):
        load_model(network, layers={"conv": "0"}, transform={"size": 3}, device="cpu")


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 8, stride=8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)  # returns (values, weights)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        values, _ = self.attn(tokens, tokens, tokens)
        Out = namedtuple("Out", "logits tokens")
        return Out(self.head(values.mean(1)), tokens)


def test_modules_returning_tuples_are_read_first_tensor_or_the_named_element():
    torch.manual_seed(0)
    network = _Attention().eval()
    model = load_model(network, layers={"attn": "attn", "weights": LayerSpec("attn", output=1),
                                        "tokens": LayerSpec(None, output="tokens")}, transform="imagenet", device="cpu")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    acts = extract(model, images)
    with torch.no_grad():
        tokens = network.embed(model.preprocess(images)).flatten(2).transpose(1, 2)
        values, weights = network.attn(tokens, tokens, tokens)
    torch.testing.assert_close(torch.from_numpy(acts["attn"]), values.reshape(2, -1))
    torch.testing.assert_close(torch.from_numpy(acts["weights"]), weights.reshape(2, -1))
    torch.testing.assert_close(torch.from_numpy(acts["tokens"]), tokens.reshape(2, -1))
    assert model.predict_proba(images).shape == (2, 5)  # the network's output: its first tensor, the logits
    wrong = load_model(network, layers={"x": LayerSpec("attn", output="nope")}, transform="imagenet", device="cpu")
    with pytest.raises(KeyError, match="no element 'nope'"):
        wrong.layer_outputs(images, ["x"])
