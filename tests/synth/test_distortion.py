import numpy as np
import pytest
import torch
from torch import nn

from brainprobe.models import LayeredModel
from brainprobe.synth import (
    FisherOperator,
    eigendistortions,
    principal_distortion_objective,
    principal_distortions,
)

SIZE = 10


def small_network(seed, nonlinearity=nn.ReLU):
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nonlinearity(), nn.Conv2d(4, 4, 3, stride=2),
                            nonlinearity(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    return LayeredModel(network, {"hidden": "3", "out": "5"}, input_size=SIZE, name=f"small{seed}")


@pytest.fixture
def image():
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def exact_fisher(model, layer, image):
    def f(x):
        return model.layer_outputs(x.view(1, 3, SIZE, SIZE), [layer], validate=False)[layer].flatten()

    jacobian = torch.autograd.functional.jacobian(f, image.flatten()).double()
    return jacobian.T @ jacobian


def test_fisher_products_match_the_full_jacobian(image):
    model = small_network(0)
    fisher = FisherOperator(model, "hidden", image)
    exact = exact_fisher(model, "hidden", image)
    u = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fisher(u).flatten().double(), exact @ u.flatten().double(), rtol=1e-4, atol=1e-6)


def test_eigendistortions_match_the_exact_eigenvectors(image):
    model = small_network(1, nn.Softplus)  # smooth: a well-separated spectrum
    result = eigendistortions(model, "hidden", image, k=2, n_iter=500, tol=1e-9)
    values, vectors = torch.linalg.eigh(exact_fisher(model, "hidden", image))
    np.testing.assert_allclose(result.top_values, values.flip(0)[:2].numpy(), rtol=1e-3)
    for j in range(2):
        cosine = abs(float(result.top[j].flatten().double() @ vectors[:, -1 - j]))
        assert cosine > 0.999, cosine
    assert result.bottom_values[0] <= result.top_values[-1]
    assert result.bottom_values[0] == pytest.approx(float(values[0]), abs=1e-3 * float(values[-1]))


def test_principal_distortions_beat_random_pairs(image):
    representations = [(small_network(2), "hidden"), (small_network(3, nn.Softplus), "hidden"),
                       (small_network(4), "out")]
    result = principal_distortions(representations, image, n_iter=150, lr=0.05)
    assert result.u.norm() == pytest.approx(1.0, abs=1e-5) and result.v.norm() == pytest.approx(1.0, abs=1e-5)
    fishers = [FisherOperator(m, layer, image) for m, layer in representations]
    generator = torch.Generator().manual_seed(5)
    random_objectives = []
    for _ in range(20):
        u, v = torch.randn(2, 3, SIZE, SIZE, generator=generator)
        ratios = [float(f.sensitivity(u).log() - f.sensitivity(v).log()) for f in fishers]
        random_objectives.append(principal_distortion_objective(ratios))
    assert result.objective > max(random_objectives)
    assert result.history[-1] > result.history[0]
