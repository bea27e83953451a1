"""Any network: a function named "package.module:function" with its layers named, through a tiny study."""

from pathlib import Path

import pytest
import torch
from torch import nn

from brainprobe.models import load_model
from brainprobe.pipeline import ConfigError, Study, validate

SPEC = "test_custom_network:tiny_network"
LAYERS = {"conv1": "features.1", "conv2": "features.3", "fc": "classifier"}


def tiny_network() -> nn.Module:
    """A small CNN of one's own: 1000 class logits from two convolutions."""
    return _Tiny()


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4), nn.ReLU(), nn.Conv2d(8, 16, 5, stride=4), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(16 * 16, 1000)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


@pytest.fixture
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_load_model_takes_a_function_name_or_a_module_the_same_way(importable):
    by_name = load_model(SPEC, layers=LAYERS, seed=4, device="cpu")
    again = load_model(SPEC, layers=LAYERS, seed=4, device="cpu")
    assert by_name.layer_names == list(LAYERS)
    for a, b in zip(by_name.network.parameters(), again.network.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # seeded
    module = _Tiny()
    given = load_model(module, layers=LAYERS, device="cpu")
    assert given.network is module and given.weights_source == "as given"
    from_state = load_model(SPEC, module.state_dict(), layers=LAYERS, device="cpu")
    torch.testing.assert_close(from_state.network.classifier.weight, module.classifier.weight)
    with pytest.raises(ValueError, match="name its layers"):
        load_model(SPEC)
    for spelling in ("random", "none"):
        with pytest.raises(ValueError, match=r"random weights are weights=None in Python"):
            load_model("alexnet", spelling)


@pytest.mark.slow
def test_a_network_of_ones_own_runs_through_a_tiny_study(importable, tiny_run, tiny_values):
    stimuli = next((tiny_run.output / ".cache" / "stimuli").glob("*/stimuli"))
    tiny_values["stimuli"]["source"] = str(stimuli)  # RE/AN/AI images already made
    tiny_values["network"] = {"name": SPEC, "weights": "random", "layers": LAYERS, "device": "cpu"}
    tiny_values["subjects"]["simulate"] = 1
    tiny_values["searchlight"] = {"enabled": False}
    tiny_values["encoding"]["enabled"] = False
    tiny_values["best_layer"] = {"enabled": False}
    result = Study(validate(tiny_values), progress=False).run()
    assert result.tables["network_rsa"]["layer"].unique().tolist() == list(LAYERS)
    assert set(result.tables["brain_rsa"]["subject"]) == {"sub-01"}


def test_the_study_file_checks_custom_networks_and_the_spelling_of_random(importable, tiny_values):
    base = dict(tiny_values["network"])
    for network, message in (
        ({"name": SPEC, "weights": "random"}, r"\[network\] layers: a network of your own needs its layers named"),
        ({"name": SPEC, "layers": LAYERS, "weights": "imagenet"}, r"\[network\] weights: 'imagenet' exists for the built-in networks only"),
        ({"name": "no_such_module:net", "weights": "random", "layers": LAYERS}, r"\[network\] name: .*cannot import"),
        ({"weights": "none"}, r'\[network\] weights: random weights are spelled weights = "random", found \'none\''),
        ({"weights": ""}, r"random weights are spelled"),
    ):
        tiny_values["network"] = {**base, **network}
        with pytest.raises(ConfigError, match=message):
            validate(tiny_values, source="study.toml")
