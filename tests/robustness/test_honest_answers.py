"""Issue 26, items 7-10: degenerate statistics say so, ids and images are read as the user wrote
them, odd inputs get one clear error, and memory is estimated before it is taken."""

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from PIL import Image

from brainprobe.data import Responses, load_responses, load_trial_table
from brainprobe.pipeline import Study, validate
from brainprobe.pipeline._config import ConfigError
from brainprobe.roi import select_reliable_vertices
from brainprobe.rsa import kind_difference, kind_similarity
from brainprobe.stimuli import load_folder, load_manifest, load_stimuli, read_image, save_stimuli


def _kinds_table(n=6):
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(3 * n)], "kind": ["RE"] * n + ["AN"] * n + ["AI"] * n,
                         "source_id": [f"i{k}" for k in range(n)] * 3})


# -- 7: degenerate statistics -----------------------------------------------------------------------
def test_a_constant_rdm_gives_nan_with_a_reason_not_a_correlation_of_float_noise():
    table = _kinds_table()
    rng = np.random.default_rng(0)
    patterns = rng.normal(size=(18, 20))
    patterns[:6] = rng.normal(size=20) + 1e-15 * rng.normal(size=(6, 20))  # every RE image: one pattern
    with pytest.warns(UserWarning, match=r"roi RE-AN: not defined, the RE RDM is constant \(its 6 patterns do not "
                                         r"differ\)"):
        result = kind_similarity({"roi": patterns}, table, n_perm=100, n_boot=50, seed=0)
    assert result[["similarity", "p_perm", "ci95_low", "ci95_high"]].isna().all().all()
    with pytest.warns(UserWarning, match="the RE RDM is constant"):
        difference = kind_difference({"roi": patterns}, table, n_boot=50, seed=0)
    assert np.isnan(difference["difference"].iloc[0]) and difference["direction"].iloc[0] == "undefined"
    assert np.isnan(difference["p_boot"].iloc[0])


def test_distinct_patterns_still_give_numbers():
    table = _kinds_table()
    patterns = np.random.default_rng(1).normal(size=(18, 20))
    result = kind_similarity({"roi": patterns}, table, n_perm=50, n_boot=20, seed=0)
    assert result["similarity"].notna().all()


def test_kind_difference_without_resamples_is_a_clear_error():
    patterns = np.random.default_rng(1).normal(size=(18, 20))
    with pytest.raises(ValueError, match=r"n_boot: kind_difference's interval and p come from image resamples; "
                                         r"expected at least 1 \(1000 by default\), found 0"):
        kind_difference({"roi": patterns}, _kinds_table(), n_boot=0)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("rsa", "n_boot", 1, r"\[rsa\] n_boot: one resample gives no interval; expected 0 \(no interval\) or at least 2"),
    ("encoding", "n_boot", 1, r"\[encoding\] n_boot: one resample gives no interval"),
    ("best_layer", "cv", 1, r"\[best_layer\] cv: cross-validation needs at least 2 folds, found 1"),
])
def test_degenerate_resampling_settings_are_refused_by_key(tmp_path, section, key, value, message):
    with pytest.raises(ConfigError, match=message):
        validate({"study": {"output": str(tmp_path / "out")}, section: {key: value}}, base=tmp_path)


# -- 8: ids, images, odd arrays ----------------------------------------------------------------------
def test_trial_ids_stay_text_and_whole_repeats_are_integers(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("image_id,kind,repeat\n007,RE,1.0\nNaN,RE,1.0\n007,RE,2.0\nNaN,RE,2.0\n")
    table = load_trial_table(path)
    assert table["image_id"].tolist() == ["007", "NaN", "007", "NaN"] and table["is_image"].all()
    np.save(tmp_path / "betas.npy", np.random.default_rng(0).normal(size=(4, 3)))
    responses = load_responses(tmp_path / "betas.npy", path)
    assert responses.trials["repeat"].tolist() == [1, 1, 2, 2]  # "repeat1", never "repeat1.0"
    path.write_text("image_id,repeat\na,1\nb,1.5\n")
    with pytest.raises(ValueError, match=r"trial table row 2: repeat 1.5 is not a whole number"):
        Responses(np.ones((2, 3)) + np.eye(2, 3), pd.read_csv(path))


def test_image_names_nan_and_007_survive_a_manifest_and_a_save(tmp_path):
    for name in ("NaN", "007", "a"):
        Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(tmp_path / f"{name}.png")
    pd.DataFrame({"file": ["NaN.png", "007.png", "a.png"], "kind": ["RE", "RE", "RE"]}).to_csv(
        tmp_path / "m.csv", index=False)
    stimuli = load_manifest(tmp_path / "m.csv")
    assert stimuli.table["image_id"].tolist() == ["NaN", "007", "a"]
    save_stimuli(stimuli, tmp_path / "saved")
    assert load_stimuli(tmp_path / "saved").table["image_id"].tolist() == ["NaN", "007", "a"]


def test_linked_folders_are_read_and_broken_links_reported(tmp_path):
    photos = tmp_path / "elsewhere"
    photos.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photos / "cat.png")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "dog.png")
    os.symlink(photos, folder / "animals")
    assert load_folder(folder).table["image_id"].tolist() == ["animals/cat", "dog"]
    os.symlink(tmp_path / "gone.png", folder / "bird.png")
    with pytest.raises(ValueError, match=r"1 link\(s\) point to missing files or folders \(bird.png\)"):
        load_folder(folder)


def test_wide_grey_images_follow_one_fixed_scale(tmp_path):
    levels = np.tile(np.arange(0, 200, dtype=np.uint8), (4, 1))
    Image.fromarray(levels.astype(np.float32), mode="F").save(tmp_path / "float255.tif")
    Image.fromarray(levels.astype(np.int32), mode="I").save(tmp_path / "int32.tif")
    Image.fromarray(levels, mode="L").save(tmp_path / "eight_bit.png")
    eight_bit = read_image(tmp_path / "eight_bit.png")
    np.testing.assert_allclose(read_image(tmp_path / "float255.tif"), eight_bit, atol=1e-6)  # was: clipped white
    np.testing.assert_allclose(read_image(tmp_path / "int32.tif"), eight_bit, atol=1e-6)  # was: stretched to 1
    Image.fromarray(np.full((4, 4), -3.0, np.float32), mode="F").save(tmp_path / "negative.tif")
    with pytest.raises(ValueError, match=r"negative.tif: a F grey image with values outside \[0, 65535\]"):
        read_image(tmp_path / "negative.tif")


def test_exif_orientation_is_honoured(tmp_path):
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :10] = 255  # white on the left of the stored pixels
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    shown = read_image(tmp_path / "phone.jpg")
    assert shown.shape == (30, 10, 3)  # upright, as a viewer shows it
    assert shown[:10].mean() > 0.9 and shown[-10:].mean() < 0.1


def test_complex_and_odd_arrays(tmp_path):
    trials = pd.DataFrame({"image_id": ["a", "b", "c"]})
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"complex betas \(complex128\); expected real numbers"):
        Responses(rng.normal(size=(3, 4)) + 1j, trials)
    big_endian = rng.normal(size=(3, 4)).astype(">f8")
    assert Responses(big_endian, trials).betas.dtype.isnative
    table = _kinds_table(4)
    with pytest.raises(ValueError, match=r"patterns\['roi'\]: expected real numbers, found dtype complex128"):
        kind_similarity({"roi": rng.normal(size=(12, 5)) + 0j}, table, n_perm=0, n_boot=0)
    with_grad = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    result = kind_similarity({"roi": with_grad}, table, n_perm=0, n_boot=0)
    assert result["similarity"].notna().all()


def test_overwrite_must_be_a_boolean(tmp_path):
    with pytest.raises(TypeError, match=r"overwrite: expected True or False, found 'no'"):
        Study({"study": {"output": str(tmp_path / "out")}, "subjects": {"simulate": 1}}, overwrite="no")


def test_a_common_offset_leaves_the_selection_unchanged():
    rng = np.random.default_rng(3)
    n_images, n_vertices = 12, 40
    signal = rng.normal(size=(n_images, n_vertices))
    betas = np.concatenate([signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape)])
    trials = pd.DataFrame({"image_id": [f"i{k}" for k in range(n_images)] * 2, "repeat": [1] * 12 + [2] * 12})
    vertices = pd.DataFrame({"hemi": "L", "vertex": range(n_vertices), "V1": True})
    band = sp.diags([1.0] * 5, [-2, -1, 0, 1, 2], shape=(n_vertices, n_vertices), format="csr")
    chosen = [select_reliable_vertices(Responses(b, trials, vertices), "V1", {"L": band}, n_per_hemi=10)
              for b in (betas, betas + 1e6)]
    assert chosen[0]["selected"].tolist() == chosen[1]["selected"].tolist()
    np.testing.assert_allclose(chosen[0]["reliability"], chosen[1]["reliability"], atol=1e-6)


# -- 10: memory ------------------------------------------------------------------------------------
def test_an_extremely_elongated_image_is_refused_before_it_is_resized(tmp_path):
    Image.fromarray(np.zeros((1, 60000, 3), np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(ValueError, match=r"strip.png: a 1 x 60000 image would take [0-9.]+ GiB resized to 224"):
        load_folder(tmp_path, size=224)


def test_resampling_that_cannot_fit_is_refused_with_the_number_and_the_key(monkeypatch):
    from brainprobe import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1024**3)  # a 1 GiB machine
    patterns = np.random.default_rng(1).normal(size=(18, 20))
    with pytest.raises(ValueError, match=r"kind_difference with n_boot = 1000000000 on 6 images would need "
                                         r"[0-9,.]+ GiB at once, more than the 1.0 GiB available; lower n_boot "
                                         r"\(\[rsa\] n_boot in a study file"):
        kind_difference({"roi": patterns}, _kinds_table(), n_boot=10**9)


def test_romp_with_a_huge_n_nonzero_is_refused_before_allocating(monkeypatch):
    from brainprobe import _memory
    from brainprobe.encoding import romp_batched

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1024**3)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 20000)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"ROMP with n_nonzero = 100000 on 20000 features would need [0-9,.]+ GiB at "
                                         r"once, more than the 1.0 GiB available; lower n_nonzero \(\[encoding\] "
                                         r"n_nonzero in a study file\); a support cannot exceed n_samples - 2 = 28"):
        romp_batched(X, Y, 100000)
    assert romp_batched(X[:, :50], Y, 5).coef.shape == (8, 50)  # an ordinary fit is not refused


# -- 9: clear errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["abc", -1, 1.5, True])
def test_bad_seeds_are_named(seed):
    with pytest.raises(ValueError, match=r"seed: expected an integer >= 0, a numpy Generator or None, found"):
        kind_difference({"roi": np.random.default_rng(1).normal(size=(18, 20))}, _kinds_table(), n_boot=10, seed=seed)


def test_one_layer_name_is_one_layer():
    from brainprobe.models import extract, load_model

    model = load_model("alexnet", weights=None, device="cpu")
    acts = extract(model, torch.rand(2, 3, 64, 64), "conv1")
    assert acts.layers == ["conv1"]


def test_a_latin1_study_file_is_named(tmp_path, capsys):
    from brainprobe.cli import main

    study = tmp_path / "study.toml"
    study.write_bytes('[study]\nname = "café"\n[subjects]\nsimulate = 1\n'.encode("latin-1"))
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{study}: line 2: not UTF-8 text (byte 0xe9)" in err


def test_two_layers_with_the_rsa_trend_are_refused_up_front(tmp_path):
    with pytest.raises(ConfigError, match=r"\[network\] layers: the trend over layers \(\[rsa\]\) needs at least 3 "
                                          r"layers, found 2 \(\['conv2', 'fc7'\]\)"):
        validate({"study": {"output": str(tmp_path / "o")}, "subjects": {"simulate": 1},
                  "network": {"name": "alexnet", "weights": "random", "layers": ["conv2", "fc7"]}}, base=tmp_path)


# -- found by our own hostile-input campaign ---------------------------------------------------------
def test_campaign_findings_give_named_errors():
    from brainprobe.data import simulate_subject
    from brainprobe.roi import Mesh, geodesic_neighbourhoods
    from brainprobe.stats import mann_kendall

    x, y = np.meshgrid(np.arange(4.0), np.arange(4.0))
    mesh = Mesh(np.column_stack([x.ravel(), y.ravel(), np.zeros(16)]), np.array([[0, 1, 4], [1, 5, 4]]), name="m")
    with pytest.raises(ValueError, match=r"radius_mm: expected a positive, finite radius, found '3'"):
        geodesic_neighbourhoods(mesh, "3")
    with pytest.raises(ValueError, match=r"x: expected numbers"):
        mann_kendall(["a", "b", "c"])
    trials = pd.DataFrame({"image_id": [f"i{k}" for k in range(4)] * 2, "repeat": [1] * 4 + [2] * 4})
    vertices = pd.DataFrame({"hemi": "L", "vertex": range(16), "V1": [True] * 8 + [False] * 8, "V2": False})
    responses = Responses(np.random.default_rng(0).normal(size=(8, 16)), trials, vertices, subject="s7")
    disks = {"L": geodesic_neighbourhoods(mesh, 1.5)}
    with pytest.raises(ValueError, match=r"s7 \(betas\): ROI V2 has no vertices"):
        select_reliable_vertices(responses, "V2", disks)
    with pytest.raises(ValueError, match=r"n_per_hemi: expected a positive number of vertices per hemisphere, found 0"):
        select_reliable_vertices(responses, "V1", disks, n_per_hemi=0)
    stimuli = _four_images()
    with pytest.raises(ValueError, match=r"seed: expected an integer >= 0"):
        simulate_subject(stimuli, vertices=50, seed=-1)


def _four_images():
    from brainprobe.stimuli import StimulusSet

    return StimulusSet(torch.rand(4, 3, 8, 8), {"image_id": ["a", "b", "c", "d"]})


def test_huge_betas_select_the_same_vertices_and_never_blame_n_per_hemi():
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(12, 40))
    betas = np.concatenate([signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape)])
    trials = pd.DataFrame({"image_id": [f"i{k}" for k in range(12)] * 2, "repeat": [1] * 12 + [2] * 12})
    vertices = pd.DataFrame({"hemi": "L", "vertex": range(40), "V1": True})
    band = sp.diags([1.0] * 5, [-2, -1, 0, 1, 2], shape=(40, 40), format="csr")
    chosen = [select_reliable_vertices(Responses(b, trials, vertices), "V1", {"L": band}, n_per_hemi=10)
              for b in (betas, betas * 1e200)]
    assert chosen[0]["selected"].tolist() == chosen[1]["selected"].tolist()


def test_missing_repeats_are_named_with_the_subject_and_file_before_heavy_steps():
    from brainprobe.pipeline import _steps as steps

    trials = pd.DataFrame({"image_id": ["a", "b", "c"], "kind": "RE", "repeat": 1})
    responses = Responses(np.random.default_rng(0).normal(size=(3, 4)), trials,
                          pd.DataFrame({"hemi": "L", "vertex": range(4), "V1": True}))
    config = {"rois": {"names": ["V1"], "atlas": "columns", "localizers": {}, "localizer_alpha": 0.05},
              "selection": {"enabled": True}}
    with pytest.raises(ValueError, match=r"\[\[subject\]\] s1 trials t.csv: vertex selection compares repeats 1 and 2 "
                                         r"of the RE images; its RE trials have repeats \[1\]"):
        steps.prepare_subject(responses, {"id": "s1", "trials": "t.csv", "vertices": "v.csv"}, config)


def test_an_empty_roi_in_encoding_is_named():
    from brainprobe.encoding import fit_encoding_models
    from brainprobe.models import Activations

    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(10)]
    trials = pd.DataFrame({"image_id": ids * 2, "kind": "RE", "repeat": [1] * 10 + [2] * 10})
    vertices = pd.DataFrame({"hemi": "L", "vertex": range(8), "V1": True, "V2": False})
    responses = Responses(rng.normal(size=(20, 8)), trials, vertices, subject="s3")
    activations = Activations({"l1": rng.normal(size=(10, 5)).astype(np.float32)}, image_ids=ids)
    with pytest.raises(ValueError, match=r"s3: ROIs \['V2'\] hold no vertices \(or none selected\); nothing to fit"):
        fit_encoding_models(activations, responses, ["V1", "V2"])


def test_a_roi_smaller_than_n_per_hemi_stops_by_default_and_is_kept_whole_when_asked():
    # Fig. S2 asks for 200 vertices per hemisphere; MMP1.0 LO on fs_LR 32k has ~150 with a reliability
    rng = np.random.default_rng(5)
    signal = rng.normal(size=(12, 30))
    betas = np.concatenate([signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape)])
    trials = pd.DataFrame({"image_id": [f"i{k}" for k in range(12)] * 2, "repeat": [1] * 12 + [2] * 12})
    vertices = pd.DataFrame({"hemi": ["L"] * 15 + ["R"] * 15, "vertex": list(range(15)) * 2, "LO": True})
    band = sp.diags([1.0] * 3, [-1, 0, 1], shape=(15, 15), format="csr")
    responses = Responses(betas, trials, vertices, subject="s2")
    with pytest.raises(ValueError, match=r"LO has fewer vertices with a defined reliability than n_per_hemi = 20 "
                                         r"\(L: 15, R: 15\)"):
        select_reliable_vertices(responses, "LO", {"L": band, "R": band}, n_per_hemi=20)
    with pytest.warns(UserWarning, match=r"s2 \(betas\): LO has fewer .* n_per_hemi = 20 \(L: 15, R: 15\); all of them"):
        table = select_reliable_vertices(responses, "LO", {"L": band, "R": band}, n_per_hemi=20, too_few="all")
    assert table["selected"].sum() == 30
    # a hemisphere with enough vertices still keeps only its n_per_hemi most reliable
    ranked = select_reliable_vertices(responses, "LO", {"L": band, "R": band}, n_per_hemi=10, too_few="all")
    assert ranked.groupby("hemi")["selected"].sum().tolist() == [10, 10]
    with pytest.raises(ValueError, match=r"too_few: expected 'raise' or 'all', found 'keep'"):
        select_reliable_vertices(responses, "LO", {"L": band, "R": band}, n_per_hemi=20, too_few="keep")
