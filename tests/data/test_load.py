"""Round trips for every response format, and the validation rules."""

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from brainprobe.data import (
    Responses,
    load_responses,
    load_trial_table,
    paper_trial_table,
    trials_from_designinfo,
)
from brainprobe.roi import Mesh

N_TRIALS, N_LEFT, N_RIGHT = 6, 12, 10


@pytest.fixture
def betas():
    return np.random.default_rng(0).normal(size=(N_TRIALS, N_LEFT + N_RIGHT))


@pytest.fixture
def trials():
    return pd.DataFrame({"image_id": ["a", "b", "c"] * 2, "kind": ["RE", "AN", "AI"] * 2})


def tiny_mesh(n):
    coordinates = np.column_stack([np.arange(n, dtype=float), np.zeros(n), np.zeros(n)])
    faces = np.array([[i, i + 1, (i + 2) % n] for i in range(n - 2)])
    coordinates[:, 1] = np.arange(n) % 2
    return Mesh(coordinates, faces, f"mesh{n}")


def test_arrays_and_numpy_files(tmp_path, betas, trials):
    direct = load_responses(betas, trials)
    np.testing.assert_array_equal(direct.betas, betas)
    assert direct.trials["repeat"].tolist() == [1, 1, 1, 2, 2, 2]
    np.save(tmp_path / "b.npy", betas)
    np.savez(tmp_path / "b.npz", betas=betas)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    for name in ("b.npy", "b.npz"):
        loaded = load_responses(tmp_path / name, tmp_path / "trials.csv")
        np.testing.assert_array_equal(loaded.betas, betas)
        assert loaded.trials["image_id"].tolist() == trials["image_id"].tolist()


def test_pickled_numpy_needs_consent(tmp_path, trials):
    np.save(tmp_path / "obj.npy", np.array([{"betas": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_responses(tmp_path / "obj.npy", trials)


def test_nifti_4d_and_3d_series_with_mask(tmp_path, trials):
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(4, 5, 3, N_TRIALS))
    mask = np.zeros((4, 5, 3), bool)
    mask[1:3, 1:4, :2] = True
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "betas.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    four_d = load_responses(tmp_path / "betas.nii.gz", trials, mask=tmp_path / "mask.nii.gz")
    np.testing.assert_allclose(four_d.betas, volume[mask].T)
    assert {"i", "j", "k"} <= set(four_d.vertices.columns)
    paths = []
    for t in range(N_TRIALS):
        nib.save(nib.Nifti1Image(volume[..., t], affine), tmp_path / f"trial{t}.nii.gz")
        paths.append(tmp_path / f"trial{t}.nii.gz")
    series = load_responses(paths, trials, mask=mask)
    np.testing.assert_allclose(series.betas, four_d.betas)
    with pytest.raises(ValueError, match="need a mask"):
        load_responses(tmp_path / "betas.nii.gz", trials)
    with pytest.raises(ValueError, match=r"mask: expected the volume's shape \(4, 5, 3\)"):
        load_responses(tmp_path / "betas.nii.gz", trials, mask=np.ones((2, 2, 2), bool))


def _gifti(arrays):
    return nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.asarray(a, np.float32)) for a in arrays])


def test_gifti_pairs_in_every_layout(tmp_path, betas, trials):
    left, right = betas[:, :N_LEFT].astype(np.float32), betas[:, N_LEFT:].astype(np.float32)
    nib.save(_gifti(list(left)), tmp_path / "sub-01_hemi-L_betas.func.gii")
    nib.save(_gifti(list(right)), tmp_path / "sub-01_hemi-R_betas.func.gii")
    per_trial = load_responses([tmp_path / "sub-01_hemi-L_betas.func.gii", tmp_path / "sub-01_hemi-R_betas.func.gii"], trials)
    np.testing.assert_allclose(per_trial.betas, np.concatenate([left, right], axis=1))
    assert per_trial.vertices["hemi"].tolist() == ["L"] * N_LEFT + ["R"] * N_RIGHT
    # one 2-D array, vertices x trials on the left and trials x vertices on the right
    nib.save(_gifti([left.T]), tmp_path / "L.func.gii")
    nib.save(_gifti([right]), tmp_path / "R.func.gii")
    meshes = {"L": tiny_mesh(N_LEFT), "R": tiny_mesh(N_RIGHT)}
    matrix = load_responses({"L": tmp_path / "L.func.gii", "R": tmp_path / "R.func.gii"}, trials, meshes=meshes)
    np.testing.assert_allclose(matrix.betas, per_trial.betas)
    wrong = {"L": tiny_mesh(N_LEFT + 1), "R": tiny_mesh(N_RIGHT)}
    with pytest.raises(ValueError, match="hemisphere L has 12 vertices, its mesh mesh13 has 13"):
        load_responses([tmp_path / "sub-01_hemi-L_betas.func.gii", tmp_path / "sub-01_hemi-R_betas.func.gii"],
                       trials, meshes=wrong)


def test_cifti_dscalar_splits_hemispheres(tmp_path, betas, trials):
    from nibabel import cifti2

    left_vertices = np.arange(0, 2 * N_LEFT, 2)     # every other vertex: a 'medial wall' left out
    right_vertices = np.arange(N_RIGHT)
    brain = (cifti2.BrainModelAxis.from_surface(left_vertices, 2 * N_LEFT, "CortexLeft")
             + cifti2.BrainModelAxis.from_surface(right_vertices, N_RIGHT, "CortexRight"))
    scalars = cifti2.ScalarAxis([f"trial{t}" for t in range(N_TRIALS)])
    header = cifti2.Cifti2Header.from_axes((scalars, brain))
    nib.save(cifti2.Cifti2Image(betas.astype(np.float32), header), tmp_path / "betas.dscalar.nii")
    loaded = load_responses(tmp_path / "betas.dscalar.nii", trials)
    np.testing.assert_allclose(loaded.betas, betas.astype(np.float32))
    assert loaded.vertices.loc[loaded.vertices["hemi"] == "L", "vertex"].tolist() == left_vertices.tolist()


def test_glmsingle_outputs_with_designinfo(tmp_path, betas):
    conditions = pd.DataFrame({"image_id": ["a", "b", "c"], "kind": ["RE", "AN", "AI"]})
    stimorder = np.array([2, 0, 1, 1, 2, 0])  # 0-based, as GLMsingle's Python code writes it
    glm = tmp_path / "glm"
    glm.mkdir()
    with h5py.File(glm / "TYPED_FITHRF_GLMDENOISE_RR.hdf5", "w") as handle:
        handle["betasmd"] = betas.T[:, None, None, :]  # (vertices, 1, 1, trials)
    np.save(glm / "DESIGNINFO.npy", {"stimorder": stimorder}, allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_responses(glm, designinfo=glm / "DESIGNINFO.npy", conditions=conditions)
    loaded = load_responses(glm, designinfo=glm / "DESIGNINFO.npy", conditions=conditions, allow_pickle=True)
    np.testing.assert_allclose(loaded.betas, betas)
    assert loaded.trials["image_id"].tolist() == ["c", "a", "b", "b", "c", "a"]
    assert loaded.trials["repeat"].tolist() == [1, 1, 1, 2, 2, 2]
    # the MATLAB version: .mat files, 1-based stimorder, betas in 'modelmd'
    scipy.io.savemat(tmp_path / "TYPED_FITHRF_GLMDENOISE_RR.mat", {"modelmd": betas.T[:, None, None, :]})
    scipy.io.savemat(tmp_path / "DESIGNINFO.mat", {"stimorder": stimorder + 1})
    from_mat = load_responses(tmp_path / "TYPED_FITHRF_GLMDENOISE_RR.mat", designinfo=tmp_path / "DESIGNINFO.mat",
                              conditions=conditions)
    np.testing.assert_allclose(from_mat.betas, betas)
    assert from_mat.trials["image_id"].tolist() == loaded.trials["image_id"].tolist()


def test_nilearn_surface_image(betas, trials):
    from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage

    meshes = {"left": tiny_mesh(N_LEFT), "right": tiny_mesh(N_RIGHT)}
    poly = PolyMesh(**{h: InMemoryMesh(m.coordinates, m.faces) for h, m in meshes.items()})
    image = SurfaceImage(mesh=poly, data={"left": betas[:, :N_LEFT].T, "right": betas[:, N_LEFT:].T})
    loaded = load_responses(image, trials)
    np.testing.assert_allclose(loaded.betas, betas)
    assert set(loaded.meshes) == {"L", "R"} and loaded.meshes["L"].n_vertices == N_LEFT


def test_trial_tables(tmp_path):
    pd.DataFrame({"onset": [0, 4], "duration": [1, 1], "trial_type": ["image", "image"],
                  "stim_file": ["stimuli/dog.png", "stimuli/cat.jpg"]}).to_csv(tmp_path / "events.tsv", sep="\t", index=False)
    events = load_trial_table(tmp_path / "events.tsv")
    assert events["image_id"].tolist() == ["dog", "cat"]
    stimuli = pd.DataFrame({"image_id": [f"{k}{i}" for k in ("RE", "AN", "AI") for i in range(40)],
                            "kind": [k for k in ("RE", "AN", "AI") for _ in range(40)],
                            "source_id": [f"RE{i}" for _ in range(3) for i in range(40)]})
    design = paper_trial_table(stimuli)
    assert len(design) == 241 and design["kind"].iloc[-1] == "blank"
    assert design.groupby("image_id").size().drop("blank").eq(2).all()
    with pytest.raises(ValueError, match="do not fit"):
        trials_from_designinfo([0, 5], stimuli.head(3))


def test_validation_rules(betas, trials):
    with pytest.raises(ValueError, match="6 trials but the trial table has 5 rows"):
        Responses(betas, trials.head(5))
    with pytest.raises(ValueError, match="duplicate trial labels"):
        Responses(betas, trials.assign(repeat=1))
    bad = betas.copy()
    bad[2, 3] = np.nan
    bad[:, 7] = 4.0
    with pytest.raises(ValueError, match=r"2 vertices are unusable .*'non-finite values': 1.*'zero variance': 1"):
        Responses(bad, trials)
    with pytest.warns(UserWarning, match="dropped 2 vertices"):
        kept = Responses(bad, trials, on_bad_vertices="drop")
    assert kept.n_vertices == betas.shape[1] - 2
    assert kept.dropped_vertices_["vertex"].tolist() == [3, 7]
    with pytest.raises(ValueError, match="has no 'image_id' column"):
        Responses(betas, trials.rename(columns={"image_id": "stimulus"}))


def test_average_repeats_and_selection(betas, trials):
    responses = Responses(betas, trials)
    patterns, table = responses.average_repeats()
    np.testing.assert_allclose(patterns[0], (betas[0] + betas[3]) / 2)
    assert table["image_id"].tolist() == ["a", "b", "c"] and (table["n_repeats"] == 2).all()
    assert responses.select_trials(kind="RE").n_trials == 2


def test_the_subject_is_the_bids_sub_entity_of_the_file_names():
    from brainprobe.data._load import subject_from_names

    assert subject_from_names("sub-02/sub-02_task-view_space-fsLR_den-91k_betas.dscalar.nii",
                              "sub-02/func/sub-02_task-view_run-*_events.tsv") == "sub-02"
    assert subject_from_names({"L": "sub-03/sub-03_hemi-L_betas.func.gii", "R": "sub-03/sub-03_hemi-R.func.gii"}) == "sub-03"
    assert subject_from_names("data/sub-01/glmsingle") == "sub-01" and subject_from_names("betas.npy") == "sub-01"
    with pytest.raises(ValueError, match=r"different subjects \['sub-02', 'sub-03'\]"):
        subject_from_names("sub-02/betas.dscalar.nii", "sub-03/trials.csv")
