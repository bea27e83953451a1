"""Real data through the study file: the real GLMsingle's outputs, kinds from the stimulus table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainprobe.pipeline import Study, validate
from brainprobe.pipeline import _steps as steps

GLMSINGLE = Path(__file__).parents[1] / "data" / "glmsingle"


def _glmsingle_subject(folder, tiny_run, tmp_path, *, with_kinds=False):
    """A [[subject]] naming a GLMsingle folder: 30 conditions (condition c shows stimulus c % 15),
    400 columns placed on the V1 and LO vertices of fs_LR 32k by a vertex table."""
    from brainprobe.roi import mmp_visual_rois

    stimuli = tiny_run.tables["stimuli"]
    conditions = stimuli.iloc[np.arange(30) % len(stimuli)][["image_id"] + (["kind"] if with_kinds else [])]
    conditions.to_csv(tmp_path / "conditions.csv", index=False)
    parts = []
    for hemi in "LR":
        masks = mmp_visual_rois(hemi, ["V1", "LO"])
        parts.append(pd.DataFrame({"hemi": hemi, "vertex": np.flatnonzero(masks["V1"] | masks["LO"])[:200]}))
    pd.concat(parts, ignore_index=True).to_csv(tmp_path / "vertices.csv", index=False)
    return {"id": "sub-glm", "betas": str(GLMSINGLE / folder), "conditions": "conditions.csv",
            "vertices": "vertices.csv", "meshes": "fs_LR_32k", "allow_pickle": True}


def _stimulus_folder(tiny_run) -> str:
    return str(next((tiny_run.output / ".cache" / "stimuli").glob("*/stimuli")))


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["out_npy", "out_h5_uneven"])
def test_a_glmsingle_folder_runs_through_the_study(tiny_run, tiny_values, tmp_path, folder):
    tiny_values["stimuli"]["source"] = _stimulus_folder(tiny_run)
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [_glmsingle_subject(folder, tiny_run, tmp_path)]
    tiny_values["searchlight"] = {"enabled": False}
    tiny_values["best_layer"]["enabled"] = False
    config = validate(tiny_values, base=tmp_path)
    result = Study(config, progress=False).run()
    assert set(result.tables["brain_rsa"]["subject"]) == {"sub-glm"}
    assert set(result.tables["encoding"]["subject"]) == {"sub-glm"}
    # what the study analysed: GLMsingle's betasmd, trials in stimorder, runs from numtrialrun,
    # kinds from the stimulus table (the condition table has none)
    stimuli = result.tables["stimuli"]
    responses = steps.load_subject(config["subject"][0], config, stimuli)
    truth = np.load(GLMSINGLE / f"{folder}_truth.npz")
    shown = np.asarray(truth["cond"])
    assert responses.trials["image_id"].tolist() == stimuli["image_id"].to_numpy()[shown % len(stimuli)].tolist()
    assert responses.trials["kind"].tolist() == stimuli["kind"].to_numpy()[shown % len(stimuli)].tolist()
    assert responses.trials["run"].tolist() == truth["run"].tolist()
    from brainprobe.data import load_responses

    raw = load_responses(GLMSINGLE / folder, conditions=pd.read_csv(tmp_path / "conditions.csv"), allow_pickle=True)
    np.testing.assert_array_equal(responses.betas, raw.betas)


def test_kinds_come_from_the_stimulus_table_and_contradictions_are_errors(tiny_run, tiny_values, tmp_path):
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [_glmsingle_subject("out_npy", tiny_run, tmp_path)]
    config = validate(tiny_values, base=tmp_path)
    stimuli = tiny_run.tables["stimuli"]
    with pytest.raises(ValueError, match=r"sub-glm trials: no 'kind' column; kinds come from the stimulus table"):
        steps.load_subject(config["subject"][0], config)
    labelled = steps.load_subject(config["subject"][0], config, stimuli)
    assert set(labelled.trials["kind"]) == {"RE", "AN", "AI"}
    wrong = pd.read_csv(tmp_path / "conditions.csv").assign(kind="RE")  # every condition called RE
    wrong.to_csv(tmp_path / "conditions.csv", index=False)
    with pytest.raises(ValueError, match=r"sub-glm trials: \d+ trials contradict the stimulus table's kind, e.g. "
                                         r"'A[NI]/\w+': trials say 'RE', stimuli say 'A[NI]'"):
        steps.load_subject(config["subject"][0], config, stimuli)


def test_glmsingle_keys_are_checked_with_the_study_file(tiny_values, tmp_path):
    from brainprobe.pipeline import ConfigError

    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [{"betas": str(GLMSINGLE / "out_npy"), "glmsingle_model": "TYPEZ"}]
    with pytest.raises(ConfigError, match=r"\[\[subject\]\] #1 glmsingle_model: expected one of"):
        validate(tiny_values, base=tmp_path)
    tiny_values["subject"] = [{"betas": str(GLMSINGLE / "out_npy"), "conditions": "missing.csv"}]
    with pytest.raises(ConfigError, match=r"\[\[subject\]\] #1 conditions: file not found"):
        validate(tiny_values, base=tmp_path)


def test_gifti_betas_per_hemisphere_in_the_study_file(tiny_run, tiny_values, tmp_path):
    import nibabel as nib

    stimuli = tiny_run.tables["stimuli"]
    trials = pd.concat([stimuli[["image_id"]].assign(repeat=r) for r in (1, 2)], ignore_index=True)
    trials.to_csv(tmp_path / "trials.csv", index=False)  # no kind column: kinds from the stimuli
    rng = np.random.default_rng(0)
    sizes = {"L": 8, "R": 6}
    betas = {h: rng.normal(size=(len(trials), n)).astype(np.float32) for h, n in sizes.items()}
    rows = []
    for hemi, n in sizes.items():
        nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(row) for row in betas[hemi]]),
                 tmp_path / f"sub-01_hemi-{hemi}_betas.func.gii")
        x = np.arange(n, dtype=np.float32)
        surface = nib.gifti.GiftiImage(darrays=[
            nib.gifti.GiftiDataArray(np.column_stack([x, x % 2, 0 * x]), intent="NIFTI_INTENT_POINTSET"),
            nib.gifti.GiftiDataArray(np.array([[i, i + 1, i + 2] for i in range(n - 2)], np.int32),
                                     intent="NIFTI_INTENT_TRIANGLE")])
        nib.save(surface, tmp_path / f"{hemi}.surf.gii")
        rows.append(pd.DataFrame({"hemi": hemi, "vertex": np.arange(n), "V1": np.arange(n) < n // 2,
                                  "LO": np.arange(n) >= n // 2}))
    pd.concat(rows, ignore_index=True).to_csv(tmp_path / "vertices.csv", index=False)
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["rois"]["atlas"] = "columns"
    tiny_values["subject"] = [{"id": "sub-01", "betas": {h: f"sub-01_hemi-{h}_betas.func.gii" for h in "LR"},
                               "trials": "trials.csv", "vertices": "vertices.csv",
                               "meshes": {h: f"{h}.surf.gii" for h in "LR"}}]
    config = validate(tiny_values, base=tmp_path)
    responses = steps.load_subject(config["subject"][0], config, stimuli)
    np.testing.assert_array_equal(responses.betas, np.concatenate([betas["L"], betas["R"]], axis=1))
    assert responses.trials["kind"].tolist() == stimuli["kind"].tolist() * 2
    assert responses.vertices["V1"].sum() == 4 + 3 and set(responses.meshes) == {"L", "R"}


def test_an_unreadable_subject_file_is_a_brainprobe_error_chained_to_the_readers(tiny_values, tmp_path):
    from brainprobe import InputFileError

    (tmp_path / "betas.npy").write_bytes(b"not an array")  # a truncated or mislabelled file
    pd.DataFrame({"image_id": ["a", "b"], "kind": ["RE", "RE"]}).to_csv(tmp_path / "trials.csv", index=False)
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [{"id": "sub-bad", "betas": "betas.npy", "trials": "trials.csv",
                               "meshes": "fs_LR_32k"}]
    config = validate(tiny_values, base=tmp_path)
    with pytest.raises(InputFileError, match=r"\[\[subject\]\] sub-bad: .*betas\.npy") as caught:
        steps.read_subject(config["subject"][0])
    # the reader's own error stays in the traceback (its class and its own cause), not only its words
    assert isinstance(caught.value.__cause__, InputFileError) and "NumPy header" in str(caught.value.__cause__)
