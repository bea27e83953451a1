"""GLMsingle outputs written by the real GLMsingle, read through `load_responses`."""

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from brainprobe.data import load_responses

FIXTURES = Path(__file__).parent / "glmsingle"
FOLDERS = {"out_npy": "TYPED_FITHRF_GLMDENOISE_RR.npy", "out_h5_uneven": "TYPED_FITHRF_GLMDENOISE_RR.hdf5"}


def conditions(n=30):
    return pd.DataFrame({"image_id": [f"img{c:02d}" for c in range(n)], "kind": ["RE", "AN", "AI"] * (n // 3)})


def betasmd(folder):
    path = FIXTURES / folder / FOLDERS[folder]
    if path.suffix == ".hdf5":
        with h5py.File(path, "r") as handle:
            return np.asarray(handle["betasmd"])
    return np.load(path, allow_pickle=True).item()["betasmd"]  # our own fixture: trusted


@pytest.mark.parametrize("folder", list(FOLDERS))
def test_a_glmsingle_folder_gives_the_planted_trials_runs_and_its_betas_exactly(folder):
    truth = np.load(FIXTURES / f"{folder}_truth.npz")
    responses = load_responses(FIXTURES / folder, conditions=conditions(), allow_pickle=True)
    assert responses.source.endswith(FOLDERS[folder])
    np.testing.assert_array_equal(responses.betas, betasmd(folder)[:, 0, 0, :].T)
    assert responses.trials["condition"].tolist() == truth["cond"].tolist()
    assert responses.trials["image_id"].tolist() == [f"img{c:02d}" for c in truth["cond"]]
    assert responses.trials["run"].tolist() == truth["run"].tolist()  # from DESIGNINFO's numtrialrun
    assert responses.trials["kind"].tolist() == [["RE", "AN", "AI"][c % 3] for c in truth["cond"]]
    counts = responses.trials.groupby("image_id")["repeat"].max().to_dict()
    assert counts == {f"img{c:02d}": int(n) for c, n in zip(*np.unique(truth["cond"], return_counts=True), strict=True)}


def test_the_model_file_and_designinfo_can_be_named_and_typea_is_refused(tmp_path):
    folder = FIXTURES / "out_h5_uneven"
    truth = np.load(FIXTURES / "out_h5_uneven_truth.npz")
    named = load_responses(folder / "TYPED_FITHRF_GLMDENOISE_RR.hdf5", designinfo=folder / "DESIGNINFO.npy",
                           conditions=conditions(), allow_pickle=True)
    by_short_name = load_responses(folder, conditions=conditions(), glmsingle_model="typed", allow_pickle=True)
    np.testing.assert_array_equal(named.betas, by_short_name.betas)
    assert named.trials["run"].tolist() == truth["run"].tolist()
    for source, model in ((folder, "TYPEA"), (folder / "TYPEA_ONOFF.hdf5", "TYPED"),
                          (FIXTURES / "out_npy" / "TYPEA_ONOFF.npy", "TYPED")):
        with pytest.raises(ValueError, match="TYPEA_ONOFF holds one on-off beta per vertex.*no single-trial betas"):
            load_responses(source, conditions=conditions(), glmsingle_model=model, allow_pickle=True)
    with pytest.raises(ValueError, match="GLMsingle model: expected one of"):
        load_responses(folder, conditions=conditions(), glmsingle_model="TYPEE")


def test_pickled_glmsingle_files_need_the_opt_in_and_say_why():
    with pytest.raises(ValueError, match=r"TYPED_FITHRF_GLMDENOISE_RR.npy: holds pickled objects \(GLMsingle's "
                                         r"default .npy outputs are pickled dictionaries.*allow_pickle=True"):
        load_responses(FIXTURES / "out_npy", conditions=conditions())
    # hdf5 betas, but GLMsingle's DESIGNINFO is always a pickled .npy
    with pytest.raises(ValueError, match=r"DESIGNINFO.npy: holds pickled objects.*allow_pickle = true"):
        load_responses(FIXTURES / "out_h5_uneven", conditions=conditions())


def test_a_condition_table_that_does_not_fit_is_an_error():
    with pytest.raises(ValueError, match=r"condition indices 0..29 do not fit the 20 rows"):
        load_responses(FIXTURES / "out_npy", conditions=conditions(21).head(20), allow_pickle=True)


def test_surface_outputs_split_into_hemispheres_by_the_meshes_sizes_or_a_vertex_table(tmp_path):
    from brainprobe.roi import Mesh

    def strip(n):
        x = np.arange(n, dtype=float)
        faces = np.array([[i, i + 1, i + 2] for i in range(n - 2)])
        return Mesh(np.column_stack([x, x % 2, np.zeros(n)]), faces, f"strip{n}")

    meshes = {"L": strip(250), "R": strip(150)}
    split = load_responses(FIXTURES / "out_npy", conditions=conditions(), meshes=meshes, allow_pickle=True)
    assert split.vertices["hemi"].value_counts().to_dict() == {"L": 250, "R": 150}
    assert split.vertices.loc[split.vertices["hemi"] == "R", "vertex"].tolist() == list(range(150))
    table = pd.DataFrame({"hemi": ["L", "R"] * 200, "vertex": np.repeat(np.arange(200), 2), "V1": [True, False] * 200})
    table.to_csv(tmp_path / "vertices.csv", index=False)
    placed = load_responses(FIXTURES / "out_npy", conditions=conditions(), vertices=tmp_path / "vertices.csv",
                            allow_pickle=True)
    assert placed.vertices["hemi"].tolist() == table["hemi"].tolist() and placed.vertices["V1"].sum() == 200
    with pytest.raises(ValueError, match=r"vertices: expected 400 rows .*found 10"):
        load_responses(FIXTURES / "out_npy", conditions=conditions(), vertices=table.head(10), allow_pickle=True)
