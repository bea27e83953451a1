import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainprobe.models import LayeredModel, extract, load_model

ALEXNET_SHAPES = {
    "conv1": (64, 55, 55),
    "conv2": (192, 27, 27),
    "conv3": (384, 13, 13),
    "conv4": (256, 13, 13),
    "conv5": (256, 13, 13),
    "fc6": (4096,),
    "fc7": (4096,),
    "fc8": (1000,),
    "prob": (1000,),
}


def test_alexnet_layer_names_and_shapes(alexnet, random_images):
    assert alexnet.layer_names == list(ALEXNET_SHAPES)
    outputs = alexnet.layer_outputs(random_images)
    for name, shape in ALEXNET_SHAPES.items():
        assert tuple(outputs[name].shape) == (len(random_images), *shape), name


def _manual_alexnet(net, x):
    """AlexNet written out by hand from its parameters, returning every paper layer."""
    f, c = net.features, net.classifier
    out = {}
    out["conv1"] = F.relu(f[0](x))
    out["conv2"] = F.relu(f[3](f[2](out["conv1"])))
    out["conv3"] = F.relu(f[6](f[5](out["conv2"])))
    out["conv4"] = F.relu(f[8](out["conv3"]))
    out["conv5"] = F.relu(f[10](out["conv4"]))
    pooled = torch.flatten(net.avgpool(f[12](out["conv5"])), 1)
    out["fc6"] = F.relu(c[1](pooled))
    out["fc7"] = F.relu(c[4](out["fc6"]))
    out["fc8"] = c[6](out["fc7"])
    out["prob"] = torch.softmax(out["fc8"], 1)
    return out


def test_hooked_activations_equal_manual_forward(alexnet, random_images):
    with torch.no_grad():
        expected = _manual_alexnet(alexnet.network, alexnet.preprocess(random_images))
        hooked = alexnet.layer_outputs(random_images)
    for name in ALEXNET_SHAPES:
        torch.testing.assert_close(hooked[name], expected[name], rtol=1e-5, atol=1e-5, msg=name)


def test_hooks_survive_inplace_relu(alexnet, random_images):
    # features.0 (conv1 before ReLU) is overwritten in place by torchvision's ReLU(inplace=True);
    # the hook must keep the pre-activation values, negatives included.
    with torch.no_grad():
        pre = alexnet.layer_outputs(random_images, ["features.0"])["features.0"]
        manual = alexnet.network.features[0](alexnet.preprocess(random_images))
    assert (pre < 0).any()
    torch.testing.assert_close(pre, manual)


def test_stop_early_gives_same_values(alexnet, random_images):
    with torch.no_grad():
        early = alexnet.layer_outputs(random_images, ["conv2"], stop_early=True)["conv2"]
        full = alexnet.layer_outputs(random_images, ["conv2", "prob"])["conv2"]
    torch.testing.assert_close(early, full)


def test_gradients_reach_pixels(alexnet):
    images = torch.rand(2, 3, 224, 224, requires_grad=True)
    alexnet.layer_outputs(images, ["conv3"])["conv3"].sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_extract_matches_layer_outputs_in_input_order(alexnet, random_images):
    acts = extract(alexnet, random_images, ["conv1", "fc7"], batch_size=2, device="cpu")
    with torch.no_grad():
        direct = alexnet.layer_outputs(random_images, ["conv1", "fc7"])
    for name in ("conv1", "fc7"):
        assert acts[name].dtype == np.float32
        assert acts[name].shape == (3, int(np.prod(direct[name].shape[1:])))
        np.testing.assert_allclose(acts[name], direct[name].reshape(3, -1).numpy(), rtol=1e-5, atol=1e-6)
    assert acts.shapes["conv1"] == (64, 55, 55)


def test_predict_proba_is_a_distribution(alexnet, random_images):
    proba = alexnet.predict_proba(random_images, batch_size=2)
    assert proba.shape == (3, 1000)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert alexnet.class_name(int(proba[0].argmax())) in alexnet.class_names
    assert alexnet.class_names[281] == "tabby"


def test_preprocess_resizes_non_square_images(alexnet):
    images = torch.rand(1, 3, 300, 451)
    assert alexnet.preprocess(images).shape == (1, 3, 224, 224)


def test_random_weights_are_seeded():
    a = load_model("alexnet", seed=3, device="cpu").network.features[0].weight
    b = load_model("alexnet", seed=3, device="cpu").network.features[0].weight
    c = load_model("alexnet", seed=4, device="cpu").network.features[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet18", "resnet50"])
def test_other_architectures_expose_their_layers(name):
    model = load_model(name, device="cpu")
    with torch.no_grad():
        outputs = model.layer_outputs(torch.rand(1, 3, 224, 224))
    assert list(outputs) == model.layer_names
    assert outputs["prob"].shape == (1, 1000)
    # every named module is reachable as a layer
    module = model.module_names()[3]
    assert model.layer_outputs(torch.rand(1, 3, 224, 224), [module])[module].shape[0] == 1


def test_unknown_layer_and_model_errors(alexnet):
    with pytest.raises(KeyError, match="unknown layer 'conv9'"):
        alexnet.layer_outputs(torch.rand(1, 3, 224, 224), ["conv9"])
    with pytest.raises(ValueError, match="unknown model 'alexnet2'"):
        load_model("alexnet2")
    with pytest.raises(ValueError, match="has no module"):
        LayeredModel(torch.nn.Linear(2, 2), {"x": "nope"})


def test_bad_image_inputs_are_named():
    model = load_model("alexnet", device="cpu")
    with pytest.raises(ValueError, match=r"expected pixel values in \[0, 1\]"):
        model.layer_outputs(torch.rand(1, 3, 224, 224) * 255)
    with pytest.raises(ValueError, match="channels last"):
        model.layer_outputs(torch.rand(1, 224, 224, 3))
    with pytest.raises(ValueError, match="uint8"):
        model.predict_proba(np.zeros((1, 3, 8, 8), np.uint8))


def test_shared_module_is_refused(efficientnet):
    # EfficientNet applies one ReLU6 module at the stem and the head: its output is ambiguous.
    with pytest.raises(RuntimeError, match="more than once"):
        efficientnet.layer_outputs(torch.rand(1, 3, 224, 224), ["_swish", "prob"])


def test_channels_last_gives_standard_layout_outputs_equal_to_the_standard_run(random_images):
    net = load_model("alexnet", weights=None, seed=0).network
    fast, plain = LayeredModel(net, {"conv2": "features.3"}), LayeredModel(net, {"conv2": "features.3"}, channels_last=False)
    with torch.no_grad():
        out = fast.layer_outputs(random_images, ["conv2"])["conv2"]
        ref = plain.layer_outputs(random_images, ["conv2"])["conv2"]
    assert out.is_contiguous()  # the standard layout, whatever layout the network ran in
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


class _ViewNet(torch.nn.Module):
    """A network that flattens a feature map with .view, which channels-last memory cannot take."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4)
        self.fc = torch.nn.Linear(4 * 56 * 56, 5)

    def forward(self, x):
        features = self.conv(x)
        return self.fc(features.view(features.shape[0], -1))


def test_a_network_that_needs_the_standard_layout_falls_back_once(random_images):
    torch.manual_seed(0)
    net = _ViewNet()
    model = LayeredModel(net, {"conv": "conv", "fc": "fc"})
    with pytest.warns(RuntimeWarning, match="cannot run channels-last"):
        outputs = model.layer_outputs(random_images, ["conv", "fc"])
    assert model.channels_last is False
    with torch.no_grad():
        expected = net(model.preprocess(random_images))
    torch.testing.assert_close(outputs["fc"], expected)
    logits = model(random_images)  # no second warning: the model now runs in the standard layout
    torch.testing.assert_close(logits, expected)
