"""Must never happen again, 1: brainprobe deletes or rewrites only what it wrote itself."""

import json

import numpy as np
import pytest
import torch

from brainprobe._files import MANIFEST, written_files
from brainprobe.cli import main
from brainprobe.stimuli import StimulusSet, load_stimuli


def _stimuli(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return StimulusSet(torch.rand(n, 3, 8, 8, generator=generator), {"image_id": [f"s{i}" for i in range(n)]})


def test_overwrite_replaces_only_brainprobes_files_and_removes_its_stale_ones(tmp_path, snapshot, assert_untouched):
    out = tmp_path / "out"
    _stimuli(3).save(out)
    assert written_files(out) == {"stimuli.npz", "stimuli.csv", "images/s0.png", "images/s1.png", "images/s2.png"}
    (out / "notes.txt").write_text("mine")
    (out / "images" / "my_drawing.png").write_bytes(b"not an image of brainprobe's")
    user = {k: v for k, v in snapshot(out).items() if k in ("notes.txt", "images/my_drawing.png")}
    _stimuli(2, seed=1).save(out, overwrite=True)
    assert_untouched(user, out)
    assert not (out / "images" / "s2.png").exists()  # brainprobe's own stale file is gone
    assert load_stimuli(out).equals(_stimuli(2, seed=1))
    assert written_files(out) == {"stimuli.npz", "stimuli.csv", "images/s0.png", "images/s1.png"}


def test_overwrite_refuses_a_user_file_with_the_name_of_one_to_write(tmp_path, snapshot, assert_untouched):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stimuli.csv").write_text("the user's own table\n")
    before = snapshot(out)
    with pytest.raises(FileExistsError, match=r"stimuli.csv: not written by brainprobe"):
        _stimuli(2).save(out, overwrite=True)
    assert_untouched(before, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


@pytest.mark.parametrize("command", [["synth", "invert", "--layer", "conv1"], ["adversarial"]])
def test_an_output_folder_holding_the_inputs_is_refused(user_images, command, capsys, snapshot, assert_untouched):
    before = snapshot(user_images)
    args = command + ["--images", str(user_images), "--out", str(user_images), "--overwrite", "--model", "alexnet", "--weights", "random"]
    assert main(args) == 2
    assert f"--images {user_images}: inside the output folder" in capsys.readouterr().err
    assert_untouched(before, user_images)
    assert snapshot(user_images).keys() == before.keys()
    parent = user_images.parent
    assert main(command + ["--images", str(user_images), "--out", str(parent), "--overwrite", "--model", "alexnet", "--weights", "random"]) == 2
    assert "inside the output folder" in capsys.readouterr().err


def test_synth_overwrite_keeps_the_users_files_in_its_folder(user_images, tmp_path, capsys, snapshot, assert_untouched):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before_images, before_out = snapshot(user_images), snapshot(out)
    args = ["synth", "invert", "--images", str(user_images), "--out", str(out), "--model", "alexnet", "--weights", "random",
            "--device", "cpu", "--size", "64", "--layer", "conv1", "--max-iter", "1"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err  # a folder with files: asked first
    assert main(args + ["--overwrite"]) == 0
    assert main(args + ["--overwrite"]) == 0  # twice: its own files replaced, the user's kept
    assert_untouched(before_out, out)
    assert_untouched(before_images, user_images)
    assert len(load_stimuli(out)) == 3
    assert json.loads((out / MANIFEST).read_text())["files"] == sorted(written_files(out))


def test_a_files_manifest_never_lists_paths_outside_its_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "victim.txt").write_text("keep")
    (tmp_path / "out" / MANIFEST).write_text(json.dumps({"files": ["../victim.txt", "/etc/passwd", "ok.csv"]}))
    assert written_files(tmp_path / "out") == {"ok.csv"}
    _stimuli(1).save(tmp_path / "out", overwrite=True)
    assert (tmp_path / "victim.txt").read_text() == "keep"


def test_extract_refuses_a_file_without_npz_and_a_foreign_folder_and_leaves_them(user_images, tmp_path, capsys,
                                                                                    snapshot, assert_untouched):
    args = ["--model", "alexnet", "--weights", "random", "--layers", "fc8", "--size", "64", "--device", "cpu"]
    mine = tmp_path / "acts"
    mine.write_text("my notes")  # a file where the activations folder would go
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "table.csv").write_text("a,b\n1,2\n")
    before = snapshot(tmp_path)
    assert main(["extract", "--images", str(user_images), "--out", str(mine), *args, "--overwrite"]) == 2
    assert f"--out {mine}: is a file; expected a .npz file name or a folder" in capsys.readouterr().err
    # a folder of the user's: refused even with --overwrite (brainprobe replaces only what it wrote)
    assert main(["extract", "--images", str(user_images), "--out", str(folder), *args, "--overwrite"]) == 2
    assert f"out {folder}: holds files brainprobe did not write (table.csv)" in capsys.readouterr().err
    assert snapshot(tmp_path) == before  # no 0-byte file, no hidden temporary


def test_extract_writes_exactly_the_path_asked_for(user_images, tmp_path):
    out = tmp_path / "results" / "acts.npz"
    assert main(["extract", "--images", str(user_images), "--out", str(out), "--model", "alexnet", "--weights", "random",
                 "--layers", "fc8", "--size", "64", "--device", "cpu"]) == 0
    assert [p.name for p in out.parent.iterdir()] == ["acts.npz"]
    with np.load(out, allow_pickle=False) as data:
        assert data["fc8"].shape == (3, 1000)


def test_an_atomic_write_whose_writer_adds_a_suffix_fails_and_cleans_up(tmp_path):
    from brainprobe._files import replace_atomically

    with pytest.raises(ValueError, match="added a suffix"):
        replace_atomically(tmp_path / "acts", lambda temporary: np.savez(temporary, a=np.arange(3)))
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_inside_the_image_folder_is_refused(user_images, snapshot, assert_untouched, capsys):
    before = snapshot(user_images)
    out = user_images / "adversarial"
    assert main(["synth", "invert", "--layer", "conv1", "--images", str(user_images), "--out", str(out),
                 "--model", "alexnet", "--weights", "random"]) == 2
    assert f"output {out}: inside the image folder --images {user_images}" in capsys.readouterr().err
    assert_untouched(before, user_images)
    assert not out.exists()


def test_extract_overwrite_replaces_its_own_npz_but_never_a_users(user_images, tmp_path, capsys, snapshot,
                                                                  assert_untouched):
    args = ["--model", "alexnet", "--weights", "random", "--layers", "fc8", "--size", "64", "--device", "cpu",
            "--overwrite"]
    thesis = tmp_path / "thesis.npz"
    thesis.write_text("chapter 1")  # a user's file that merely ends in .npz
    arrays = tmp_path / "mine.npz"
    np.savez(arrays, weights=np.arange(3))  # a real .npz, not activations
    before = snapshot(tmp_path)
    for path in (thesis, arrays):
        assert main(["extract", "--images", str(user_images), "--out", str(path), *args]) == 2
        assert f"--out {path}: exists and is not activations written by brainprobe" in capsys.readouterr().err
    assert_untouched(before, tmp_path)
    ours = tmp_path / "acts.npz"
    assert main(["extract", "--images", str(user_images), "--out", str(ours), *args]) == 0
    assert main(["extract", "--images", str(user_images), "--out", str(ours), *args]) == 0  # its own: replaced


def test_extract_says_what_images_it_accepts(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not images")
    for images, found in ((notes, "found a file"), (tmp_path / "missing.csv", "found nothing there")):
        assert main(["extract", "--images", str(images), "--out", str(tmp_path / "a.npz")]) == 2
        error = capsys.readouterr().err
        assert f"{images}: expected a folder of images, a CSV manifest (.csv)" in error and found in error
