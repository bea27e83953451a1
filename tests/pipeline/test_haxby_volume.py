"""Volume data end to end: Haxby et al. (2001) subject 1 (one slice, 12 runs, betas from nilearn's GLM)
through `Study.run` with spherical neighbourhoods, a NIfTI label image for the ROIs, vertex
selection over all 12 runs, crossnobis RDMs (runs as folds) and a category model RDM.

The data set has no stimulus images: eight bundled photos stand in for the eight categories so
that the network side runs; the checks here are the brain side and the model RDMs."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from _haxby import CATEGORIES, haxby_betas


@pytest.fixture(scope="module")
def haxby_study(tmp_path_factory):
    from brainprobe.pipeline import Study, validate
    from brainprobe.stimuli import sample_images, save_stimuli

    folder = tmp_path_factory.mktemp("haxby")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn: "Generation of a mask has been requested ..."
        files = haxby_betas(folder / "glm")
    mask = np.asarray(nib.load(files["mask"]).dataobj) > 0
    labels = np.zeros(mask.shape, np.int16)
    j = np.arange(mask.shape[1])[None, :, None]
    labels[mask & (j < 10)] = 1
    labels[mask & (j >= 10)] = 2
    nib.save(nib.Nifti1Image(labels, nib.load(files["mask"]).affine), folder / "labels.nii.gz")
    stand_ins = sample_images(8, size=64)
    animacy = ["animate" if c in ("face", "cat") else "inanimate" for c in CATEGORIES]
    stand_ins = stand_ins.with_table(stand_ins.table.assign(image_id=list(CATEGORIES), source_id=list(CATEGORIES),
                                                            category=animacy))
    save_stimuli(stand_ins, folder / "stimuli")
    values = {
        "study": {"name": "haxby", "output": str(folder / "out")},
        "stimuli": {"source": str(folder / "stimuli"), "generate": False},
        "design": {"kind": "general", "models": ["category"]},
        "network": {"name": "alexnet", "weights": "random", "init": "kaiming", "layers": ["conv2", "fc7"],
                    "device": "cpu"},
        "rois": {"names": ["posterior", "anterior"], "atlas": "labels"},
        "selection": {"radius_mm": 8.0, "n_per_hemi": 60, "split": "all"},
        "rsa": {"metric": "crossnobis", "n_perm": 200, "n_boot": 100},
        "searchlight": {"enabled": True},
        "encoding": {"enabled": False},
        "best_layer": {"enabled": False},
        "figures": {"formats": ["png"], "dpi": 50},
        "subject": [{"id": "sub-01", "betas": str(files["betas"]), "trials": str(files["trials"]),
                     "mask": str(files["mask"]), "labels": str(folder / "labels.nii.gz")}],
    }
    return Study(validate(values), progress=False).run(), files


def test_crossnobis_rdms_equal_rsatoolbox(haxby_study):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    from brainprobe.data import load_responses

    result, files = haxby_study
    responses = load_responses(files["betas"], pd.read_csv(files["trials"]), mask=files["mask"])
    selection = result.tables["selection"]
    rdms = result.tables["brain_rdms"]
    for roi in ("posterior", "anterior"):
        columns = selection[(selection["roi"] == roi) & selection["selected"]]["column"].to_numpy()
        assert len(columns) == 60
        dataset = Dataset(responses.betas[:, columns], obs_descriptors={
            "conds": responses.trials["image_id"].to_numpy(), "runs": responses.trials["run"].to_numpy()})
        expected = calc_rdm(dataset, method="crossnobis", descriptor="conds", cv_descriptor="runs")
        order = list(expected.pattern_descriptors["conds"])
        square = expected.get_matrices()[0]
        ours = rdms[rdms["roi"] == roi]
        for a, b, value in zip(ours["image_a"], ours["image_b"], ours["dissimilarity"], strict=True):
            assert value == pytest.approx(square[order.index(a), order.index(b)], abs=1e-10)


def test_selection_reads_all_twelve_runs_with_spheres(haxby_study):
    from brainprobe.data import load_responses
    from brainprobe.roi import select_reliable_vertices, spherical_neighbourhoods

    result, files = haxby_study
    responses = load_responses(files["betas"], pd.read_csv(files["trials"]), mask=files["mask"])
    assert {"x", "y", "z"} <= set(responses.vertices.columns)
    responses.add_roi("all", np.ones(responses.n_vertices, bool))
    disks = spherical_neighbourhoods(responses.vertices, 8.0)
    all_runs = select_reliable_vertices(responses, "all", disks, n_per_hemi=60, split="all", seed=0)
    two_runs = select_reliable_vertices(responses, "all", disks, n_per_hemi=60)
    # every run counts: the 12-run reliability differs from the first two runs', and is higher
    assert not np.allclose(all_runs["reliability"], two_runs["reliability"])
    assert all_runs["reliability"].median() > two_runs["reliability"].median()
    selection = result.tables["selection"]
    stored = selection[selection["roi"] == "posterior"].set_index("column")["reliability"]
    posterior = responses.vertices.index[(responses.vertices["j"] < 10).to_numpy()]
    assert set(stored.index) == set(posterior)


def test_volume_searchlight_maps_written_as_nifti(haxby_study):
    from brainprobe._internal import correlate_rows
    from brainprobe.data import load_responses
    from brainprobe.roi import neighbourhoods_for_columns, spherical_neighbourhoods
    from brainprobe.rsa import category_rdm, rdm

    result, files = haxby_study
    table = result.tables["general_searchlight"]
    image = nib.load(result.output / "maps" / "sub-01_searchlight.nii.gz")
    columns = [c for c in table.columns if c.startswith("r_")]
    assert image.shape == (40, 20, 1, len(columns))
    np.testing.assert_allclose(image.affine, nib.load(files["mask"]).affine, atol=1e-6)
    data = np.asarray(image.dataobj)
    row = table.iloc[100]
    assert data[int(row["i"]), int(row["j"]), int(row["k"]), columns.index("r_model:category")] == pytest.approx(
        row["r_model:category"])
    # one sphere by hand: its crossnobis RDM (runs as folds; rsatoolbox's) against the category model
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    responses = load_responses(files["betas"], pd.read_csv(files["trials"]), mask=files["mask"])
    members = neighbourhoods_for_columns(responses.vertices, spherical_neighbourhoods(responses.vertices, 8.0))
    inside = members[100].indices
    dataset = Dataset(responses.betas[:, inside], obs_descriptors={
        "conds": responses.trials["image_id"].to_numpy(), "runs": responses.trials["run"].to_numpy()})
    sphere = calc_rdm(dataset, method="crossnobis", descriptor="conds", cv_descriptor="runs")
    animacy = ["animate" if c in ("face", "cat") else "inanimate" for c in sphere.pattern_descriptors["conds"]]
    expected = correlate_rows(sphere.get_vectors()[0], category_rdm(animacy), "spearman")
    assert row["r_model:category"] == pytest.approx(float(expected), abs=1e-10)
    ours = rdm(responses.betas[:, inside], "crossnobis", runs=responses.trials["run"].to_numpy(),
               conditions=responses.trials["image_id"].to_numpy())
    np.testing.assert_allclose(ours, sphere.get_vectors()[0], atol=1e-10)


def test_category_model_and_report(haxby_study):
    result, _ = haxby_study
    rsa = result.tables["general_rsa"]
    assert set(rsa["candidate"]) == {"conv2", "fc7", "model:category"}
    assert rsa["p_exact"].eq(False).all() and rsa["p"].between(0, 1).all()
    assert "best layer" in result.report.read_text()
