"""GPU readiness: the CUDA paths give the CPU's results (skipped on machines without CUDA).

``make check-gpu`` runs the whole suite with ``BRAINPROBE_TEST_DEVICE=cuda`` (the shared model
fixtures then live on the GPU) and these comparisons with it.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from brainprobe.encoding import romp_batched
from brainprobe.models import extract, load_model
from brainprobe.rsa import kind_similarity, rdm

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _design(n=8, units=40, seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in ("RE", "AN", "AI") for i in range(n)],
                          "kind": [k for k in ("RE", "AN", "AI") for _ in range(n)],
                          "source_id": [f"RE{i}" for _ in range(3) for i in range(n)]})
    base = rng.normal(size=(n, units))
    return table, np.concatenate([base, base + rng.normal(size=base.shape), rng.normal(size=base.shape)])


@cuda
@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "squared_euclidean"])
def test_rdms_agree_across_devices(metric):
    patterns = np.random.default_rng(1).normal(size=(3, 12, 50))
    np.testing.assert_allclose(rdm(patterns, metric, device="cuda"), rdm(patterns, metric, device="cpu"),
                               rtol=1e-10, atol=1e-12)


@cuda
def test_kind_similarity_and_its_bootstrap_agree_across_devices():
    table, patterns = _design()
    common = {"n_perm": 50, "n_boot": 50, "seed": 4}
    on_cpu = kind_similarity({"roi": patterns}, table, device="cpu", **common)
    on_gpu = kind_similarity({"roi": patterns}, table, device="cuda", **common)
    pd.testing.assert_frame_equal(on_gpu, on_cpu, rtol=1e-8, atol=1e-10)


@cuda
def test_activations_agree_across_devices():
    model = load_model("alexnet", weights=None, seed=0, init="kaiming", device="cpu")
    images = torch.rand(4, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    on_cpu = extract(model, images, ["conv2", "fc7"], device="cpu")
    on_gpu = extract(model, images, ["conv2", "fc7"], device="cuda")
    assert model.device.type == "cpu"  # run on the GPU for that call only
    for layer in ("conv2", "fc7"):
        a, b = np.asarray(on_cpu[layer]), np.asarray(on_gpu[layer])
        assert np.abs(a - b).max() <= 1e-3 * max(1.0, np.abs(a).max()), layer


@cuda
def test_romp_fits_agree_across_devices():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 200))
    Y = X[:, :5] @ rng.normal(size=(5, 30)) + 0.1 * rng.normal(size=(60, 30))
    on_cpu = romp_batched(X, Y, 5, device="cpu")
    on_gpu = romp_batched(X, Y, 5, device="cuda")
    np.testing.assert_allclose(on_gpu.coef.toarray(), on_cpu.coef.toarray(), rtol=1e-7, atol=1e-9)


def test_the_test_device_switch_is_honoured(alexnet):
    """The shared fixtures follow BRAINPROBE_TEST_DEVICE (cpu unless `make check-gpu` sets cuda)."""
    import os

    wanted = os.environ.get("BRAINPROBE_TEST_DEVICE", "cpu")
    assert alexnet.device.type == torch.device(wanted).type


# -- one device policy (brainprobe._device): a user's network stays where the user put it --------

def _tiny_model():
    from torch import nn

    from brainprobe.models import LayeredModel

    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    return LayeredModel(network, {"conv": "0", "fc": "4"}, input_size=16, class_names=list("abcde"))


@pytest.fixture
def cuda_claimed(monkeypatch):
    """Make torch claim CUDA: a path that moves the model by default then fails on this machine."""
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_extract_leaves_the_models_device_unchanged(cuda_claimed):
    model = _tiny_model()
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    acts = extract(model, images, ["conv", "fc"])
    assert model.device.type == "cpu" and model.mean.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in model.parameters())
    np.testing.assert_allclose(acts["fc"], model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_adversarial_images_leave_the_models_device_unchanged(cuda_claimed):
    from brainprobe.adversarial import noise_images

    model = _tiny_model()
    noise_images(model, [1, 2], max_iter=2, max_iter_8bit=1, progress=False)
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_model_on_puts_the_model_back_also_after_an_error(monkeypatch):
    from brainprobe import _device

    model, moves = _tiny_model(), []
    monkeypatch.setattr(_device, "resolve_device", lambda device: torch.device("cpu", 1))  # a "second" device
    monkeypatch.setattr(type(model), "to", lambda self, device: moves.append(torch.device(device)) or self)
    with pytest.raises(RuntimeError, match="inside"), _device.model_on(model, "elsewhere"):
        raise RuntimeError("inside the block")
    assert moves == [torch.device("cpu", 1), torch.device("cpu")]


@pytest.mark.parametrize("call", [
    lambda device: rdm(np.ones((4, 3)) + np.eye(4, 3), "correlation", device=device),
    lambda device: romp_batched(np.eye(6, 4), np.ones((6, 2)), 1, device=device),
])
@pytest.mark.parametrize("device", ["gpu0", "cuda:99"])
def test_every_torch_path_validates_the_device_in_one_place(call, device):
    with pytest.raises(ValueError, match=f"device.*{device if device == 'gpu0' else 'CUDA'}"):
        call(device)


@cuda
def test_tuned_ridge_fits_and_folds_agree_across_devices():
    from sklearn.model_selection import KFold

    from brainprobe.encoding import RidgeCVEncoder

    rng = np.random.default_rng(5)
    X = (rng.normal(size=(80, 300)) + 2).astype(np.float32)
    Y = X[:, :6] @ rng.normal(size=(6, 9)) + rng.normal(size=(80, 9))
    on_cpu, on_gpu = RidgeCVEncoder(device="cpu").fit(X, Y), RidgeCVEncoder(device="cuda").fit(X, Y)
    np.testing.assert_array_equal(on_gpu.alpha_, on_cpu.alpha_)
    np.testing.assert_allclose(on_gpu.coef_, on_cpu.coef_, rtol=1e-8, atol=1e-10)
    folds = list(KFold(5).split(X))
    np.testing.assert_allclose(RidgeCVEncoder(device="cuda").cross_val_predict(X, Y, folds),
                               RidgeCVEncoder(device="cpu").cross_val_predict(X, Y, folds), rtol=1e-8, atol=1e-10)


@cuda
def test_tuned_ridge_on_cuda_writes_and_reads_the_kernel_store(tmp_path):
    """CUDA fits keep their own store entries (the device is part of the key) and read them back
    as tensors on the GPU, with the CPU's numbers."""
    from sklearn.model_selection import KFold

    from brainprobe.encoding import RidgeCVEncoder, kernel_store

    rng = np.random.default_rng(6)
    X = (rng.normal(size=(70, 260)) + 1).astype(np.float32)
    Y = X[:, :4] @ rng.normal(size=(4, 5)) + rng.normal(size=(70, 5))
    folds = list(KFold(5).split(X))
    expected = RidgeCVEncoder(device="cpu").fit(X, Y), RidgeCVEncoder(device="cpu").cross_val_predict(X, Y, folds)
    for _ in range(2):  # computed and written, then read
        with kernel_store(tmp_path / "kernels"):
            fit = RidgeCVEncoder(device="cuda").fit(X, Y)
            predicted = RidgeCVEncoder(device="cuda").cross_val_predict(X, Y, folds)
        np.testing.assert_array_equal(fit.alpha_, expected[0].alpha_)
        np.testing.assert_allclose(fit.coef_, expected[0].coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(predicted, expected[1], rtol=1e-8, atol=1e-10)
    assert len(list((tmp_path / "kernels").iterdir())) == 2 + len(folds)
