import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brainprobe.plotting import best_layer_figure, encoding_figure, layer_profile, save_figure  # noqa: E402


def _profile(networks=("alexnet",)):
    rows = [{"network": n, "layer": layer, "pair": pair, "similarity": s + shift, "ci95_low": s + shift - 0.05,
             "ci95_high": s + shift + 0.05, "p_perm": 0.01}
            for n in networks for layer, s in (("conv1", 0.2), ("conv2", 0.4))
            for pair, shift in (("RE-AN", 0.0), ("RE-AI", 0.3))]
    return pd.DataFrame(rows)


def test_layer_profile_draws_one_point_per_layer_and_pair(tmp_path):
    figure = layer_profile(_profile())
    drawn = {tuple(np.round(line.get_ydata(), 6)) for ax in figure.axes for line in ax.get_lines()}
    assert {(0.2, 0.4), (0.5, 0.7)} <= drawn  # each pair's similarity across the two layers
    written = save_figure(figure, tmp_path / "fig5", ("png", "pdf"))
    assert sorted(p.name for p in written) == ["fig5.pdf", "fig5.png"] and all(p.stat().st_size > 0 for p in written)


def test_a_figure_refuses_rows_of_several_networks():
    # a study with [[compare]] networks writes one table for all of them: mixing them in one
    # figure would average different networks' layers
    with pytest.raises(ValueError, match=r"layer_profile: the table holds the rows of networks \['alexnet', 'vgg16'\]"):
        layer_profile(_profile(("alexnet", "vgg16")))
    mixed = pd.DataFrame({"network": ["a", "b"], "subject": "s", "roi": "V1", "layer": "conv1", "test_kind": "AN",
                          "accuracy": [0.1, 0.2]})
    with pytest.raises(ValueError, match="encoding_figure"):
        encoding_figure(mixed)
    with pytest.raises(ValueError, match="best_layer_figure"):
        best_layer_figure(mixed.assign(proportion=np.nan))
