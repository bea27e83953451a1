"""BIDS events that cannot mislabel: image ids, non-image trials, per-run files, kinds."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainprobe.data import kinds_from_stimuli, load_responses, load_trial_table
from brainprobe.stimuli import load_folder


def _events(path, stim_files, trial_types=None):
    n = len(stim_files)
    table = pd.DataFrame({"onset": np.arange(n) * 4.0, "duration": 1.0,
                          "trial_type": trial_types or ["image"] * n, "stim_file": stim_files})
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


@pytest.fixture
def stimulus_folder(tmp_path):
    """RE/img00.png and AN/img00.png: the same file name in two kinds' folders."""
    for kind in ("RE", "AN"):
        (tmp_path / "stimuli" / kind).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i + (100 if kind == "AN" else 0), np.uint8)).save(
                tmp_path / "stimuli" / kind / f"img{i:02d}.png")
    return tmp_path / "stimuli"


def test_stim_files_in_sub_folders_keep_distinct_ids_that_match_load_folder(tmp_path, stimulus_folder):
    events = load_trial_table(_events(tmp_path / "sub-01_task-view_run-01_events.tsv",
                                      ["RE/img00.png", "AN/img00.png", "RE/img01.png", "AN/img01.png"]))
    assert events["image_id"].tolist() == ["RE/img00", "AN/img00", "RE/img01", "AN/img01"]
    folder = load_folder(stimulus_folder).table
    assert set(events["image_id"]) == set(folder["image_id"])
    # kind folders give kinds, and an AN image derives from the RE image of the same name
    assert folder.set_index("image_id").loc["AN/img00", ["kind", "source_id"]].tolist() == ["AN", "RE/img00"]
    # a path that starts at the dataset's stimuli/ folder gives the same ids
    rooted = load_trial_table(_events(tmp_path / "rooted_events.tsv", ["stimuli/RE/img00.png", "stimuli/AN/img00.png"]))
    assert rooted["image_id"].tolist() == ["RE/img00", "AN/img00"]


def test_na_stim_files_and_blank_or_fixation_rows_are_non_image_trials_that_leave_the_analysis(tmp_path):
    path = _events(tmp_path / "events.tsv", ["RE/a.png", None, "AN/a.png", None, "RE/a.png"],
                   ["image", "blank", "image", "fixation", "image"])
    events = load_trial_table(path)
    assert events["is_image"].tolist() == [True, False, True, False, True]
    assert events["image_id"].tolist() == ["RE/a", "blank", "AN/a", "fixation", "RE/a"]
    stimuli = pd.DataFrame({"image_id": ["RE/a", "AN/a"], "kind": ["RE", "AN"]})
    betas = np.random.default_rng(0).normal(size=(5, 7))
    responses = load_responses(betas, path, stimuli=stimuli)
    assert responses.trials["kind"].tolist() == ["RE", "blank", "AN", "fixation", "RE"]
    assert responses.select_trials(kind=["RE", "AN", "AI"]).n_trials == 3
    # without stim_file, trial_type names the image, and blank/fixation rows are not images
    pd.DataFrame({"onset": [0, 4, 8], "duration": 1, "trial_type": ["dog", "fixation", "cat"]}).to_csv(
        tmp_path / "types.tsv", sep="\t", index=False)
    types = load_trial_table(tmp_path / "types.tsv")
    assert types["is_image"].tolist() == [True, False, True] and types["kind"].iloc[1] == "fixation"


def test_per_run_events_files_load_as_a_list_or_a_glob_with_the_run_from_the_name(tmp_path):
    for run in (1, 2, 3):
        _events(tmp_path / f"sub-01_ses-02_task-view_run-{run:02d}_events.tsv", [f"RE/img{run}.png", "AN/img0.png"])
    from_glob = load_trial_table(str(tmp_path / "sub-01_*_events.tsv"))
    assert from_glob["run"].tolist() == [1, 1, 2, 2, 3, 3]
    assert from_glob["session"].tolist() == ["02"] * 6
    listed = load_trial_table([tmp_path / "sub-01_ses-02_task-view_run-03_events.tsv",
                               tmp_path / "sub-01_ses-02_task-view_run-01_events.tsv"])
    assert listed["run"].tolist() == [3, 3, 1, 1] and listed["image_id"].tolist()[0] == "RE/img3"
    _events(tmp_path / "sub-01_task-view_events.tsv", ["RE/img0.png"])
    with pytest.raises(ValueError, match=r"sub-01_task-view_events.tsv: cannot tell the run.*run-XX"):
        load_trial_table([tmp_path / "sub-01_ses-02_task-view_run-01_events.tsv", tmp_path / "sub-01_task-view_events.tsv"])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        load_trial_table(str(tmp_path / "sub-09_*_events.tsv"))


def test_kinds_come_from_the_stimulus_table_and_a_contradiction_is_an_error():
    stimuli = pd.DataFrame({"image_id": ["a", "AN_a", "AI_a"], "kind": ["RE", "AN", "AI"]})
    trials = pd.DataFrame({"image_id": ["a", "AN_a", "AI_a", "a"]})
    labelled = kinds_from_stimuli(trials, stimuli)
    assert labelled["kind"].tolist() == ["RE", "AN", "AI", "RE"]
    betas = np.random.default_rng(1).normal(size=(4, 5))
    assert load_responses(betas, trials, stimuli=stimuli).trials["kind"].tolist() == ["RE", "AN", "AI", "RE"]
    with pytest.raises(ValueError, match=r"1 trials contradict the stimulus table's kind, e.g. 'AN_a': trials say 'RE', "
                                         r"stimuli say 'AN'"):
        load_responses(betas, trials.assign(kind=["RE", "RE", "AI", "RE"]), stimuli=stimuli)
    with pytest.raises(ValueError, match=r"1 image trials have no kind and show images that are not in the stimulus "
                                         r"table, e.g. \['b'\]"):
        kinds_from_stimuli(pd.DataFrame({"image_id": ["a", "b"]}), stimuli)
