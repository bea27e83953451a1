"""Each network sees images as its weights expect: exactly torchvision's ``weights.transforms()``."""

import pytest
import torch
import torchvision

from brainprobe.models import extract, input_transform, load_model

CASES = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                 {"conv1": "relu", "layer2": "layer2", "fc": "fc"}),
    "alexnet": (torchvision.models.alexnet, torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
                {"conv1": "features.1", "conv5": "features.11", "fc8": "classifier.6"}),
}


def _hooked(network, inputs, paths):
    captured = {}
    handles = [dict(network.named_modules())[p].register_forward_hook(
        lambda _m, _i, out, p=p: captured.__setitem__(p, out.detach().clone())) for p in paths]
    with torch.no_grad():
        network(inputs)
    for handle in handles:
        handle.remove()
    return captured


@pytest.mark.parametrize("name", list(CASES))
def test_extract_on_a_300x400_image_equals_hooks_on_the_weights_own_transforms(name):
    build, weights, layers = CASES[name]
    model = load_model(name, None, seed=0, device="cpu")
    image = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(1))
    activations = extract(model, image, list(layers))
    reference = build(weights=None).eval()
    reference.load_state_dict(model.network.state_dict())  # the same random weights
    inputs = weights.transforms()(image)  # metadata only: building transforms() downloads nothing
    assert tuple(inputs.shape) == (1, 3, 224, 224)
    expected = _hooked(reference, inputs, list(layers.values()))
    for layer, path in layers.items():
        torch.testing.assert_close(torch.from_numpy(activations[layer]), expected[path].reshape(1, -1),
                                   rtol=1e-5, atol=1e-5)


def test_the_transforms_are_the_weights_own_or_caffes():
    assert input_transform("resnet50")["resize_size"] == 232  # ResNet50's V2 weights: resize 232, crop 224
    assert input_transform("alexnet")["resize_size"] == 256
    caffe = load_model("alexnet", None, transform="caffe", device="cpu")
    assert caffe.input_size == 227 and caffe.channel_order == "BGR"
    image = torch.rand(1, 3, 227, 227)
    expected = (image.flip(1) * 255 - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1))
    torch.testing.assert_close(caffe.preprocess(image), expected)
    assert "BGR" in caffe.describe_transform() and "227" in caffe.describe_transform()
    with pytest.raises(ValueError, match="transform: expected one of"):
        load_model("alexnet", None, transform="tf")
