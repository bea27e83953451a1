"""Issue 25 item 1 and issue 26 item 4: seeds come from identities, and every cached step is keyed
on everything its result depends on; a cached rerun equals a fresh run byte for byte."""

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainprobe.pipeline import Study, validate
from brainprobe.pipeline._study import _seed

KINDS = ["RE"] * 3 + ["AN"] * 3 + ["AI"] * 3


def _stimuli(folder, kinds=KINDS):
    """Nine small photos with their kinds in a manifest (no adversarial images to make)."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(len(kinds))]
    for name in ids:
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    pd.DataFrame({"file": [f"{n}.png" for n in ids], "image_id": ids, "kind": kinds,
                  "source_id": [f"img{i % 3}" for i in range(len(kinds))]}).to_csv(folder / "stimuli.csv", index=False)
    return folder / "stimuli.csv"


def _subject(folder, name, seed):
    """Two repeats of the nine images on 12 columns; the trial table has no kinds (they come from
    the stimulus manifest)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(9, 12))
    betas = np.concatenate([signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape)])
    np.save(folder / f"{name}_betas.npy", betas)
    pd.DataFrame({"image_id": [f"img{i}" for i in range(9)] * 2, "repeat": [1] * 9 + [2] * 9}).to_csv(
        folder / f"{name}_trials.csv", index=False)
    pd.DataFrame({"hemi": "L", "vertex": range(12), "V1": [True] * 6 + [False] * 6,
                  "LO": [False] * 6 + [True] * 6}).to_csv(folder / f"{name}_vertices.csv", index=False)
    return {"id": name, "betas": f"{name}_betas.npy", "trials": f"{name}_trials.csv",
            "vertices": f"{name}_vertices.csv"}


def _config(folder, output, subjects):
    return validate({
        "study": {"name": "seeds", "seed": 7, "output": str(output)},
        "stimuli": {"source": "stimuli.csv", "re_threshold": 0},
        "network": {"name": "alexnet", "weights": "random", "init": "kaiming", "layers": ["conv2", "conv5", "fc7"],
                    "device": "cpu"},
        "subjects": {"simulate": 0},
        "subject": subjects,
        "rois": {"names": ["V1", "LO"], "atlas": "columns"},
        "selection": {"enabled": False},
        "searchlight": {"enabled": False},
        "rsa": {"n_perm": 50, "n_boot": 20},
        "encoding": {"enabled": False},
        "best_layer": {"enabled": False},
        "figures": {"formats": ["png"], "dpi": 40},
    }, base=folder)


def _results(output):
    return {p.name: p.read_bytes() for p in sorted((output / "results").glob("*.csv"))}


@pytest.fixture
def tables_only(monkeypatch):
    """Figures and report are drawn from the tables compared here; leave them out (they take most
    of a run's time)."""
    from brainprobe.pipeline import _report

    monkeypatch.setattr(_report, "make_figures", lambda *args, **kwargs: [])
    monkeypatch.setattr(_report, "write_report", lambda output, *args, **kwargs: (output / "report.html").write_text(""))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The project (stimuli, subjects s-a and s-b) and a finished run of it in ``out``, order [s-a, s-b]."""
    from brainprobe.pipeline import _report

    folder = tmp_path_factory.mktemp("project")
    _stimuli(folder)
    subjects = [_subject(folder, "s-a", 1), _subject(folder, "s-b", 2)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_report, "make_figures", lambda *args, **kwargs: [])
        patch.setattr(_report, "write_report", lambda output, *a, **k: (output / "report.html").write_text(""))
        Study(_config(folder, folder / "out", subjects), progress=False).run()
    return folder, subjects


def _fresh(folder, output, subjects, first_run):
    """A fresh run of the subject steps: the stimulus and network steps (subject-free) are copied."""
    for step in ("stimuli", "activations", "network_rsa"):
        shutil.copytree(first_run / ".cache" / step, output / ".cache" / step)
    result = Study(_config(folder, output, subjects), overwrite=True, progress=False).run()
    assert set(result.log.query("step == 'brain_rsa'")["status"]) == {"computed"}
    return result


def test_reordered_subjects_give_a_cached_rerun_equal_to_a_fresh_run(first_run, tmp_path, tables_only):
    folder, (a, b) = first_run
    rerun_out = tmp_path / "rerun"
    shutil.copytree(folder / "out", rerun_out)
    rerun = Study(_config(folder, rerun_out, [b, a]), overwrite=True, progress=False).run()
    assert set(rerun.log["status"]) == {"cached"}, rerun.log.to_string()  # nothing about a subject changed but its place in the list
    fresh = tmp_path / "fresh"
    _fresh(folder, fresh, [b, a], folder / "out")
    assert _results(rerun_out) == _results(fresh)


def test_relabelled_kinds_in_the_stimulus_manifest_recompute_the_subjects(tmp_path, tables_only):
    _stimuli(tmp_path)
    subjects = [_subject(tmp_path, "s-a", 1)]
    first = tmp_path / "out"
    Study(_config(tmp_path, first, subjects), progress=False).run()
    _stimuli(tmp_path, ["AN"] * 3 + ["RE"] * 3 + ["AI"] * 3)  # RE and AN labels swapped in the manifest
    rerun = Study(_config(tmp_path, first, subjects), overwrite=True, progress=False).run()
    # the subject's kinds come from the manifest: its selection (RE-trial reliability) is stale now
    assert set(rerun.log.query("step in ['selection', 'brain_rsa']")["status"]) == {"computed"}
    fresh = tmp_path / "fresh"
    _fresh(tmp_path, fresh, subjects, first)
    assert _results(first) == _results(fresh)


def test_a_seed_depends_on_every_byte_of_each_part():
    assert _seed(0, "subject-000000001", "rsa") != _seed(0, "subject-000000002", "rsa")  # was: first 8 bytes only
    assert _seed(0, "s1", "rsa") == _seed(0, "s1", "rsa")
    assert _seed(0, "s1", "rsa") != _seed(1, "s1", "rsa") != _seed(0, "s1", "encoding")


def _grid(n, spacing):
    from brainprobe.roi import Mesh

    x, y = np.meshgrid(np.arange(n) * spacing, np.arange(n) * spacing)
    coordinates = np.column_stack([x.ravel(), y.ravel(), np.zeros(n * n)])
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    return Mesh(coordinates, np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])]), name=f"grid{spacing}")


def test_swapped_disk_cache_files_are_never_used(tmp_path):
    from brainprobe.roi import geodesic_neighbourhoods

    fine, coarse = _grid(8, 1.0), _grid(8, 3.0)  # same number of vertices, different disks
    expected = {m.name: geodesic_neighbourhoods(m, 2.0) for m in (fine, coarse)}
    geodesic_neighbourhoods(fine, 2.0, cache_dir=tmp_path)
    geodesic_neighbourhoods(coarse, 2.0, cache_dir=tmp_path)
    first, second = sorted(tmp_path.glob("neighbourhoods_*.npz"))
    swap = tmp_path / "swap"
    first.rename(swap)
    second.rename(first)
    swap.rename(second)  # each mesh's file now holds the other mesh's disks
    for mesh in (fine, coarse):
        assert (geodesic_neighbourhoods(mesh, 2.0, cache_dir=tmp_path) != expected[mesh.name]).nnz == 0
        assert (geodesic_neighbourhoods(mesh, 2.0, cache_dir=tmp_path) != expected[mesh.name]).nnz == 0  # rewritten


def test_editing_a_custom_networks_code_changes_its_cache_keys(tmp_path, monkeypatch):
    from brainprobe.pipeline._study import _inputs_digest

    package = tmp_path / "mylab_i26"
    package.mkdir()
    (package / "__init__.py").write_text("")
    code = "import torch\n\ndef net():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.{})\n"
    (package / "nets.py").write_text(code.format("ReLU()"))
    monkeypatch.syspath_prepend(str(tmp_path))
    network = {"name": "mylab_i26.nets:net", "weights": "random"}
    before = _inputs_digest({"stimuli": {"source": "samples"}}, network)
    (package / "nets.py").write_text(code.format("Tanh()"))
    after = _inputs_digest({"stimuli": {"source": "samples"}}, network)
    assert before["code"] and before != after
