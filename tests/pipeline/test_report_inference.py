"""Captions name what was resampled; a 3-subject study's summary leads with the group level."""

import re

import numpy as np
import pandas as pd
import pytest

from brainprobe.pipeline import load_config, validate
from brainprobe.pipeline._inference import group_level
from brainprobe.pipeline._report import ReportContext, figure_caption, summary_section
from brainprobe.stats import noise_ceiling, random_effects_test

STEMS = ("fig3_brain_rsa", "figS2_brain_rsa", "fig5_network_layers", "fig6_encoding", "figS1_best_layer")


def _paper_config():
    from pathlib import Path

    return load_config(Path(__file__).parents[2] / "examples" / "paper001.toml")


def test_default_captions_name_images_and_subjects_as_the_resampled_units():
    config = validate({"subjects": {"simulate": 3}})
    captions = {stem: figure_caption(stem, config, {}) for stem in STEMS}
    for stem in ("fig3_brain_rsa", "figS2_brain_rsa", "fig5_network_layers", "fig6_encoding"):
        assert "resampled: images" in captions[stem], stem
        assert "image subsampling" not in captions[stem], stem
    assert "resampled: subjects" in captions["figS1_best_layer"]
    assert "FDR" in captions["fig3_brain_rsa"]


def test_paper_preset_captions_name_vertices_and_units_and_say_what_they_assume():
    config = _paper_config()
    fig3 = figure_caption("fig3_brain_rsa", config, {})
    assert "resampled: vertices (paper" in fig3 and "independent vertices" in fig3
    fig5 = figure_caption("fig5_network_layers", config, {})
    assert "resampled: network units (paper" in fig5 and "descriptive" in fig5
    fig6 = figure_caption("fig6_encoding", config, {})
    assert "resampled: vertices (paper" in fig6
    assert "repeats counted" in figure_caption("figS1_best_layer", config, {})


def test_the_paper_preset_keeps_the_papers_choices():
    config = _paper_config()
    assert config["stimuli"]["re_threshold"] == 0.99
    assert config["selection"]["n_per_hemi_s2"] == 200
    assert config["rsa"]["ci"] == "vertex_subsample" and config["encoding"]["ci"] == "vertex_subsample"
    assert config["encoding"]["compare_over"] == "vertices" and config["best_layer"]["unit"] == "measurements"
    assert config["rsa"]["trend_p"] == "normal"


def _three_subjects(seed=0):
    """brain_rsa and brain_rdms tables of 3 subjects, 2 ROIs, as the pipeline writes them."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=45)  # a 10-image RDM
    similarity, rdms = [], []
    for s in range(3):
        subject = f"sub-{s + 1:02d}"
        for roi, level in (("V1", 0.4), ("LO", 0.0)):
            for pair, shift in (("RE-AN", 0.0), ("RE-AI", 0.2)):
                similarity.append({"subject": subject, "roi": roi, "pair": pair,
                                   "similarity": level + shift + 0.05 * rng.normal(),
                                   "p_perm": 0.01, "ci95_low": 0.0, "ci95_high": 0.5, "ci68_low": 0.1,
                                   "ci68_high": 0.4, "resampled": "images"})
            for kind in ("RE", "AN", "AI"):
                rdms.append(pd.DataFrame({"subject": subject, "roi": roi, "kind": kind, "entry": np.arange(45),
                                          "dissimilarity": truth + rng.normal(size=45)}))
    return pd.DataFrame(similarity), pd.concat(rdms, ignore_index=True)


class _Result:
    def __init__(self, tables):
        self.tables = tables


def test_a_three_subject_summary_leads_with_the_group_level():
    similarity, rdms = _three_subjects()
    tables = {"brain_rsa": similarity, "brain_rdms": rdms}
    tables.update(group_level(tables, validate({"subjects": {"simulate": 3}})))
    group = tables["group_rsa"]
    # the random-effects p and the noise ceiling are those of brainprobe.stats on the subjects' values
    v1 = similarity[(similarity["roi"] == "V1") & (similarity["pair"] == "RE-AI")]["similarity"].to_numpy()
    row = group[(group["roi"] == "V1") & (group["pair"] == "RE-AI")].iloc[0]
    assert row["p"] == pytest.approx(random_effects_test(v1)["p"].iloc[0]) and row["df"] == 2
    wide = rdms[(rdms["roi"] == "V1") & (rdms["kind"] == "RE")].pivot(index="subject", columns="entry",
                                                                      values="dissimilarity")
    assert row["ceiling_RE_lower"] == pytest.approx(noise_ceiling(wide.to_numpy())["lower"])
    assert {"q_fdr", "resampled"} <= set(group) and (group["resampled"] == "subjects").all()
    assert "q_perm" in tables["brain_rsa"]  # per-subject tests get FDR q-values too
    html = summary_section(ReportContext(output=None, result=_Result(tables), config=validate({"subjects": {"simulate": 3}}), seconds=0,
                                         device="cpu"))
    assert html.index("Group level (random effects across 3 subjects)") < html.index("Brain (ROIs), per subject")
    assert "noise ceiling" in html and 'data-table="group_rsa"' in html
    assert re.search(r'data-table="group_rsa" data-row="\d+" data-column="ceiling_RE_lower"', html)
    assert re.search(r'data-table="group_rsa" data-row="\d+" data-column="p"', html)


def test_fewer_than_three_subjects_say_the_group_level_is_not_tested():
    similarity, rdms = _three_subjects()
    two = similarity[similarity["subject"] != "sub-03"]
    tables = {"brain_rsa": two}
    tables.update(group_level(tables, validate({"subjects": {"simulate": 3}})))
    assert "group_rsa" not in tables
    html = summary_section(ReportContext(output=None, result=_Result(tables), config=validate({"subjects": {"simulate": 3}}), seconds=0,
                                         device="cpu"))
    assert "Not tested: 2 subject(s)" in html
