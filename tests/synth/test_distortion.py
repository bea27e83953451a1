import copy

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


WIDE = 5


def wide_network(seed, nonlinearity, size=WIDE):
    """More outputs (8 x 5 x 5) than pixels (3 x 5 x 5): a Fisher information of full rank."""
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nonlinearity(), nn.Conv2d(8, 8, 3, padding=1),
                            nonlinearity())
    return LayeredModel(network, {"out": "3"}, input_size=size, name=f"wide{seed}", channels_last=False)


@pytest.fixture
def image():
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def exact_fisher(model, layer, image):
    size = image.shape[-1]
    model = copy.deepcopy(model).double()

    def f(x):
        return model.layer_outputs(x.view(1, 3, size, size), [layer], validate=False)[layer].flatten()

    jacobian = torch.autograd.functional.jacobian(f, image.flatten().double()).double()
    return jacobian.T @ jacobian


def test_fisher_products_match_the_full_jacobian(image):
    model = small_network(0)
    fisher = FisherOperator(model, "hidden", image)
    exact = exact_fisher(model, "hidden", image)
    u = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fisher(u).flatten().double(), exact @ u.flatten().double(), rtol=1e-6, atol=1e-9)
    assert next(model.parameters()).dtype == torch.float32  # the double-precision copy left the model alone


def test_eigendistortions_match_the_exact_eigenvectors():
    model = wide_network(1, nn.Softplus)  # smooth, full rank: the bottom eigenvalues are small and crowded
    image = torch.rand(1, 3, WIDE, WIDE, generator=torch.Generator().manual_seed(0))
    result = eigendistortions(model, "out", image, k=2)
    values, vectors = torch.linalg.eigh(exact_fisher(model, "out", image))
    np.testing.assert_allclose(result.top_values, values.flip(0)[:2].numpy(), rtol=1e-4)
    np.testing.assert_allclose(result.bottom_values, values[:2].numpy(), rtol=1e-3)
    for j in range(2):
        assert abs(float(result.top[j].flatten().double() @ vectors[:, -1 - j])) > 0.999
        assert abs(float(result.bottom[j].flatten().double() @ vectors[:, j])) > 0.99
    assert result.top_residuals.max() < 1e-3 and result.bottom_residuals.max() < 1e-3


def test_bottom_eigendistortion_reaches_the_null_space(image):
    # 64 outputs for 300 pixels: the smallest eigenvalue is exactly 0
    result = eigendistortions(small_network(1, nn.Softplus), "hidden", image, k=1)
    assert result.bottom_residuals[0] < 1e-3
    assert result.bottom_values[0] < 1e-3 * result.top_values[0]


def closed_form_objective(model_a, model_b, image):
    """0.5 log(lambda_max / lambda_min)^2 of the generalized eigenproblem I_A w = lambda I_B w."""
    from scipy.linalg import eigh

    values = eigh(exact_fisher(model_a, "out", image).numpy(), exact_fisher(model_b, "out", image).numpy(),
                  eigvals_only=True)
    return 0.5 * np.log(values[-1] / values[0]) ** 2


@pytest.mark.parametrize("method", ["dense", "generalized_eigen", "ascent"])
def test_two_model_principal_distortions_reach_the_closed_form(method):
    model_a, model_b = wide_network(1, nn.Softplus), wide_network(2, nn.Tanh)
    image = torch.rand(1, 3, WIDE, WIDE, generator=torch.Generator().manual_seed(0))
    result = principal_distortions([(model_a, "out"), (model_b, "out")], image, method=method, ridge=1e-9)
    assert result.method == method and result.converged
    assert result.objective == pytest.approx(closed_form_objective(model_a, model_b, image), rel=0.01)
    assert result.u.norm() == pytest.approx(1.0, abs=1e-5) and result.v.norm() == pytest.approx(1.0, abs=1e-5)


def test_principal_distortions_of_three_models_converge_beyond_random_pairs():
    image = torch.rand(1, 3, WIDE, WIDE, generator=torch.Generator().manual_seed(0))
    representations = [(wide_network(2, nn.ReLU), "out"), (wide_network(3, nn.Softplus), "out"),
                       (wide_network(4, nn.Tanh), "out")]
    result = principal_distortions(representations, image)
    assert result.method == "ascent" and result.converged
    fishers = [FisherOperator(m, layer, image) for m, layer in representations]
    generator = torch.Generator().manual_seed(5)
    random_objectives = []
    for _ in range(20):
        u, v = torch.randn(2, 3, WIDE, WIDE, generator=generator)
        ratios = [float(f.sensitivity(u).log() - f.sensitivity(v).log()) for f in fishers]
        random_objectives.append(principal_distortion_objective(ratios))
    assert result.objective > max(random_objectives)
    assert np.all(np.diff(result.history) > -1e-9 * abs(result.history[-1]))  # the line search never goes down
    with pytest.raises(ValueError, match="exactly two"):
        principal_distortions(representations, image, method="generalized_eigen")


def test_auto_continues_an_unconverged_generalized_eigensolve_with_the_ascent():
    model_a, model_b = wide_network(1, nn.Softplus), wide_network(2, nn.Tanh)
    image = torch.rand(1, 3, WIDE, WIDE, generator=torch.Generator().manual_seed(0))
    pair = [(model_a, "out"), (model_b, "out")]
    stalled = principal_distortions(pair, image, method="generalized_eigen", n_iter=2, ridge=1e-9)
    assert not stalled.converged
    refined = principal_distortions(pair, image, n_iter=2, ridge=1e-9, dense_max=0)  # the matrix-free path
    assert refined.method == "generalized_eigen+ascent"
    assert refined.objective >= stalled.objective - 1e-9
    assert np.all(np.diff(refined.history) > -1e-9 * abs(refined.history[-1]))


def test_eigendistortion_residuals_are_relative_to_their_own_eigenvalue():
    model = wide_network(1, nn.Softplus)
    image = torch.rand(1, 3, WIDE, WIDE, generator=torch.Generator().manual_seed(0))
    exact = exact_fisher(model, "out", image).numpy()
    values = np.linalg.eigvalsh(exact)
    dense = eigendistortions(model, "out", image, k=1)
    assert dense.method == "dense" and not dense.null_space and dense.bottom_converged.all()
    np.testing.assert_allclose(dense.bottom_values, values[:1], rtol=1e-8)  # exact, not 110x off
    with pytest.warns(RuntimeWarning, match="did not converge"):
        rough = eigendistortions(model, "out", image, k=1, method="lobpcg", max_iter=2)
    u = rough.bottom[0].flatten().double().numpy()
    own = np.linalg.norm(exact @ u - rough.bottom_values[0] * u) / rough.bottom_values[0]
    assert rough.bottom_residuals[0] == pytest.approx(own, rel=1e-3)  # relative to lambda_min, not lambda_max
    assert not rough.bottom_converged[0] and rough.bottom_residuals[0] > 1e-5


def test_a_layer_with_fewer_outputs_than_pixels_says_its_bottom_is_a_null_space(image):
    with pytest.warns(UserWarning, match="null space"):
        result = eigendistortions(small_network(1, nn.Softplus), "hidden", image, k=1)
    assert result.null_space and (result.n_outputs, result.n_pixels) == (64, 300)
    assert result.bottom_values[0] < 1e-10 * result.top_values[0]


def test_principal_distortions_report_a_normalized_residual_and_the_gap_to_the_exact_optimum():
    model_a, model_b = wide_network(1, nn.Softplus), wide_network(2, nn.Tanh)
    image = torch.rand(1, 3, WIDE, WIDE, generator=torch.Generator().manual_seed(0))
    pair = [(model_a, "out"), (model_b, "out")]
    exact = principal_distortions(pair, image)
    assert exact.method == "dense" and exact.converged and exact.objective_gap == pytest.approx(0, abs=1e-9)
    assert exact.residual < 1e-8
    short = principal_distortions(pair, image, method="ascent", n_iter=5)
    assert 0 <= short.residual <= 1 and 0 <= short.objective_gap < 1
    assert short.objective == pytest.approx(exact.objective * (1 - short.objective_gap), rel=1e-9)
