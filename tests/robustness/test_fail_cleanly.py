"""Must fail cleanly: one line naming the file or key, what was expected and what was found;
no traceback, nothing left behind."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from brainprobe import InputFileError, cli
from brainprobe.cli import main
from brainprobe.data import load_responses
from brainprobe.rsa import kind_similarity
from brainprobe.stimuli import load_folder, read_image

BASE = """[study]
output = "out"
[network]
name = "alexnet"
weights = "random"
[subjects]
simulate = 1
"""


@pytest.mark.parametrize(("extra", "message"), [
    ("[figures]\ndpi = 100000\n", r"\[figures\] dpi: expected at most 1200, found 100000"),
    ("[figures]\nformats = [{a=1}]\n", r"\[figures\] formats: expected a list of 'png', 'pdf' or 'svg', found \[\{'a': 1\}\]"),
    ("[selection]\nradius_mm = inf\n", r"\[selection\] radius_mm: expected a finite radius up to 50 mm, found inf"),
    ("[stimuli]\nn_images = 50\n", r"\[stimuli\] n_images: the bundled samples are 12 photos, found 50"),
    ("[rsa]\nn_boot = -3\n", r"\[rsa\] n_boot: expected a positive value, found -3"),
    ("[stimuli]\nthreshold = 1.5\n", r"\[stimuli\] threshold: expected a probability in \(0, 1\), found 1.5"),
    ("[parallel]\nn_jobs = 0\n", r"\[parallel\] n_jobs: expected a positive number of jobs or -1 \(every core\), found 0"),
])
def test_bad_values_fail_up_front_in_one_line(tmp_path, capsys, snapshot, extra, message):
    study = tmp_path / "study.toml"
    study.write_text(BASE + extra)
    before = snapshot(tmp_path)
    assert main(["run", str(study), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {study}: ")
    assert __import__("re").search(message, err), err
    assert snapshot(tmp_path) == before  # no output folder made


def test_seed_below_zero(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(BASE.replace("[study]\n", "[study]\nseed = -1\n"))
    assert main(["run", str(study)]) == 2
    assert "[study] seed: expected an integer in 0 .. 2**32 - 1, found -1" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["gpu0", "cuda", "cuda:7"])
def test_a_device_this_machine_lacks(tmp_path, capsys, device):
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that device")
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    study = tmp_path / "study.toml"
    study.write_text(BASE.replace('weights = "random"\n', f'weights = "random"\ndevice = "{device}"\n'))
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[network] device" in err and device in err


def test_a_vertices_path_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "betas.npy").write_bytes(b"")
    (tmp_path / "vertices").mkdir()
    study = tmp_path / "study.toml"
    study.write_text(BASE + '[rois]\natlas = "columns"\n[[subject]]\nid = "s1"\nbetas = "betas.npy"\n'
                     'vertices = "vertices"\n')
    assert main(["run", str(study)]) == 2
    assert "[[subject]] #1 vertices: expected a file, found a folder" in capsys.readouterr().err


def test_size_zero_and_negative_jobs_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--images", "x", "--out", "x.npz", "--size", "0"])
    assert exit_info.value.code == 2
    assert "--size: expected a positive integer, found '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "study.toml", "--n-jobs", "-5"])
    assert "--n-jobs: expected a positive integer, found '-5'" in capsys.readouterr().err


def test_more_jobs_than_cores_are_capped_with_a_warning(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(BASE + "[figures]\ndpi = 100000\n")  # stops at validation, after the cap
    main(["run", str(study), "--n-jobs", str((os.cpu_count() or 1) + 100)])
    err = capsys.readouterr().err
    assert f"warning: --n-jobs {(os.cpu_count() or 1) + 100} is more than the {os.cpu_count()} CPU cores here" in err


def test_ctrl_c_prints_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_info", interrupted)
    assert main(["info"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted:") and "Traceback" not in err


def test_resampling_arguments_are_checked_in_the_api():
    table = {"image_id": [f"i{k}" for k in range(9)], "kind": ["RE"] * 3 + ["AN"] * 3 + ["AI"] * 3,
             "source_id": [f"i{k}" for k in range(3)] * 3}
    patterns = {"roi": np.random.default_rng(0).normal(size=(9, 5))}
    import pandas as pd

    for kwargs, message in [({"n_perm": -1}, r"n_perm: expected an integer >= 0"),
                            ({"n_boot": -10}, r"n_boot: expected an integer >= 0"),
                            ({"boot_fraction": 1.5}, r"boot_fraction: expected a fraction in \(0, 1\], found 1.5"),
                            ({"boot_fraction": 0}, r"boot_fraction: expected a fraction in \(0, 1\], found 0")]:
        with pytest.raises(ValueError, match=message):
            kind_similarity(patterns, pd.DataFrame(table), **kwargs)


@pytest.mark.parametrize(("name", "content"), [
    ("betas.npy", np.lib.format.magic(1, 0) + b"\x76\x00{'descr': '<f8', 'fortran_order': False, 'shape': (20, 5), }"
     + b" " * 52 + b"\n" + b"\x00" * 16),
    ("betas.npz", b"PK\x03\x04 not really a zip"),
    ("betas.nii.gz", b"\x1f\x8b\x08\x00garbage"),
    ("betas.dscalar.nii", b"\x00" * 400),
    ("GLMsingle.hdf5", b"\x89HDF\r\n\x1a\n truncated"),
    ("GLMsingle.mat", b"MATLAB 5.0 MAT-file truncated"),
])
def test_corrupt_response_files_are_one_clear_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises((ValueError, ImportError)) as error:
        load_responses(path)
    if isinstance(error.value, ImportError):
        pytest.skip(f"reader of {name} not installed")
    message = str(error.value)
    assert str(path) in message and "\n" not in message, message


def test_a_corrupt_hemisphere_file_is_named_once(tmp_path):
    (tmp_path / "lh.func.gii").write_bytes(b"not a gifti")
    pd.DataFrame({"image_id": ["a"]}).to_csv(tmp_path / "trials.csv", index=False)
    betas = {"L": str(tmp_path / "lh.func.gii"), "R": str(tmp_path / "lh.func.gii")}
    with pytest.raises(ValueError) as error:
        load_responses(betas, tmp_path / "trials.csv")
    message = str(error.value)
    assert type(error.value) is InputFileError and message.count("cannot be read as") == 1, message
    assert message.startswith(f"{tmp_path / 'lh.func.gii'}: cannot be read as a GIfTI file") and "\n" not in message


def test_a_corrupt_image_and_a_decompression_bomb_are_clean_errors(tmp_path, monkeypatch):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ValueError, match=r"broken.png: cannot be read as an image"):
        read_image(tmp_path / "broken.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64 x 64 is then more than twice the limit
    with pytest.raises(ValueError, match=r"bomb.png: refused as a possible decompression bomb"):
        read_image(tmp_path / "bomb.png")


def test_large_images_are_reduced_while_they_are_read(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (1200, 1800, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "big.png")
    Image.fromarray(array).save(tmp_path / "big.jpg", quality=90)
    with pytest.raises(ValueError, match=r"big.jpg and big.png would both be image 'big'"):
        load_folder(tmp_path, size=100)
    (tmp_path / "big.jpg").rename(tmp_path / "big_photo.jpg")
    for name in ("big_photo.jpg", "big.png"):
        small = read_image(tmp_path / name, size=100)
        assert 200 <= min(small.shape[:2]) < 400, (name, small.shape)  # at least twice the final size, not 1200
        assert small.shape[1] / small.shape[0] == pytest.approx(1.5, rel=0.02)
    stimuli = load_folder(tmp_path, size=100)
    assert tuple(stimuli.images.shape) == (2, 3, 100, 100)
    full = torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)[None]
    from brainprobe._images import resize_and_crop

    reference = resize_and_crop(full, 100)[0]
    assert float((stimuli.images[0] - reference).abs().mean()) < 0.02  # big.png: the same picture


def test_an_unreachable_dask_scheduler_fails_in_seconds_before_any_work(tmp_path, capsys):
    import socket
    import time

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    study = tmp_path / "study.toml"
    study.write_text(BASE)
    start = time.perf_counter()
    assert main(["run", str(study), "--scheduler", f"dask://127.0.0.1:{port}"]) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"scheduler dask://127.0.0.1:{port}: nothing answers at 127.0.0.1:{port}" in err
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, capsys, monkeypatch, user_images):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    out = tmp_path / "acts.npz"
    assert main(["extract", "--images", str(user_images), "--out", str(out), "--model", "alexnet", "--weights", "random",
                 "--layers", "fc8", "--size", "64", "--device", "cpu"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert last == f"error: No space left on device ({out})"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_corrupt_saved_stimulus_set_and_trial_table_are_clean_errors(tmp_path):
    from brainprobe._internal import permutation_indices
    from brainprobe.data import load_trial_table
    from brainprobe.stimuli import StimulusSet, load_stimuli

    folder = StimulusSet(torch.rand(2, 3, 8, 8)).save(tmp_path / "set")
    data = (folder / "stimuli.npz").read_bytes()
    (folder / "stimuli.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"stimuli.npz: corrupt or truncated"):
        load_stimuli(folder)
    (tmp_path / "trials.tsv").write_bytes(b"\xff\xfe\x00garbage\x00\x00")
    with pytest.raises(ValueError, match=r"trials.tsv: (cannot be read as a trial table|not a readable BIDS events TSV)"):
        load_trial_table(tmp_path / "trials.tsv")
    with pytest.raises(ValueError, match=r"n_perm: expected an integer >= 0"):
        permutation_indices(5, -2)
