"""Paper 001's analysis choices: RE screening, the preset file."""

from pathlib import Path

import numpy as np
import pytest

from brainprobe.pipeline import validate
from brainprobe.pipeline._config import load_config
from brainprobe.pipeline._steps import screen_regular_images
from brainprobe.stimuli import sample_images

PRESET = Path(__file__).resolve().parents[2] / "examples" / "paper001.toml"


def test_re_images_below_the_threshold_are_listed_or_dropped(efficientnet):
    photos = sample_images(6, size=224)
    p_top1 = efficientnet.predict_proba(photos.images).max(axis=1)
    threshold = float(np.sort(p_top1)[2] + 1e-6)  # the three least confident fall below it
    with pytest.raises(ValueError, match=r"re_threshold = .*: 3 of 6 RE images are classified below it: .*p = 0\.\d+"):
        screen_regular_images(efficientnet, photos, threshold)
    with pytest.warns(UserWarning, match="dropped"):
        kept = screen_regular_images(efficientnet, photos, threshold, "drop")
    assert len(kept) == 3 and set(kept.image_ids) == {photos.image_ids[i] for i in np.argsort(p_top1)[3:]}
    assert screen_regular_images(efficientnet, photos, 0.0) is photos


def test_the_paper_preset_states_the_papers_choices():
    config = load_config(PRESET)
    assert config["network"]["name"] == "alexnet"
    assert config["network"]["layers"][-1] == "prob"  # layer 8: the softmax output
    assert config["rsa"]["n_perm"] == config["rsa"]["n_boot"] == 1000
    assert config["rsa"]["trend_p"] == "normal" and config["rsa"]["alternative"] == "two-sided"
    assert config["selection"]["n_per_hemi"] == 100 and config["selection"]["radius_mm"] == 3.0
    assert config["best_layer"]["on"] == ["AN", "AI"] and config["best_layer"]["per_repeat"]
    assert config["stimuli"]["threshold"] == 0.99
    assert config["stimuli"]["re_threshold"] == 0.99 and config["selection"]["n_per_hemi_s2"] == 200
    with pytest.raises(Exception, match=r"re_threshold"):
        validate({"stimuli": {"re_threshold": 1.5}, "subjects": {"simulate": 1}})


@pytest.mark.slow
def test_the_paper_preset_runs_end_to_end_with_a_random_alexnet(tmp_path):
    """The preset as written (12 bundled photos, 3 simulated subjects, 1000 permutations and
    bootstraps), with He-initialized random weights instead of downloaded ImageNet weights."""
    import tomllib

    from brainprobe.pipeline import Study

    values = tomllib.loads(PRESET.read_text())
    values["study"]["output"] = str(tmp_path / "paper001")
    values["network"].update(weights="random", init="kaiming", device="cpu")
    values["stimuli"]["re_threshold"] = 0.0  # a random network classifies no photo at p >= 0.99
    result = Study(validate(values, base=PRESET.parent), progress=False).run()
    trend = result.tables["network_trend"]
    assert (trend["p_method"] == "normal").all() and (trend["p"] == trend["p_normal"]).all()
    assert set(result.tables["best_layer_proportions"]["test_kind"]) == {"AN", "AI"}
    assert (result.tables["network_difference"]["alternative"] == "two-sided").all()
