import re
import shutil

import numpy as np
import pandas as pd
import pytest

from brainprobe.pipeline import ConfigError, Study, read_table, validate
from brainprobe.pipeline import _steps as steps

TABLES = {"stimuli", "network_rsa", "network_trend", "network_difference", "selection", "brain_rsa",
          "brain_difference", "brain_rdms", "searchlight", "encoding", "best_layer", "best_layer_proportions",
          "best_layer_tests", "network_rdms", "network_mds"}
FIGURES = {"fig1_stimuli", "fig3_brain_rsa", "fig4_searchlight_sub-01", "fig4_searchlight_sub-02",
           "fig5_network_layers", "fig6_encoding", "figS1_best_layer", "rdms_network"}


def computed(result) -> set[tuple[str, str]]:
    log = result.log
    return set(zip(log.loc[log["status"] == "computed", "step"], log.loc[log["status"] == "computed", "label"], strict=True))


def test_run_writes_every_table_figure_and_the_report(tiny_run):
    out = tiny_run.output
    assert set(tiny_run.tables) == TABLES
    for name, frame in tiny_run.tables.items():
        on_disk = read_table(out / "results" / f"{name}.csv")
        pd.testing.assert_frame_equal(on_disk, frame.reset_index(drop=True), check_dtype=False)
    stimuli = tiny_run.tables["stimuli"]
    assert stimuli["kind"].value_counts().to_dict() == {"RE": 5, "AN": 5, "AI": 5}
    assert stimuli["p_top1"].between(0, 1).all() and stimuli["top1_name"].str.len().gt(0).all()
    assert {p.stem for p in (out / "figures").glob("*.png")} == FIGURES
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == len(FIGURES)  # self-contained
    assert "[rsa]" in report and "torch" in report and "Seed: 3" in report
    assert (out / "study.toml").is_file() and (out / "steps.csv").is_file()


def test_the_simulated_brain_sees_ai_like_re_and_an_unlike_it(tiny_run):
    """Planted truth: the simulated ROIs read image features, which AI images keep and AN images lose."""
    rsa = tiny_run.tables["brain_rsa"].pivot_table(index=["subject", "roi"], columns="pair", values="similarity")
    assert (rsa["RE-AI"] > rsa["RE-AN"]).mean() >= 0.75
    selection = tiny_run.tables["selection"]
    assert selection.groupby(["subject", "roi", "hemi"])["selected"].sum().eq(30).all()
    encoding = tiny_run.tables["encoding"]
    assert set(encoding["test_kind"]) == {"AN", "AI"} and encoding["p_perm"].between(0, 1).all()


def test_rerun_recomputes_only_the_steps_a_change_touches(tiny_run, tiny_values):
    values = tiny_values
    output = validate(values).output
    shutil.copytree(tiny_run.output, output)
    with pytest.raises(FileExistsError, match="--overwrite"):
        Study(validate(values), progress=False).run()
    unchanged = Study(validate(values), overwrite=True, progress=False).run()
    assert computed(unchanged) == set()
    for name, frame in tiny_run.tables.items():
        pd.testing.assert_frame_equal(unchanged.tables[name], frame, check_dtype=False)
    values["encoding"]["n_perm"] = 30
    changed = Study(validate(values), overwrite=True, progress=False).run()
    assert computed(changed) == {("encoding", "sub-01"), ("encoding", "sub-02")}
    values["selection"]["n_per_hemi"] = 20
    reselected = Study(validate(values), overwrite=True, progress=False).run()
    assert {step for step, _ in computed(reselected)} == {"selection", "brain_rsa", "encoding_models", "encoding"}


def test_a_compared_network_adds_its_own_steps_tables_and_figures(tiny_run, tiny_values):
    """[[compare]]: a second network analysed on the same images; the first network's results stay."""
    shutil.copytree(tiny_run.output, validate(tiny_values).output)
    tiny_values["compare"] = [{"name": "alexnet", "label": "alexnet_default", "weights": "random",
                               "layers": ["conv5", "fc6", "fc7", "fc8"]}]
    result = Study(validate(tiny_values), overwrite=True, progress=False).run()
    # only the new network's steps run: the images, subjects, selection and ROI RSA are reused
    assert computed(result) == {("activations", "alexnet_default"), ("network_rsa", "alexnet_default"),
                                ("network_rdms", "alexnet_default"),
                                ("encoding_models", "sub-01 alexnet_default"), ("encoding_models", "sub-02 alexnet_default"),
                                ("encoding", "sub-01 alexnet_default"), ("encoding", "sub-02 alexnet_default")}
    for name in ("network_rsa", "network_trend", "network_difference", "network_rdms", "network_mds", "encoding",
                 "best_layer_proportions", "best_layer_tests"):
        table = result.tables[name]
        assert list(dict.fromkeys(table["network"])) == ["alexnet", "alexnet_default"], name
        first = table[table["network"] == "alexnet"].reset_index(drop=True)
        pd.testing.assert_frame_equal(first, tiny_run.tables[name], check_dtype=False)
    compared = result.tables["network_rsa"].query("network == 'alexnet_default'")
    assert list(dict.fromkeys(compared["layer"])) == ["conv5", "fc6", "fc7", "fc8"]
    figures = {p.stem for p in (result.output / "figures").glob("*.png")}
    for stem in ("fig5_network_layers", "fig6_encoding", "figS1_best_layer", "rdms_network"):
        assert {f"{stem}_alexnet", f"{stem}_alexnet_default"} <= figures and stem not in figures
    assert "Compared networks: alexnet_default (alexnet, weights: random)" in (result.output / "report.html").read_text()


def test_a_killed_run_resumes_where_it_stopped(tiny_values, monkeypatch):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    real = steps.encoding_analysis
    monkeypatch.setattr(steps, "encoding_analysis", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Study(validate(tiny_values), progress=False).run()
    output = validate(tiny_values).output
    assert calls and not (output / "report.html").exists()
    assert not list((output / ".cache" / "encoding").glob("*/complete.json"))  # no half result is trusted
    monkeypatch.setattr(steps, "encoding_analysis", real)
    resumed = Study(validate(tiny_values), progress=False).run()  # no --overwrite needed: it never finished
    redone = computed(resumed)
    # sub-01 stopped in its encoding step: only that step is redone; sub-02 never started
    assert ("encoding", "sub-01") in redone and not {("responses", "sub-01"), ("selection", "sub-01")} & redone
    assert not {"stimuli", "activations", "network_rsa", "network_rdms"} & {step for step, _ in redone}
    assert (output / "report.html").is_file()


def test_same_seed_gives_identical_csv_files_and_a_dask_cluster_the_same_tables(tiny_run, tiny_values):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        result = Study(validate(tiny_values), scheduler=address, progress=False).run()
    assert result.log["status"].eq("computed").all()
    for name in TABLES:
        local = (tiny_run.output / "results" / f"{name}.csv").read_bytes()
        remote = (result.output / "results" / f"{name}.csv").read_bytes()
        assert local == remote, name


def test_a_finished_run_or_a_foreign_folder_is_never_overwritten(tiny_values, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    tiny_values["study"]["output"] = str(foreign)
    with pytest.raises(FileExistsError, match="did not write"):
        Study(validate(tiny_values), progress=False).run()
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.fixture
def no_heavy_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("heavy work started before the configuration was checked")

    monkeypatch.setattr(steps, "make_stimuli", fail)


@pytest.mark.parametrize(("change", "message"), [
    ({"rsa": {"n_perms": 10}}, r"\[rsa\]: unknown key\(s\) \['n_perms'\]"),
    ({"rsa": {"n_perm": "many"}}, r"\[rsa\] n_perm: expected an integer, found 'many'"),
    ({"rois": {"names": ["V1", "V9"]}}, r"\[rois\] names: .*V9"),
    ({"network": {"name": "lenet"}}, r"\[network\] name: expected one of"),
    ({"subject": [{"betas": "missing.npy"}]}, r"\[\[subject\]\] #1 betas: file not found: .*missing.npy"),
    ({"searchlight": {"surface": "round"}}, r"\[searchlight\] surface: expected one of"),
    ({"rsa": {"method": "kendall"}}, r"\[rsa\] method: 'kendall' is spelled 'kendall_tau_a', as in the Python"),
    ({"parallel": {"scheduler": "127.0.0.1:8786"}}, r"\[parallel\] scheduler: expected 'dask://HOST:PORT'"),
    ({"rois": {"localizers": {"LO": "objects"}}}, r"\[rois\] localizers LO include: expected 'condition>baseline'"),
    ({"rois": {"localizers": {"LO": "objects>scrambled"}}}, r"simulated subjects have no localizer trials"),
    ({"encoding": {"estimator": "omp", "n_nonzero": "cv"}}, r"n_nonzero = 'cv' chooses ROMP's sparsity"),
    ({"compare": [{"name": "lenet"}]}, r"\[\[compare\]\] #1 name: expected one of"),
    ({"compare": [{"weights": "random"}]}, r"\[\[compare\]\] #1: 'name' is required"),
    ({"compare": [{"name": "alexnet"}]}, r"distinct labels .*\['alexnet'\] appear more than once: give each a 'label'"),
    ({"compare": [{"name": "vgg16", "weights": "vgg.pt"}]}, r"\[\[compare\]\] #1 weights: file not found: .*vgg.pt"),
])
def test_bad_configs_name_the_key_and_the_problem(tiny_values, no_heavy_work, change, message):
    for section, values in change.items():
        if section in ("subject", "compare"):
            tiny_values[section] = values
        else:
            tiny_values.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError, match=message):
        validate(tiny_values, source="study.toml")


def test_the_config_takes_the_apis_spelling_of_each_method(tiny_values):
    from brainprobe.stats import CORRELATION_METHODS

    for method in ("spearman", "pearson", "kendall_tau_a"):
        assert method in CORRELATION_METHODS  # the name brainprobe.stats and brainprobe.rsa take
        tiny_values["rsa"]["method"] = method
        assert validate(tiny_values)["rsa"]["method"] == method


def _write_subject(folder, stimuli_table, n_trials_in_table=None, seed=0):
    """A real-data subject: betas .npy over the V1 and LO vertices of fs_LR 32k, a trial CSV and a
    vertex CSV that places each column on the mesh."""
    from brainprobe.roi import mmp_visual_rois

    rng = np.random.default_rng(seed)
    columns = []
    for hemi in "LR":
        masks = mmp_visual_rois(hemi, ["V1", "LO"])
        vertices = np.flatnonzero(masks["V1"] | masks["LO"])[::4]
        columns.append(pd.DataFrame({"hemi": hemi, "vertex": vertices}))
    vertex_table = pd.concat(columns, ignore_index=True)
    trials = pd.concat([stimuli_table[["image_id", "kind"]].assign(repeat=r) for r in (1, 2)], ignore_index=True)
    betas = rng.normal(size=(len(trials), len(vertex_table)))
    np.save(folder / "betas.npy", betas)
    table = trials if n_trials_in_table is None else trials.iloc[:n_trials_in_table]
    table.to_csv(folder / "trials.csv", index=False)
    vertex_table.to_csv(folder / "vertices.csv", index=False)
    return {"id": "sub-real", "betas": "betas.npy", "trials": "trials.csv", "vertices": "vertices.csv",
            "meshes": "fs_LR_32k"}


def test_a_wrong_trial_count_fails_before_any_heavy_work(tiny_run, tiny_values, tmp_path, no_heavy_work):
    entry = _write_subject(tmp_path, tiny_run.tables["stimuli"], n_trials_in_table=20)
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [entry]
    config = validate(tiny_values, base=tmp_path)
    with pytest.raises(ValueError, match=r"sub-real.*20.*30|sub-real.*30.*20"):
        Study(config, progress=False).run()


def test_real_subject_files_run_through_the_same_steps(tiny_run, tiny_values, tmp_path):
    entry = _write_subject(tmp_path, tiny_run.tables["stimuli"])
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [entry]
    tiny_values["encoding"]["enabled"] = False
    tiny_values["best_layer"]["enabled"] = False
    result = Study(validate(tiny_values, base=tmp_path), progress=False).run()
    rsa = result.tables["brain_rsa"]
    assert set(rsa["subject"]) == {"sub-real"} and set(rsa["roi"]) == {"V1", "LO"}
    searchlight = result.tables["searchlight"]
    assert len(searchlight) == 2 * len(pd.read_csv(tmp_path / "vertices.csv"))
    assert re.search(r"fig4_searchlight_sub-real", "".join(p.name for p in result.figures))


def test_a_localizer_keeps_the_responsive_part_of_an_roi_and_its_trials_leave_the_analysis(tiny_run, tiny_values,
                                                                                          tmp_path):
    entry = _write_subject(tmp_path, tiny_run.tables["stimuli"])
    betas = np.load(tmp_path / "betas.npy")
    trials = pd.read_csv(tmp_path / "trials.csv")
    vertices = pd.read_csv(tmp_path / "vertices.csv")
    rng = np.random.default_rng(5)
    responsive = np.zeros(len(vertices), bool)
    responsive[: len(vertices) // 2] = True  # planted: the first half prefers intact objects
    objects = rng.normal(size=(12, len(vertices))) + 2.0 * responsive
    scrambled = rng.normal(size=(12, len(vertices)))
    np.save(tmp_path / "betas.npy", np.concatenate([betas, objects, scrambled]))
    localizer = pd.DataFrame({"image_id": [f"loc{i}" for i in range(24)], "kind": ["objects"] * 12 + ["scrambled"] * 12,
                              "repeat": 1})
    pd.concat([trials, localizer], ignore_index=True).to_csv(tmp_path / "trials.csv", index=False)
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [entry]
    tiny_values["rois"]["localizers"] = {"LO": "objects>scrambled"}
    config = validate(tiny_values, base=tmp_path)
    responses = steps.load_subject(config["subject"][0], config)
    assert set(responses.trials["kind"]) == {"RE", "AN", "AI"}  # localizer trials served the ROI only
    lo = responses.vertices["LO"].to_numpy()
    assert lo.sum() > 0 and responsive[lo].mean() > 0.9  # precision on the planted vertices
    atlas_lo = validate({**tiny_values, "rois": {"names": ["V1", "LO"]}}, base=tmp_path)
    unrefined = steps.load_subject(atlas_lo["subject"][0], atlas_lo).vertices["LO"].to_numpy()
    assert lo.sum() < unrefined.sum() and (lo <= unrefined).all()
    tiny_values["rois"]["localizers"] = {"LO": "objects>noise"}
    with pytest.raises(ValueError, match=r"localizers LO = 'objects>noise': fewer than 2 trials of kind \['noise'\]"):
        steps.load_subject(config["subject"][0], validate(tiny_values, base=tmp_path))


def test_lo_is_the_object_localizer_minus_hmt(tiny_run, tiny_values, tmp_path):
    """The study's LO: intact > scrambled objects, minus the vertices where moving > static (hMT+)."""
    entry = _write_subject(tmp_path, tiny_run.tables["stimuli"])
    betas = np.load(tmp_path / "betas.npy")
    trials = pd.read_csv(tmp_path / "trials.csv")
    n = betas.shape[1]
    rng = np.random.default_rng(6)
    objects_prefer = np.zeros(n, bool)
    objects_prefer[: n // 2] = True
    motion_prefer = np.zeros(n, bool)
    motion_prefer[n // 4: n // 2] = True  # half of the object-responsive vertices are also hMT+
    blocks = {"objects": 2.0 * objects_prefer, "scrambled": 0.0, "moving": 2.0 * motion_prefer, "static": 0.0}
    extra = np.concatenate([rng.normal(size=(12, n)) + shift for shift in blocks.values()])
    np.save(tmp_path / "betas.npy", np.concatenate([betas, extra]))
    localizer = pd.DataFrame({"image_id": [f"loc{i}" for i in range(48)],
                              "kind": [kind for kind in blocks for _ in range(12)], "repeat": 1})
    pd.concat([trials, localizer], ignore_index=True).to_csv(tmp_path / "trials.csv", index=False)
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [entry]
    tiny_values["rois"]["localizers"] = {"LO": {"include": "objects>scrambled", "exclude": "moving>static"}}
    config = validate(tiny_values, base=tmp_path)
    lo = steps.load_subject(config["subject"][0], config).vertices["LO"].to_numpy()
    kept = lo.sum()
    assert kept > 0
    assert (objects_prefer & ~motion_prefer)[lo].mean() > 0.9  # object-only vertices
    assert (lo & motion_prefer).sum() <= 0.05 * motion_prefer.sum() + 1  # hMT+ vertices excluded
    tiny_values["rois"]["localizers"] = {"LO": {"include": "objects>scrambled", "remove": "x>y"}}
    with pytest.raises(ConfigError, match=r"localizers LO: expected"):
        validate(tiny_values, base=tmp_path)


def test_fig_s2_repeats_the_roi_rsa_with_more_vertices_and_nothing_else(tiny_run, tiny_values):
    output = validate(tiny_values).output
    shutil.copytree(tiny_run.output, output)
    tiny_values["selection"]["n_per_hemi_s2"] = 40
    result = Study(validate(tiny_values), overwrite=True, progress=False).run()
    assert {step for step, _ in computed(result)} == {"selection", "brain_rsa"}
    wider, main = result.tables["brain_rsa_s2"], result.tables["brain_rsa"]
    assert set(wider["n_units"]) == {80} and set(main["n_units"]) == {60}
    assert (output / "figures" / "figS2_brain_rsa.png").is_file()
    pd.testing.assert_frame_equal(main, tiny_run.tables["brain_rsa"], check_dtype=False)
    assert not wider["whole_roi"].any()
    # more than an ROI has (the paper's 200 per hemisphere in MMP1.0 LO): all of it is kept, said
    # in a warning, the table and the caption, and the study goes on
    tiny_values["selection"]["n_per_hemi_s2"] = 10_000
    with pytest.warns(UserWarning, match=r"fewer vertices with a defined reliability than n_per_hemi = 10000"):
        result = Study(validate(tiny_values), overwrite=True, progress=False).run()
    whole = result.tables["brain_rsa_s2"]
    assert whole["whole_roi"].all() and (whole["n_units"] > 80).all()
    report = (output / "report.html").read_text()
    assert "10000 most reliable vertices per hemisphere (all of " in report


def _write_label_gifti(path, names_per_vertex):
    import nibabel as nib

    names = ["???"] + sorted(set(names_per_vertex) - {""})
    table = nib.gifti.GiftiLabelTable()
    for key, name in enumerate(names):
        label = nib.gifti.GiftiLabel(key=key, red=0.5, green=0.5, blue=0.5, alpha=1.0)
        label.label = name
        table.labels.append(label)
    keys = np.array([names.index(n) if n else 0 for n in names_per_vertex], dtype=np.int32)
    nib.save(nib.gifti.GiftiImage(labeltable=table, darrays=[nib.gifti.GiftiDataArray(keys, intent="NIFTI_INTENT_LABEL")]),
             path)


def test_rois_from_label_files_match_the_atlas_they_were_written_from(tiny_run, tiny_values, tmp_path):
    from brainprobe.roi import mmp_visual_rois

    entry = _write_subject(tmp_path, tiny_run.tables["stimuli"])
    for hemi in "LR":
        masks = mmp_visual_rois(hemi, ["V1", "LO"])
        names = np.where(masks["V1"], "V1", np.where(masks["LO"], "LO", ""))
        _write_label_gifti(tmp_path / f"{hemi}.label.gii", names)
    entry["labels"] = {"L": "L.label.gii", "R": "R.label.gii"}
    tiny_values["subjects"]["simulate"] = 0
    tiny_values["subject"] = [entry]
    labelled = validate({**tiny_values, "rois": {"names": ["V1", "LO"], "atlas": "labels"}}, base=tmp_path)
    from_labels = steps.load_subject(labelled["subject"][0], labelled)
    config = validate(tiny_values, base=tmp_path)
    from_atlas = steps.load_subject(config["subject"][0], config)
    for roi in ("V1", "LO"):
        assert from_labels.vertices[roi].any()
        np.testing.assert_array_equal(from_labels.vertices[roi], from_atlas.vertices[roi])


def test_surface_searchlight_maps_are_written_as_gifti(tiny_run):
    import nibabel as nib

    searchlight = tiny_run.tables["searchlight"]
    pairs = list(dict.fromkeys(searchlight["pair"]))
    for (subject, hemi), part in searchlight.groupby(["subject", "hemi"]):
        image = nib.load(tiny_run.output / "maps" / f"{subject}_hemi-{hemi}_searchlight.func.gii")
        assert [a.meta["Name"] for a in image.darrays] == pairs
        for array, pair in zip(image.darrays, pairs, strict=True):
            rows = part[part["pair"] == pair]
            assert array.data.shape == (32492,)  # fs_LR 32k: one value per mesh vertex
            np.testing.assert_allclose(array.data[rows["vertex"].to_numpy(int)], rows["similarity"], rtol=1e-6)
