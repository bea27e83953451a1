import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brainprobe.models import LayeredModel
from brainprobe.synth import LayerDistance, MADCompetition

SIZE = 16


class LowPass(nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x, 4)


class HighPass(nn.Module):
    def forward(self, x):
        return x - F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest")


def model(module, name):
    return LayeredModel(nn.Sequential(module), {"out": "0"}, input_size=SIZE, name=name, channels_last=False)


@pytest.fixture(scope="module")
def competition():
    # two models that see complementary parts of the image (block means / what is left):
    # each can be driven anywhere while the other stays exactly where it was
    reference = 0.3 + 0.4 * torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    low, high = model(LowPass(), "low"), model(HighPass(), "high")
    return MADCompetition(reference, (low, "out"), (high, "out"), names=("low", "high"), noise_sd=0.05,
                          seed=1).synthesize(200, progress=False)


def test_each_model_is_driven_while_the_other_is_held(competition):
    table = competition.table_.set_index(["optimized", "direction"])
    assert list(competition.table_["direction"]) == ["min", "max", "min", "max"]
    for name in ("low", "high"):
        assert table.loc[(name, "min"), "optimized_change"] < 0.2
        assert table.loc[(name, "max"), "optimized_change"] > 2.0
    np.testing.assert_allclose(competition.table_["held_change"], 1.0, atol=0.03)
    # planted truth: the best image for "low" has the reference's block means and the start's details
    best_low = competition.images[0:1]
    low_pass = LowPass()
    assert float((low_pass(best_low) - low_pass(competition.reference)).abs().max()) < 0.02
    high_pass = HighPass()
    assert float((high_pass(best_low) - high_pass(competition.initial)).abs().max()) < 0.05
    assert competition.titles == ["best for low", "worst for low", "best for high", "worst for high"]
    assert competition.history["distance_low"].shape == (201, 4)


def test_layer_distance_is_relative_and_zero_at_the_reference():
    distance = LayerDistance(model(LowPass(), "low"), "out")
    reference = torch.rand(1, 3, SIZE, SIZE)
    values = distance(reference, torch.cat([reference, reference * 0.5 + 0.25]))
    assert float(values[0]) == pytest.approx(0.0, abs=1e-6) and float(values[1]) > 0


def test_save_load_and_validation(competition, tmp_path):
    path = competition.save(tmp_path / "mad.pt")
    metrics = [(m.model, m.layer) for m in competition.metrics]
    loaded = MADCompetition.load(path, *metrics)
    assert torch.equal(loaded.images, competition.images) and loaded.names == ("low", "high")
    np.testing.assert_array_equal(loaded.history["distance_high"], competition.history["distance_high"])
    assert loaded.to("cpu") is loaded
    reference = competition.reference
    with pytest.raises(ValueError, match="different labels"):
        MADCompetition(reference, *metrics, names=("a", "a"))
    with pytest.raises(TypeError, match="metric_b"):
        MADCompetition(reference, metrics[0], "conv1")
    with pytest.raises(ValueError, match="one reference image"):
        MADCompetition(torch.rand(2, 3, SIZE, SIZE), *metrics)
    with pytest.raises(FileExistsError):
        competition.save(path)


def test_two_layers_of_one_network_share_a_forward_pass():
    torch.manual_seed(0)
    network = LayeredModel(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1)),
                           {"first": "1", "second": "2"}, input_size=SIZE, name="two", channels_last=False)
    reference = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    mad = MADCompetition(reference, (network, "first"), (network, "second"))
    calls = []
    handle = network.network.register_forward_pre_hook(lambda *args: calls.append(1))
    images = torch.rand(3, 3, SIZE, SIZE)
    shared = mad._both(reference, images)
    handle.remove()
    separate = torch.stack([metric(reference, images) for metric in mad.metrics], 1)
    assert len(calls) == 1
    torch.testing.assert_close(shared, separate)
