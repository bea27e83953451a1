import numpy as np
import pytest
import torch

from brainprobe.models import LayeredModel, load_model
from brainprobe.stimuli import sample_images
from brainprobe.synth import (
    ActivationMaximization,
    Caricature,
    Inversion,
    PreImagePrior,
    jitter,
    layer_maximum,
    leaky_relu,
    optimize_pixels,
    receptive_field_size,
)


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
        losses = Inversion(random_alexnet, photo, layer, C=300, second_phase=0).synthesize(90, progress=False).losses[:, 0]
        thirds = [np.mean(part) for part in np.array_split(losses, 3)]
        assert thirds[0] > thirds[1] > thirds[2], thirds


def test_masked_inversion_only_matches_the_mask(random_alexnet, photo):
    mask = torch.zeros(1, 64, 1, 1)
    mask[:, :8] = 1.0  # the first 8 channels of conv1
    inversion = Inversion(random_alexnet, photo, "conv1", mask=mask, C=300, second_phase=0).synthesize(150, progress=False)
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


def tv(images):
    return float((images[..., 1:, :] - images[..., :-1, :]).abs().mean()
                 + (images[..., :, 1:] - images[..., :, :-1]).abs().mean())


@pytest.mark.parametrize("method", ["caricature", "inversion"])
def test_priors_shape_the_result(kaiming_alexnet, method):
    # with the data term normalized as in paper 004 (about 1 at the start), the priors are of
    # the same order and smooth the result; unnormalized data terms made them irrelevant
    photo = sample_images(1, size=64).images
    cls, options = {"caricature": (Caricature, {}), "inversion": (Inversion, {"C": 20, "second_phase": 0})}[method]
    none = PreImagePrior.for_model(kaiming_alexnet, alpha_weight=0, tv_weight=0)
    with_prior = cls(kaiming_alexnet, photo, "conv3", **options).synthesize(30, progress=False)
    without = cls(kaiming_alexnet, photo, "conv3", prior=none, **options).synthesize(30, progress=False)
    assert tv(with_prior.images) < tv(without.images) / 3, (tv(with_prior.images), tv(without.images))


def test_caricature_data_term_is_minus_one_at_the_start(random_alexnet, photo):
    caricature = Caricature(random_alexnet, photo, "conv2")
    features = random_alexnet.layer_outputs(photo, ["conv2"])["conv2"]
    assert float(caricature._loss(features, torch.arange(1))[0]) == pytest.approx(-1.0, rel=1e-5)


def test_jitter_is_a_pure_translation():
    images = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(60):
        shifted = jitter(images, 4, generator)
        assert shifted.shape == images.shape
        matches = [(ty, tx) for ty in range(4) for tx in range(4)
                   if torch.equal(shifted, torch.roll(images, shifts=(-ty, -tx), dims=(-2, -1)))]
        assert len(matches) == 1  # exactly one integer shift, no resampling: every value is an input value
        seen.add(matches[0])
    assert len(seen) == 16  # every shift in [0, T)^2 occurs
    assert jitter(images, 1, generator) is images


def test_receptive_field_from_many_units(random_alexnet):
    # torchvision AlexNet: conv1 11 x 11 stride 4; pool 3 / 2; conv2 5 x 5: 11 + 2 x 4 + 4 x 8 = 51
    assert receptive_field_size(random_alexnet, "conv1") == 11
    assert receptive_field_size(random_alexnet, "conv2") == 51
    assert receptive_field_size(random_alexnet, "fc8") == 224


def test_leaky_relu_changes_only_the_negative_side(random_alexnet, photo):
    plain = random_alexnet.layer_outputs(photo, ["conv1"])["conv1"]  # read at the ReLU module
    module = random_alexnet.network.features[0]
    before = module(random_alexnet.preprocess(photo).contiguous())
    with leaky_relu(random_alexnet, 0.05) as n_modules:
        leaky = random_alexnet.layer_outputs(photo, ["conv1"])["conv1"]
    assert n_modules == 7
    torch.testing.assert_close(leaky, torch.where(before > 0, before, 0.05 * before), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(random_alexnet.layer_outputs(photo, ["conv1"])["conv1"], plain)


def test_adagrad_momentum_steps_in_paper_units():
    # Algorithm 1 of paper 004 on E = sum(255 x)^2 / 2, in 0-255 units: g = 255 x, eta_1 = 1 / (1 / eta_0 + |g|)
    start = torch.full((1, 3, 2, 2), 0.2)
    eta_0 = 7.0
    result = optimize_pixels(start, lambda x, index: ((255 * x).pow(2).flatten(1).sum(1) / 2, {}),
                             optimizer="adagrad_momentum", lr=eta_0, max_iter=1, units=255.0, bounds=(-1, 1),
                             device="cpu")
    g = 255 * 0.2
    expected = (255 * 0.2 - g / (1 / eta_0 + g)) / 255
    torch.testing.assert_close(result.images, torch.full_like(start, expected))


@pytest.mark.slow
def test_activation_maximization_with_the_paper_priors_is_recognized_and_smooth(efficientnet):
    # paper 004's defaults (C = 1, alpha = 6, beta = 2, jitter = stride / 4) on a trained network
    target = 281
    regularized = ActivationMaximization(efficientnet, "logits", unit=target).synthesize(300, progress=False)
    bare = ActivationMaximization(efficientnet, "logits", unit=target,
                                  prior=PreImagePrior.for_model(efficientnet, alpha_weight=0, tv_weight=0))
    bare.synthesize(300, progress=False)
    assert efficientnet.predict_proba(regularized.images)[0, target] >= 0.99
    assert tv(regularized.images) * 3 <= tv(bare.images), (tv(regularized.images), tv(bare.images))


@pytest.mark.slow  # 150 steps through block4 at 224 px (200 s on a loaded 2-core machine)
def test_caricature_exaggerates_what_the_layer_sees(efficientnet, photo):
    # with the default, paper 004's jitter of a quarter of block4's stride: the first ~40 steps
    # bring the photograph's pixels into the alpha-norm prior's range (R from 9.5 to 0.5, the
    # data term still near -1), and a jittered data term climbs more slowly than an unjittered
    # one (1.17x at 60 steps, 1.23x at 150); the paper runs 300
    caricature = Caricature(efficientnet, photo, "block4")
    assert caricature.jitter_amount == 4
    before = caricature.alignment(photo)[0]
    after = caricature.alignment(caricature.synthesize(150, progress=False).images)[0]
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
    inversion = Inversion(random_alexnet, photo, "conv2", C=20, second_phase=2).synthesize(5, progress=False)
    path = inversion.save(tmp_path / "inversion.pt")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        inversion.save(path)
    loaded = Inversion.load(path, random_alexnet)
    assert torch.equal(loaded.images, inversion.images) and loaded.C == 20 and loaded.layer == "conv2"
    assert loaded.second_phase == 2 and loaded.n_iter == 7
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


def test_activation_maximization_normalizer_is_the_same_for_every_unit_of_a_layer(random_alexnet):
    # M was each unit's own largest response over 12 photos: clamped to 1e-6 (priors off) when negative
    reference = sample_images(size=64).images
    logits = random_alexnet.layer_outputs(reference, ["fc8"])["fc8"]
    never_positive = int(logits.max(dim=0).values.argmin())
    assert logits[:, never_positive].max() < logits.max()
    found = [ActivationMaximization(random_alexnet, "fc8", unit=u, size=64, reference_images=reference)
             for u in (never_positive, int(logits.max(dim=0).values.argmax()))]
    assert found[0].max_response == found[1].max_response == pytest.approx(float(logits.max()))
    assert found[0].Z == found[1].Z and "12 reference images" in found[0].normalizer


def test_a_degenerate_normalizer_warns():
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Hardtanh(-2.0, -0.5))  # never positive
    model = LayeredModel(network, {"out": "1"}, input_size=16, name="tiny")
    with pytest.warns(RuntimeWarning, match="no positive unit response"):
        value = layer_maximum(model, "out", torch.rand(3, 3, 16, 16))
    assert value == 2.0  # the largest absolute value instead


@pytest.mark.slow
def test_activation_maximization_of_ten_classes_is_equally_smooth_and_recognized(efficientnet):
    # one normalizer per layer: the prior/data balance, and with it the smoothness, is the same for every class
    classes = [1, 13, 17, 94, 130, 281, 340, 409, 530, 949]
    smoothness, probabilities = [], []
    for target in classes:
        am = ActivationMaximization(efficientnet, "logits", unit=target).synthesize(300, progress=False)
        smoothness.append(tv(am.images))
        probabilities.append(efficientnet.predict_proba(am.images)[0, target])
    assert min(probabilities) >= 0.99, dict(zip(classes, probabilities, strict=True))
    assert max(smoothness) <= 2 * min(smoothness), dict(zip(classes, smoothness, strict=True))


def test_inversion_and_caricature_jitter_a_quarter_of_the_stride_by_default(random_alexnet, photo):
    # paper 004, section 5.2: T = stride / 4 (AlexNet conv5: stride 16 -> 4; conv1: stride 4 -> 1, no jitter)
    for method in (Inversion, Caricature):
        assert method(random_alexnet, photo, "conv5").jitter_amount == 4
        assert method(random_alexnet, photo, "conv1").jitter_amount == 1
        assert method(random_alexnet, photo, "conv5", jitter_amount=0).jitter_amount == 0
