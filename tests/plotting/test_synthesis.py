import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from brainprobe.plotting import synthesis_progress  # noqa: E402
from brainprobe.synth import optimize_pixels  # noqa: E402


def test_progress_plot_draws_the_loss_and_every_recorded_number():
    def objective(images, index):
        error = (images - 0.8).pow(2).flatten(1).mean(dim=1)
        never_measured = torch.full_like(error, float("nan"))  # a metric with no value at any step
        return error, {"error": error.detach(), "mean": images.detach().flatten(1).mean(dim=1), "sparse": never_measured}

    result = optimize_pixels(torch.full((2, 3, 4, 4), 0.2), objective, lr=0.02, max_iter=30, device="cpu",
                             progress=False)
    figure = synthesis_progress(result, labels=["first", "second"])
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["loss", "error", "mean"]  # "sparse" holds no finite value
    assert len(figure.axes[0].lines) == 2 and len(figure.axes[0].lines[0].get_xdata()) == 31
    assert figure.axes[0].get_yscale() == "linear"  # the loss spans less than two decades
    assert synthesis_progress(result, log_loss=True).axes[0].get_yscale() == "log"
    with pytest.raises(KeyError, match="not recorded"):
        synthesis_progress(result, metrics=["fidelity"])
    with pytest.raises(TypeError, match="synthesis object"):
        synthesis_progress(object())


def test_progress_plot_of_a_synthesis_object_with_sparse_fidelity():
    class Synthesis:
        losses = np.linspace(1, 0.1, 21)[:, None]
        history = {"fidelity": np.where(np.arange(21)[:, None] % 10 == 0, np.linspace(0, 0.9, 21)[:, None], np.nan)}

    figure = synthesis_progress(Synthesis())
    assert figure.axes[0].get_yscale() == "linear"
    Synthesis.losses = np.logspace(0, -4, 21)
    assert synthesis_progress(Synthesis()).axes[0].get_yscale() == "log"  # four decades
    line = figure.axes[1].lines[0]
    assert list(line.get_xdata()) == [0, 10, 20] and line.get_marker() == "o"
