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


def test_supplement_s1_has_an_and_ai_panels_from_six_measurements(tmp_path):
    """Supplementary Note 1: per kind, 3 subjects x 2 repeats = 6 measurements per ROI."""
    from brainprobe.encoding import best_layer_proportions

    rng = np.random.default_rng(0)
    layers = [f"layer{i}" for i in range(1, 9)]
    rows = [{"test_kind": kind, "subject": f"sub-0{s}", "measurement": f"repeat{r}", "roi": roi, "column": c,
             "best_layer": layers[rng.integers(0, 8)]}
            for kind in ("AN", "AI") for s in (1, 2, 3) for r in (1, 2) for roi in ("V1", "LO") for c in range(20)]
    proportions = best_layer_proportions(pd.DataFrame(rows), layers)
    counts = proportions.groupby(["test_kind", "roi", "layer"]).size()
    assert (counts == 6).all() and len(counts) == 2 * 2 * 8
    sums = proportions.groupby(["test_kind", "subject", "measurement", "roi"])["proportion"].sum()
    np.testing.assert_allclose(sums, 1.0)
    figure = best_layer_figure(proportions)
    assert [ax.get_title() for ax in figure.axes] == ["AN images", "AI images"]
    assert "n = 6 measurements" in figure._suptitle.get_text()
    save_figure(figure, tmp_path / "figS1", ("png",), dpi=80)


def test_difference_tests_are_marked_with_their_direction():
    from brainprobe.plotting import kind_bars

    table = pd.DataFrame([{"subject": "sub-01", "roi": roi, "pair": pair, "similarity": s, "ci68_low": s - 0.05,
                           "ci68_high": s + 0.05, "p_perm": 0.5}
                          for roi in ("V1", "LO") for pair, s in (("RE-AN", 0.1), ("RE-AI", 0.6))])
    difference = pd.DataFrame([{"subject": "sub-01", "roi": "V1", "p_boot": 0.001, "direction": "RE-AI > RE-AN"},
                               {"subject": "sub-01", "roi": "LO", "p_boot": 0.3, "direction": "RE-AI > RE-AN"}])
    texts = [t.get_text() for ax in kind_bars(table, difference).axes for t in ax.texts]
    assert texts == ["AI>AN **"]  # only V1's test is significant (p = .001 -> **, p < .01)
    profile = _profile()
    tests = pd.DataFrame([{"layer": "conv1", "p_boot": 0.02, "direction": "RE-AI < RE-AN"},
                          {"layer": "conv2", "p_boot": 0.9, "direction": "RE-AI > RE-AN"}])
    texts = [t.get_text() for ax in layer_profile(profile, None, tests).axes for t in ax.texts if "AN" in t.get_text()]
    assert texts == ["AI<AN\n*"]
