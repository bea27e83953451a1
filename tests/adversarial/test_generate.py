import numpy as np
import pandas as pd
import pytest
import torch

from brainprobe.adversarial import (
    imagenet_mean_image,
    interference_images,
    noise_images,
    paper_design,
)
from brainprobe.models import load_model
from brainprobe.stimuli import read_image, sample_images


@pytest.fixture(scope="module")
def regular():
    return sample_images(3, size=224)


def _check_saved_images_meet_target(model, stimuli, folder):
    """Save, read the PNGs back, and check every image still reaches its target class."""
    saved = stimuli.save(folder)
    png_files = pd.read_csv(saved / "stimuli.csv", keep_default_na=False)["png"]
    reloaded = torch.stack([torch.from_numpy(read_image(saved / name)).permute(2, 0, 1) for name in png_files])
    assert torch.equal(reloaded, stimuli.images)  # the PNGs hold exactly the returned images
    proba = model.predict_proba(reloaded)
    targets = stimuli.table["target_class"].to_numpy()
    assert (proba[np.arange(len(targets)), targets] >= 0.99).all()


def test_an_and_ai_on_random_alexnet(kaiming_alexnet, regular, tmp_path):
    an = noise_images(kaiming_alexnet, [1, 500, 999], max_iter=200, progress=False)
    assert an.table["success"].all() and (an.table["kind"] == "AN").all()
    _check_saved_images_meet_target(kaiming_alexnet, an, tmp_path / "an")
    ai = interference_images(kaiming_alexnet, regular, "random", seed=1, max_iter=200, progress=False)
    assert ai.table["success"].all()
    assert (ai.table["target_class"] != ai.table["class_index"]).all()
    assert ai.table["source_id"].tolist() == regular.image_ids
    _check_saved_images_meet_target(kaiming_alexnet, ai, tmp_path / "ai")


def test_real_network_ai_stays_close_to_the_regular_image(efficientnet, regular, tmp_path):
    ai = interference_images(efficientnet, regular, "random", seed=0, max_iter=300, progress=False)
    assert ai.table["success"].all()
    assert (ai.table["psnr"] >= 30).all(), ai.table["psnr"].tolist()
    assert (ai.table["top1_class"] == ai.table["target_class"]).all()
    _check_saved_images_meet_target(efficientnet, ai, tmp_path)


def test_real_network_an_from_the_mean_image(efficientnet, tmp_path):
    an = noise_images(efficientnet, [281, 967], max_iter=300, progress=False)
    assert an.table["success"].all()
    mean = imagenet_mean_image(224)
    assert (an.table["linf"] > 0.02).all()  # it moved away from the mean image
    assert torch.allclose(mean.mean(dim=(1, 2)), torch.tensor([0.485, 0.456, 0.406]))
    _check_saved_images_meet_target(efficientnet, an, tmp_path)


def test_images_stop_at_different_iterations(kaiming_alexnet, regular):
    ai = interference_images(kaiming_alexnet, regular, "least_likely", max_iter=300, progress=False)
    assert ai.table["success"].all()
    assert ai.table["n_iter"].nunique() > 1, ai.table["n_iter"].tolist()


def test_same_seed_same_images(kaiming_alexnet, regular):
    first = interference_images(kaiming_alexnet, regular[:2], "random", seed=4, max_iter=100, progress=False)
    second = interference_images(kaiming_alexnet, regular[:2], "random", seed=4, max_iter=100, progress=False)
    assert torch.equal(first.images, second.images)
    assert first.table["target_class"].tolist() == second.table["target_class"].tolist()


def test_failures_are_kept_and_named():
    model = load_model("alexnet", weights=None, seed=0, device="cpu")  # default init: flat softmax
    with pytest.warns(UserWarning, match="did not reach p >= 0.99"):
        an = noise_images(model, [3], max_iter=3, progress=False)
    assert len(an) == 1 and not an.table["success"].iloc[0]


def test_target_validation(kaiming_alexnet, regular):
    labelled = regular.with_table(regular.table.assign(class_index=[1, 2, 3]))
    with pytest.raises(ValueError, match="own class"):
        interference_images(kaiming_alexnet, labelled, [1, 5, 6], progress=False)
    with pytest.raises(ValueError, match="0..999"):
        noise_images(kaiming_alexnet, [1000], progress=False)
    with pytest.raises(TypeError, match="StimulusSet"):
        interference_images(kaiming_alexnet, torch.rand(1, 3, 224, 224), progress=False)


def test_paper_design_builds_matching_triplets(kaiming_alexnet, regular, tmp_path):
    design = paper_design(kaiming_alexnet, regular, seed=0, an_options={"max_iter": 200},
                          ai_options={"max_iter": 200})
    table = design.table
    assert table["kind"].value_counts().to_dict() == {"RE": 3, "AN": 3, "AI": 3}
    for kind in ("RE", "AN", "AI"):  # the README's own-data convention: RE/img00, AN/img00, AI/img00
        assert sorted(table.loc[table["kind"] == kind, "source_id"]) == sorted(f"RE/{i}" for i in regular.image_ids)
        assert sorted(table.loc[table["kind"] == kind, "image_id"]) == sorted(f"{kind}/{i}" for i in regular.image_ids)
    # the saved PNGs, read back as a user's folder, carry the same ids, kinds and sources
    from brainprobe.stimuli import load_folder

    again = load_folder(design.save(tmp_path / "design") / "images").table.set_index("image_id")
    assert sorted(again.index) == sorted(table["image_id"])
    indexed = table.set_index("image_id")
    assert (again["kind"] == indexed.loc[again.index, "kind"]).all()
    assert (again["source_id"] == indexed.loc[again.index, "source_id"]).all()
    an, ai = table[table["kind"] == "AN"], table[table["kind"] == "AI"]
    re_class = table[table["kind"] == "RE"].set_index("source_id")["class_index"]
    assert (an["target_class"].to_numpy() == re_class.loc[an["source_id"]].to_numpy()).all()
    assert (ai["target_class"].to_numpy() != re_class.loc[ai["source_id"]].to_numpy()).all()


@pytest.mark.filterwarnings("ignore:.*did not reach")
def test_progress_shows_images_done_and_the_stop_criterion_not_an_eta(kaiming_alexnet, regular, capsys):
    # progress=None where stderr is no terminal (capsys, as in a notebook or a log): a line per stage
    paper_design(kaiming_alexnet, regular, an_options={"max_iter": 2}, ai_options={"max_iter": 2})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("paper_design: ")]
    assert len(lines) == 4 and lines[0].startswith("paper_design: 3 AN images") and "AI: " in lines[3]
    assert " of 3 reached p >= 0.99 (steps: median " in lines[1]
    noise_images(kaiming_alexnet, [1, 500, 999], max_iter=3, progress=True)
    bar = capsys.readouterr().err
    assert "AN images 1-3 of 3: step " in bar and "of at most 3" in bar  # max_iter a ceiling, not the length
    assert "done 0/3" in bar and "lowest p_target 0." in bar and "(each stops at 0.99)" in bar
    assert "<" not in bar  # no ETA towards max_iter
