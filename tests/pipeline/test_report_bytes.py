"""Two runs of one study give the same ``report.html``, byte for byte, in interpreters whose string
hashes differ (``PYTHONHASHSEED``): what differs between runs -- when, how long, which steps came
from the cache, the output folder's absolute path -- lives in ``run.json`` and ``steps.csv``."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _studies import TINY

RUN = """
import json, sys
from brainprobe.pipeline import Study, validate
Study(validate(json.loads(sys.argv[1])), progress=False, overwrite=True).run()
"""


def _run_in_new_interpreter(values: dict, hash_seed: str) -> None:
    """The study run by a fresh interpreter with another string-hash seed than this one's."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", RUN, json.dumps(values)], check=True, env=env, capture_output=True,
                   text=True, timeout=1200)


# the viewer's module alone (importing brainprobe.pipeline would load torch: seconds per interpreter)
VIEWER = """
import hashlib, importlib.util, sys, types
import numpy as np
spec = importlib.util.spec_from_file_location("viewer", sys.argv[1])
viewer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(viewer)
mesh = types.SimpleNamespace(coordinates=np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]), n_vertices=4,
                             faces=np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3]]))
layers = {"sub-01": {"meshes": {"L": mesh, "R": mesh}, "maps": {"RE-AN": {"L": np.arange(4.0), "R": -np.arange(4.0)}},
                     "shown": None, "background": None, "outlines": None}}
sys.stdout.write(hashlib.sha256(viewer.cortex_viewer(layers).encode()).hexdigest())
"""


def test_the_cortex_viewer_is_the_same_bytes_in_interpreters_with_different_string_hashes():
    from brainprobe.plotting import _viewer

    digests = {subprocess.run([sys.executable, "-c", VIEWER, _viewer.__file__], check=True, capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(digests) == 1, digests


def test_the_report_holds_no_value_that_differs_between_runs(tiny_run, tmp_path):
    """The report written again with another duration, another output folder and a step log of a
    run from the cache: the same bytes. (run.json is written by the study, not by write_report.)"""
    from brainprobe.pipeline import _report, validate

    values = copy.deepcopy(TINY)
    values["study"]["output"] = str(tmp_path / "moved")
    elsewhere = validate(values)
    rerun = copy.copy(tiny_run)
    rerun.log = tiny_run.log.assign(status="cached", seconds=0.01)
    _report.write_report(tmp_path, rerun, elsewhere, seconds=1.0, device="cpu")
    assert (tmp_path / "report.html").read_bytes() == Path(tiny_run.report).read_bytes()


@pytest.mark.slow
def test_a_moved_study_run_again_in_another_interpreter_writes_the_same_report_bytes(tiny_run, tmp_path):
    """The tiny study (its cached steps, in a copied folder) run again: the report is redrawn from
    scratch -- figures, summary, cortex viewer, tables -- and must not change by one byte."""
    moved = tmp_path / "moved"
    shutil.copytree(tiny_run.output, moved)
    values = copy.deepcopy(TINY)
    values["study"]["output"] = str(moved)
    _run_in_new_interpreter(values, "12345")
    again = (moved / "report.html").read_bytes()
    assert again == Path(tiny_run.report).read_bytes()
    ran = json.loads((moved / "run.json").read_text())
    assert ran["output"] == str(moved) and ran["seconds"] >= 0 and ran["finished"].endswith("+00:00")
    assert str(moved) not in again.decode() and str(tiny_run.output) not in again.decode()


@pytest.mark.slow
def test_two_fresh_runs_in_interpreters_with_different_hashes_write_the_same_report_bytes(tmp_path):
    """Everything computed twice (no cache), in two interpreters: identical report.html."""
    values = copy.deepcopy(TINY)
    values["study"]["output"] = str(tmp_path / "out")
    reports = []
    for hash_seed in ("1", "2"):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        _run_in_new_interpreter(values, hash_seed)
        reports.append((tmp_path / "out" / "report.html").read_bytes())
    assert reports[0] == reports[1]
