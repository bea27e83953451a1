"""The report: a summary whose numbers are the tables', captions, an offline cortex viewer."""

import json
import math
import re

import numpy as np
import pytest

from brainprobe.pipeline import read_table
from brainprobe.pipeline._report import summary_numbers
from brainprobe.pipeline._steps import classical_mds

SUMMARISED = {"brain_rsa", "brain_difference", "network_rsa", "network_difference", "network_trend", "encoding",
              "best_layer_tests"}


def _section(report: str, name: str) -> str:
    start = report.index(f'<section id="{name}">')
    return report[start:report.index("</section>", start)]


def test_the_summary_comes_first_and_its_numbers_are_the_tables(tiny_run):
    report = (tiny_run.output / "report.html").read_text()
    assert report.index('id="summary"') < report.index('id="figures"') < report.index('id="tables"')
    numbers = summary_numbers(report)
    assert {n["table"] for n in numbers} == SUMMARISED
    tables = {name: read_table(tiny_run.output / "results" / f"{name}.csv") for name in SUMMARISED}
    for number in numbers:
        expected = float(tables[number["table"]].at[number["row"], number["column"]])
        where = f"{number['table']} row {number['row']} {number['column']}"
        assert number["value"] == pytest.approx(expected, rel=1e-12, abs=0) or (
            math.isnan(expected) and math.isnan(number["value"])), where
        if not math.isnan(expected):  # what the reader sees is the value, rounded
            assert float(number["text"]) == pytest.approx(expected, abs=0.0051, rel=0.0051), where
    # every row of the ROI and layer tables is summarised: similarity, CI and p of each
    for name in ("brain_rsa", "network_rsa"):
        for column in ("similarity", "ci95_low", "ci95_high", "p_perm"):
            rows = {n["row"] for n in numbers if n["table"] == name and n["column"] == column}
            assert rows == set(range(len(tables[name]))), (name, column)
    # the headline counts are those of the difference table
    difference = tables["brain_difference"]
    significant = difference[difference["p_relabel"] < 0.05]  # the image relabeling test (issue 22)
    ai = int(significant["direction"].str.startswith("RE-AI >").sum())
    an = int(significant["direction"].str.startswith("RE-AI <").sum())
    summary = _section(report, "summary")
    assert (f"RE-AI more similar than RE-AN in <b>{ai}</b> of {len(difference)} subject x ROI tests, "
            f"RE-AN more similar in <b>{an}</b>") in summary


def test_every_figure_has_a_caption_naming_its_interval_and_tests(tiny_run):
    figures = _section((tiny_run.output / "report.html").read_text(), "figures")
    found = re.findall(r'<figure id="([^"]+)"><img [^>]*src="data:image/png;base64,[^"]+"><figcaption>(.*?)</figcaption>',
                       figures)
    assert {stem for stem, _ in found} == {p.stem for p in tiny_run.figures if p.suffix == ".png"}
    for stem, caption in found:
        assert len(caption) > 100, stem
        if not stem.startswith("fig1"):
            assert "CI" in caption or "s.e.m." in caption, stem  # the interval drawn (or that none is)
        if stem.startswith(("fig3", "fig5", "fig6")):  # the test behind each mark, with the AI-vs-AN one
            assert "test" in caption and "AI-vs-AN" in caption and "p &lt; .05" in caption, stem
        if stem.startswith(("fig3", "fig5", "fig6", "figS1")):  # what the intervals and tests resampled
            assert "resampled: " in caption and "image subsampling" not in caption, stem


def test_the_report_and_its_cortex_viewer_load_nothing_from_the_network(tiny_run):
    report = (tiny_run.output / "report.html").read_text()
    assert not re.search(r"https?://", report, re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", report, re.IGNORECASE)
    assert not re.search(r"<script[^>]+src|<link|@import|url\(|fetch\(|XMLHttpRequest|import\(", report)
    viewer = _section(report, "viewer")
    assert "<canvas" in viewer and "getContext" in viewer
    data = json.loads(re.search(r'<script type="application/json" id="bp-viewer-data">(.*?)</script>', viewer,
                                re.DOTALL).group(1))
    searchlight = tiny_run.tables["searchlight"]
    assert [m["name"] for s in data["subjects"] for m in s["maps"]] == [
        f"{subject} · {pair}" for subject, part in searchlight.groupby("subject", sort=False)
        for pair in dict.fromkeys(part["pair"])]
    assert len(data["geometries"]) == 1  # both simulated subjects on fs_LR 32k: the mesh is written once


def test_classical_mds_recovers_planted_points():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 2)) * [3.0, 1.0]
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    found = classical_mds(distances)
    np.testing.assert_allclose(np.linalg.norm(found[:, None] - found[None], axis=-1), distances, atol=1e-9)


def test_the_summary_says_when_too_few_resamples_make_p_below_05_impossible(tiny_run):
    # the tiny study's 20 bootstrap resamples: a two-sided p is at least 2/21 = 0.095, so a CI that
    # excludes 0 beside p = 0.095 must not read as a contradiction or a negative finding
    summary = _section((tiny_run.output / "report.html").read_text(), "summary")
    assert "Too few resamples for p &lt; .05" in summary
    assert "[rsa] n_boot = 20: no rsa bootstrap or subsample p is below 0.0952" in summary
    assert "[encoding] n_boot = 20: no encoding bootstrap or subsample p is below 0.0952" in summary


def test_a_figure_without_a_caption_is_an_error_not_a_bare_file_name():
    from brainprobe.pipeline._report import figure_caption

    with pytest.raises(ValueError, match="no caption"):
        config = {"rsa": {"n_boot": 1000, "alternative": "two-sided", "method": "spearman", "metric": "correlation"},
                  "encoding": {}}
        figure_caption("fig9_unknown", config, {})


def test_the_viewers_threshold_box_is_off_and_says_why_without_permutation_maps():
    from brainprobe.plotting import cortex_viewer
    from brainprobe.roi import Mesh

    mesh = Mesh(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]), np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3]]))
    drawn = {"meshes": {"L": mesh}, "maps": {"RE-AN": {"L": np.array([0.1, -0.2, 0.3, 0.0])}}, "background": None,
             "outlines": None}
    without = cortex_viewer({"sub-01": {**drawn, "shown": None}})
    box = re.search(r'<input type="checkbox" id="bp-threshold"[^>]*>[^<]*', without).group(0)
    assert "disabled" in box and "checked" not in box and "no permutation maps" in box
    shown = {"RE-AN": {"L": np.array([True, False, True, False])}}
    box = re.search(r'<input type="checkbox" id="bp-threshold"[^>]*>', cortex_viewer({"sub-01": {**drawn, "shown": shown}}))
    assert "checked" in box.group(0) and "disabled" not in box.group(0)


@pytest.mark.slow  # draws every figure again (the cortical maps: ~10-20 s)
def test_every_report_figure_is_drawn_again_from_results_alone(tiny_run, tmp_path):
    import shutil

    from brainprobe.pipeline import load_config
    from brainprobe.pipeline._report import redraw_figures

    # a copy of results/ and nothing else of the run: no cache, no figures, no report
    results = shutil.copytree(tiny_run.output / "results", tmp_path / "results")
    config = load_config(tiny_run.output / "study.toml")
    drawn = redraw_figures(results, config, tmp_path / "figures")
    assert sorted(p.name for p in drawn) == sorted(p.name for p in tiny_run.figures)
    assert {"fig1_stimuli.png", "rdms_network.png", "fig4_searchlight_sub-01.png"} <= {p.name for p in drawn}
    for path in drawn:  # the same pixels: the study drew its figures from these files too
        assert path.read_bytes() == (tiny_run.output / "figures" / path.name).read_bytes(), path.name


def test_fig1_images_convert_only_the_images_shown():
    # Fig. 1's 8-bit pixels: the shown images only (the whole set's float copies were 18 GB at 10,000 images)
    import tracemalloc

    import numpy as np
    import torch

    from brainprobe.pipeline._report import FIG1_SOURCES, fig1_images
    from brainprobe.stimuli import StimulusSet

    images = torch.from_numpy(np.random.default_rng(0).random((60, 3, 128, 128), dtype=np.float32))
    stim = StimulusSet(images, {"image_id": [f"i{k:02d}" for k in range(60)]})
    tracemalloc.start()
    try:
        found = fig1_images(stim, stim.table)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(found) == [f"i{k:02d}" for k in range(FIG1_SOURCES)]
    expected = np.round(images[:FIG1_SOURCES].numpy().transpose(0, 2, 3, 1) * 255.0).clip(0, 255).astype(np.uint8)
    assert all(np.array_equal(found[f"i{k:02d}"], expected[k]) for k in range(FIG1_SOURCES))
    assert peak < 0.25 * images.numpy().nbytes
