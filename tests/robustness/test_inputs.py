"""Must never happen again, 4: inputs that would give a silently wrong answer are refused."""

import numpy as np
import pandas as pd
import pytest

from brainprobe.pipeline import ConfigError, validate
from brainprobe.rsa import kind_similarity


def _values(tmp_path, **sections):
    (tmp_path / "betas.npy").write_bytes(b"")
    (tmp_path / "vertices.csv").write_text("hemi,vertex,V1\nL,0,1\n")
    values = {"study": {"output": str(tmp_path / "out")}, "network": {"name": "alexnet", "weights": "random"},
              "rois": {"atlas": "columns", "names": ["V1"]},
              "subject": [{"betas": "betas.npy", "vertices": "vertices.csv"}]}
    for section, given in sections.items():
        if section == "subject":
            values["subject"] = [dict(values["subject"][0], **given)]
        else:
            values.setdefault(section, {}).update(given)
    return values


def test_duplicate_roi_names_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"study.toml: \[rois\] names: each ROI once; \['V1'\] appear more than once"):
        validate(_values(tmp_path, rois={"names": ["V1", "V2", "V1"]}), source="study.toml", base=tmp_path)


def test_a_subject_without_id_is_numbered_after_the_simulated_ones(tmp_path):
    config = validate(_values(tmp_path, subjects={"simulate": 2}), base=tmp_path)
    assert config["subject"][0]["id"] == "sub-03"  # simulated subjects are sub-01 and sub-02
    with pytest.raises(ConfigError, match=r"\[\[subject\]\] #1 id: 'sub-01' is the name of a simulated subject"):
        validate(_values(tmp_path, subjects={"simulate": 1}, subject={"id": "sub-01"}), base=tmp_path)


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".hidden", "sub 01", "..", "C:\\x"])
def test_subject_ids_that_would_name_files_outside_the_output_are_refused(tmp_path, bad_id, snapshot,
                                                                         assert_untouched):
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"\[\[subject\]\] #1 id: expected letters, digits"):
        validate(_values(tmp_path, subject={"id": bad_id}), base=tmp_path)
    assert_untouched(before, tmp_path)
    assert not (tmp_path / "out").exists()


def test_duplicate_subject_ids_are_refused(tmp_path):
    values = _values(tmp_path)
    values["subject"] = [dict(values["subject"][0], id="s1"), dict(values["subject"][0], id="s1")]
    with pytest.raises(ConfigError, match=r"duplicate ids"):
        validate(values, base=tmp_path)


def test_an_empty_output_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[study\] output: expected a folder name, found an empty string"):
        validate(_values(tmp_path, study={"output": ""}), base=tmp_path)


def _design(n=6, seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in ("RE", "AN", "AI") for i in range(n)],
                          "kind": [k for k in ("RE", "AN", "AI") for _ in range(n)],
                          "source_id": [f"RE{i}" for _ in range(3) for i in range(n)]})
    base = rng.normal(size=(n, 30))
    patterns = np.concatenate([base, base + rng.normal(scale=0.5, size=base.shape), rng.normal(size=base.shape)])
    return table, patterns


def test_a_reordered_table_with_bare_arrays_is_refused_and_image_ids_align_it():
    table, patterns = _design()
    expected = kind_similarity({"roi": patterns}, table, n_perm=0, n_boot=0)
    shuffled = table.sample(frac=1.0, random_state=1)
    with pytest.raises(ValueError, match=r"stimuli: the table's rows are not in their original order .* image_ids"):
        kind_similarity({"roi": patterns}, shuffled, n_perm=0, n_boot=0)
    aligned = kind_similarity({"roi": patterns}, shuffled, n_perm=0, n_boot=0, image_ids=table["image_id"])
    np.testing.assert_allclose(aligned["similarity"], expected["similarity"])
    with pytest.raises(ValueError, match=r"image_ids do not match .*missing"):
        kind_similarity({"roi": patterns}, table, n_perm=0, n_boot=0, image_ids=[f"x{i}" for i in range(len(table))])


@pytest.mark.parametrize("scale", [1e200, 1e-200])
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_patterns_of_extreme_scale_give_the_same_finite_similarities(scale, metric):
    table, patterns = _design()
    expected = kind_similarity({"roi": patterns}, table, metric=metric, n_perm=20, n_boot=20)
    scaled = kind_similarity({"roi": patterns * scale}, table, metric=metric, n_perm=20, n_boot=20)
    assert np.isfinite(scaled[["similarity", "ci95_low", "ci95_high"]].to_numpy()).all()
    np.testing.assert_allclose(scaled["similarity"], expected["similarity"], rtol=1e-9)
    np.testing.assert_allclose(scaled["p_perm"], expected["p_perm"])


def test_on_bad_vertices_drop_works_with_a_vertex_table(tmp_path):
    from brainprobe.pipeline import _steps as steps

    rng = np.random.default_rng(0)
    kinds = ["RE", "AN", "AI"]
    trials = pd.DataFrame({"image_id": [f"{k}{i}" for k in kinds for i in range(4)] * 2,
                           "kind": [k for k in kinds for _ in range(4)] * 2, "repeat": [1] * 12 + [2] * 12})
    betas = rng.normal(size=(24, 6))
    betas[:, 2] = 1.0  # a constant (unusable) vertex
    np.save(tmp_path / "betas.npy", betas)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    pd.DataFrame({"hemi": ["L"] * 3 + ["R"] * 3, "vertex": range(6),
                  "V1": [1, 1, 1, 0, 0, 0], "LO": [0, 0, 0, 1, 1, 1]}).to_csv(tmp_path / "vertices.csv", index=False)
    values = {"study": {"output": str(tmp_path / "out")}, "network": {"name": "alexnet", "weights": "random"},
              "rois": {"atlas": "columns", "names": ["V1", "LO"]},
              "subject": [{"id": "s1", "betas": "betas.npy", "trials": "trials.csv", "vertices": "vertices.csv",
                           "on_bad_vertices": "drop"}]}
    config = validate(values, base=tmp_path)
    with pytest.warns(UserWarning, match="dropped 1 vertices"):
        responses = steps.load_subject(config["subject"][0], config)
    assert responses.vertices["vertex"].tolist() == [0, 1, 3, 4, 5]
    assert responses.vertices["V1"].sum() == 2 and responses.vertices["LO"].sum() == 3
    np.testing.assert_array_equal(responses.betas[:12], betas[:12][:, [0, 1, 3, 4, 5]])
