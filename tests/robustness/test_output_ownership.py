"""Issue 26, items 1-3: a study cleans only a study's own folder, never an input of the run, and
one run at a time writes into an output folder."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from brainprobe._files import MANIFEST, written_files
from brainprobe._lock import LOCK, OutputLockedError, output_lock
from brainprobe.cli import main
from brainprobe.stimuli import StimulusSet

# a study whose subject cannot be read: it stops right after preparing its output folder, which is
# exactly where a folder that is not the study's used to be cleared
FAILING = """[study]
output = "{output}"
[network]
name = "alexnet"
weights = "random"
[rois]
atlas = "columns"
[[subject]]
id = "s1"
betas = "{betas}"
vertices = "{vertices}"
"""


def _failing_study(tmp_path, output, study_folder=None):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "betas.npy").write_bytes(b"not an array")
    (data / "vertices.csv").write_text("hemi,vertex,V1\nL,0,true\n")
    study = (study_folder or tmp_path) / "study.toml"
    study.write_text(FAILING.format(output=output, betas=data / "betas.npy", vertices=data / "vertices.csv"))
    return study


def _stimuli(n):
    generator = torch.Generator().manual_seed(0)
    return StimulusSet(torch.rand(n, 3, 8, 8, generator=generator), {"image_id": [f"s{i}" for i in range(n)]})


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_study_never_clears_a_folder_written_by_another_command(tmp_path, overwrite, capsys, snapshot,
                                                                   assert_untouched):
    out = tmp_path / "adversarial_out"
    _stimuli(3).save(out)  # what `brainprobe adversarial` / `brainprobe synth` write
    assert "stimuli.npz" in written_files(out)
    before = snapshot(out)
    study = _failing_study(tmp_path, out)
    code = main(["run", str(study), "--quiet"] + (["--overwrite"] if overwrite else []))
    assert code == 2
    err = capsys.readouterr().err
    if not overwrite:
        assert err.count("\n") == 1 and "files written by another brainprobe command" in err
    else:  # the study's files are added to the folder's list, the command's stay on it
        before.pop(MANIFEST)
        assert {"stimuli.npz", "stimuli.csv", "images/s0.png"} <= written_files(out)
    assert_untouched(before, out)


def test_an_unfinished_study_is_recognized_by_its_own_marker(tmp_path, capsys):
    out = tmp_path / "out"
    study = _failing_study(tmp_path, out)
    assert main(["run", str(study), "--quiet"]) == 2  # stops at the subject, after marking its folder
    capsys.readouterr()
    assert ".brainprobe-study" in written_files(out)
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(study), "--quiet"]) == 2  # its own unfinished folder: resumed without --overwrite
    err = capsys.readouterr().err
    assert "betas.npy" in err and "--overwrite" not in err
    assert (out / "notes.txt").read_text() == "mine"


def test_running_the_study_file_brainprobe_wrote_never_deletes_it(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    study = _failing_study(tmp_path, out, study_folder=out)  # out/study.toml: the resolved configuration, edited and run again
    (out / "results").mkdir()
    (out / "results" / "old.csv").write_text("a\n1\n")
    (out / "report.html").write_text("<html></html>")
    (out / MANIFEST).write_text(json.dumps({"files": ["study.toml", "results/old.csv", "report.html"]}))
    text = study.read_bytes()
    assert main(["run", str(study), "--overwrite", "--quiet"]) == 2
    capsys.readouterr()
    assert study.read_bytes() == text  # the input of this run is still there, unchanged
    assert not (out / "results" / "old.csv").exists()  # the earlier run's own results are replaced
    assert "study.toml" not in written_files(out)  # and a later run will not remove it either


def test_a_second_run_into_a_locked_folder_stops_naming_the_holder(tmp_path, capsys, snapshot, assert_untouched):
    out = tmp_path / "out"
    study = _failing_study(tmp_path, out)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from brainprobe._lock import output_lock
            with output_lock({str(out)!r}):
                print("held", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(out)
        assert main(["run", str(study), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"is in use by another brainprobe run (pid {holder.pid} on host {socket.gethostname()}, started" in err
        assert_untouched(before, out)
        assert snapshot(out).keys() == before.keys()  # nothing written beside the holder's files
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "yesterday"}))
    study = _failing_study(tmp_path, out)
    assert main(["run", str(study), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "in use" not in err and "betas.npy" in err  # ran (up to its unreadable subject)
    assert not (out / LOCK).exists()  # and let the folder go


def test_the_lock_is_released_and_refuses_a_live_holder_in_the_api(tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        assert (out / LOCK).is_file()
    assert not out.exists()  # a folder the lock made, left empty, is removed with it
    out.mkdir()
    with output_lock(out):
        holder = json.loads((out / LOCK).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        other = subprocess.run([sys.executable, "-c", f"from brainprobe._lock import output_lock\n"
                                f"with output_lock({str(out)!r}): pass"], capture_output=True, text=True)
        assert other.returncode != 0 and "OutputLockedError" in other.stderr
    assert not (out / LOCK).exists()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": "now"}))  # pid 1 lives
    with pytest.raises(OutputLockedError, match=r"in use by another brainprobe run \(pid 1 on host"), output_lock(out):
        pass
    assert (out / LOCK).exists()  # a live holder's lock is left alone
