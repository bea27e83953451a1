import numpy as np
import pytest
import torch

from brainprobe.models import load_model
from brainprobe.stimuli import sample_images
from brainprobe.synth import ActivationMaximization, Caricature, Inversion, PreImagePrior


@pytest.fixture(scope="module")
def photo():
    return sample_images(1, size=224).images


@pytest.fixture(scope="module")
def random_alexnet():
    return load_model("alexnet", weights=None, seed=0, device="cpu")


@pytest.mark.parametrize("which", ["random_alexnet", "efficientnet"])
def test_early_layer_inversion_is_faithful(which, photo, request):
    model = request.getfixturevalue(which)
    layer = {"alexnet": "conv1", "efficientnet_lite0": "stem"}[model.name]
    inversion = Inversion(model, photo, layer, C=300).synthesize(300, progress=False)
    assert inversion.reconstruction_error_[0] < 0.2, inversion.reconstruction_error_
    # the start was noise: the information came from the code alone
    assert Inversion(model, photo, layer, C=300).reconstruction_error(inversion.start)[0] > 0.5


def test_deeper_inversions_lower_their_energy(random_alexnet, photo):
    for layer in ("conv3", "fc7"):
        losses = Inversion(random_alexnet, photo, layer, C=300).synthesize(90, progress=False).losses[:, 0]
        thirds = [np.mean(part) for part in np.array_split(losses, 3)]
        assert thirds[0] > thirds[1] > thirds[2], thirds


def test_masked_inversion_only_matches_the_mask(random_alexnet, photo):
    mask = torch.zeros(1, 64, 1, 1)
    mask[:, :8] = 1.0  # the first 8 channels of conv1
    inversion = Inversion(random_alexnet, photo, "conv1", mask=mask, C=300).synthesize(150, progress=False)
    full = Inversion(random_alexnet, photo, "conv1", C=300)
    at_start = inversion.reconstruction_error(inversion.start)[0]
    assert inversion.reconstruction_error_[0] < 0.5 * at_start  # the masked channels are matched ...
    assert full.reconstruction_error(inversion.images)[0] > inversion.reconstruction_error_[0]  # ... not the rest
    with pytest.raises(ValueError, match="does not broadcast"):
        Inversion(random_alexnet, photo, "conv1", mask=torch.ones(5))


def test_activation_maximization_raises_the_unit_tenfold(efficientnet):
    am = ActivationMaximization(efficientnet, "logits", unit=281, n_images=1, jitter_amount=4)
    before = am.response(am.start)[0]
    after = am.response(am.synthesize(100, progress=False).images)[0]
    assert after >= 10 * max(before, 1e-3), (before, after)
    assert am.receptive_field == 224 and am.Z > 0


def test_caricature_exaggerates_what_the_layer_sees(efficientnet, photo):
    caricature = Caricature(efficientnet, photo, "block4")
    before = caricature.alignment(photo)[0]
    after = caricature.alignment(caricature.synthesize(60, progress=False).images)[0]
    assert after > 1.2 * before


def test_prior_constants_scale_with_the_network(random_alexnet, efficientnet):
    alexnet_prior, efficient_prior = PreImagePrior.for_model(random_alexnet), PreImagePrior.for_model(efficientnet)
    # B = 80 Caffe units: 80 / (255 x mean std) in each network's input units
    assert alexnet_prior.bounds["B"] == pytest.approx(80 / (255 * np.mean([0.229, 0.224, 0.225])))
    assert efficient_prior.bounds["B"] == pytest.approx(80 / 128)  # TF-Lite input: (x - 127) / 128
    assert alexnet_prior.bounds["B_plus"] == pytest.approx(2 * alexnet_prior.bounds["B"])
    images = torch.rand(2, 3, 16, 16)
    projected = alexnet_prior.project(images * 0 + torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1))
    z = alexnet_prior.input_units(projected)
    assert float(z.pow(2).sum(dim=1).sqrt().max()) <= alexnet_prior.bounds["B_plus"] + 1e-4


def test_save_load_round_trip(random_alexnet, photo, tmp_path):
    inversion = Inversion(random_alexnet, photo, "conv2", C=20).synthesize(5, progress=False)
    path = inversion.save(tmp_path / "inversion.pt")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        inversion.save(path)
    loaded = Inversion.load(path, random_alexnet)
    assert torch.equal(loaded.images, inversion.images) and loaded.C == 20 and loaded.layer == "conv2"
    np.testing.assert_allclose(loaded.reconstruction_error_, inversion.reconstruction_error_)
    np.testing.assert_array_equal(loaded.losses, inversion.losses)
    with pytest.raises(ValueError, match="not 'caricature'"):
        Caricature.load(path, random_alexnet)
    assert loaded.to("cpu") is loaded


def test_validation(random_alexnet, photo):
    with pytest.raises(KeyError, match="unknown layer"):
        Inversion(random_alexnet, photo, "conv9")
    with pytest.raises(ValueError, match="exactly one of"):
        ActivationMaximization(random_alexnet, "fc8", unit=1, channel=2)
    with pytest.raises(ValueError, match="positive weight"):
        Inversion(random_alexnet, photo, "conv1", C=0)
