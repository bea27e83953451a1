import math

import numpy as np
import pytest
import torch
from torch import nn

from brainprobe.models import LayeredModel
from brainprobe.synth import (
    ActivationMaximization,
    FourierParameterization,
    PreImagePrior,
    RandomTransforms,
    optimize_pixels,
)


def test_fourier_decode_inverts_encode_and_stays_in_range():
    fourier = FourierParameterization()
    for shape in ((16, 16), (15, 22)):  # odd and even widths (the rfft's last column)
        images = 0.05 + 0.9 * torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(fourier.decode(fourier.encode(images), shape), images, atol=1e-5, rtol=0)
    wild = fourier.decode(100 * torch.randn(1, 3, 16, 9, 2), (16, 16))
    assert 0 <= float(wild.min()) and float(wild.max()) <= 1  # the sigmoid bounds any parameters


def test_fourier_random_start_has_a_one_over_f_spectrum():
    # white parameters decode (before the sigmoid, nearly linear near grey) to amplitude ~ 1 / f
    fourier = FourierParameterization(decorrelate=False)
    images = fourier.random(64, (32, 32), seed=1)
    assert abs(float(images.mean()) - 0.5) < 0.01  # lucid's start: nearly grey
    spectrum = torch.fft.rfft2(torch.logit(images)).abs().pow(2).mean(dim=(0, 1)).sqrt()
    fy, fx = torch.fft.fftfreq(32)[:, None], torch.fft.rfftfreq(32)[None, :]
    frequency = (fx**2 + fy**2).sqrt()
    low, high = spectrum[(frequency > 0.05) & (frequency < 0.07)].mean(), spectrum[(frequency > 0.4)].mean()
    ratio = float(low / high)
    expected = float(frequency[frequency > 0.4].mean() / frequency[(frequency > 0.05) & (frequency < 0.07)].mean())
    assert ratio == pytest.approx(expected, rel=0.25), (ratio, expected)


def test_fourier_colour_mixing_is_the_scaled_published_matrix():
    fourier = FourierParameterization()
    matrix = fourier._colour("cpu", torch.float64)
    assert float(matrix.norm(dim=0).max()) == pytest.approx(1.0)
    assert matrix[0, 0] > 0 and torch.allclose(matrix[:, 0], matrix[:, 0].mean().expand(3), atol=0.02)  # luminance


def test_optimizing_fourier_parameters_through_the_core_reaches_the_target():
    fourier = FourierParameterization()
    # a natural-looking target (1 / f spectrum): white noise would take the 1 / f-slowed high
    # frequencies far longer
    target = fourier.decode(0.5 * torch.randn(1, 3, 12, 7, 2, generator=torch.Generator().manual_seed(0)), (12, 12))
    result = optimize_pixels(torch.full((1, 3, 12, 12), 0.5), lambda x, index: ((x - target).pow(2).mean(dim=(1, 2, 3)),
                                                                               {"mean": x.mean(dim=(1, 2, 3))}),
                             optimizer="adam", lr=fourier.lr, max_iter=300, parameterization=fourier, device="cpu",
                             progress=False)
    assert float((result.images - target).abs().max()) < 0.02
    assert result.aux_history["mean"].shape == result.loss_history.shape == (301, 1)
    with pytest.raises(ValueError, match="do not apply"):
        optimize_pixels(target, lambda x, index: (x.sum(dim=(1, 2, 3)), {}), parameterization=fourier, quantize=True)


def test_random_transforms_are_translations_scalings_and_rotations():
    image = torch.zeros(1, 1, 33, 33)
    image[..., 16, 16] = 1.0
    shift_only = RandomTransforms(translate=5, scale=(1.0, 1.0), degrees=0.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        moved = shift_only(image, generator)
        y, x = divmod(int(moved.flatten().argmax()), 33)
        assert float(moved.max()) == pytest.approx(1.0, abs=1e-5)  # whole-pixel shifts: nothing interpolated
        assert max(abs(y - 16), abs(x - 16)) <= 5
    matrix = RandomTransforms(translate=0, scale=(1.25, 1.25), degrees=30).matrices(200, (33, 33),
                                                                                     torch.Generator().manual_seed(1))
    determinants = torch.linalg.det(matrix[:, :, :2])
    torch.testing.assert_close(determinants, torch.full((200,), 1 / 1.25**2, dtype=torch.float64))  # zoom 1.25
    angles = torch.atan2(matrix[:, 1, 0], matrix[:, 0, 0]) * 180 / math.pi
    assert float(angles.abs().max()) <= 30 + 1e-9 and float(angles.min()) < -20 and float(angles.max()) > 20
    with pytest.raises(ValueError, match="RandomTransforms"):
        RandomTransforms(scale=(1.1, 0.9))


def tiny_classifier():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                            nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    return LayeredModel(network, {"conv": "3", "logits": "5"}, input_size=32, name="tiny", channels_last=False)


def test_activation_maximization_in_fourier_space_with_transforms_saves_and_loads(tmp_path):
    model = tiny_classifier()
    none = PreImagePrior.for_model(model, alpha_weight=0, tv_weight=0)
    reference = torch.rand(4, 3, 32, 32)
    am = ActivationMaximization(model, "logits", unit=2, parameterization="fourier", transforms=RandomTransforms(4),
                                prior=none, reference_images=reference)
    assert am.optimizer == "adam" and am.learning_rate(32 * 32) == FourierParameterization().lr
    am.synthesize(40, progress=False)
    # beyond every reference image (max_response normalizes by the whole layer's largest value, paper 004)
    assert am.response(am.images)[0] > am.response(reference).max() and am.response(am.images)[0] > am.response(am.start)[0]
    assert set(am.history) == {"data", "prior", "response"} and am.history["response"].shape == (41, 1)
    loaded = ActivationMaximization.load(am.save(tmp_path / "am.pt"), model)
    assert loaded.parameterization == am.parameterization and loaded.transforms == am.transforms
    np.testing.assert_array_equal(loaded.history["response"], am.history["response"])
    with pytest.raises(ValueError, match="Algorithm 1"):
        ActivationMaximization(model, "logits", unit=2, parameterization="fourier", optimizer="adagrad_momentum")
    with pytest.raises(ValueError, match="parameterization"):
        ActivationMaximization(model, "logits", unit=2, parameterization="wavelet")
