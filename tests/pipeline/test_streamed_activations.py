"""The study's activations step streams to its cache folder when the activations exceed
``[compute] memory_gb``; the tables are the same, bit for bit, as with activations in memory."""

import shutil

import numpy as np
import pandas as pd
import pytest

from brainprobe.models import Activations
from brainprobe.pipeline import Study, validate

# the steps that read the activations: removed from a copied cache so they run again on the streamed ones
READERS = ("activations", "network_rsa", "network_rdms", "encoding")
TINY_BUDGET_GB = 1e-6  # ~1 KB: any activations exceed it


def _rerun(tiny_run, tiny_values, monkeypatch, *, memory_gb, drop=READERS):
    """The tiny study again on a copy of its output, ``drop``'s cached steps removed; tables only
    (figures and report are another test's business, and take most of a run's time)."""
    output = validate(tiny_values).output
    if not output.exists():
        shutil.copytree(tiny_run.output, output)
    for step in drop:
        shutil.rmtree(output / ".cache" / step, ignore_errors=True)
    monkeypatch.setattr(Study, "_write", lambda self, result, stimuli, seconds: None)
    tiny_values["compute"] = {"memory_gb": memory_gb}
    return Study(validate(tiny_values), overwrite=True, progress=False).run()


def _status(result, step):
    return result.log.loc[result.log["step"] == step, "status"].tolist()


def _assert_same_tables(result, reference):
    assert set(result.tables) == set(reference.tables)
    for name, frame in reference.tables.items():
        # values exactly; dtypes may differ where one side was read back from the cache's CSV (int32/int64)
        pd.testing.assert_frame_equal(result.tables[name], frame, check_exact=True, check_dtype=False, obj=name)


def test_streamed_activations_give_the_same_arrays_and_tables_and_load_from_the_cache(tiny_run, tiny_values,
                                                                                      monkeypatch):
    streamed = _rerun(tiny_run, tiny_values, monkeypatch, memory_gb=TINY_BUDGET_GB)
    assert _status(streamed, "activations") == ["computed"] and set(_status(streamed, "encoding")) == {"computed"}
    _assert_same_tables(streamed, tiny_run)
    # the step's folder holds one .npy per layer and the manifest, no .npz; the arrays are the in-memory run's
    [entry] = (streamed.output / ".cache" / "activations").iterdir()
    [before] = (tiny_run.output / ".cache" / "activations").glob("*/activations.npz")
    assert entry.name == before.parent.name  # the budget is not part of the key: same activations
    assert not (entry / "activations.npz").exists()
    assert sorted(p.name for p in (entry / "activations").iterdir()) == [
        "00_conv4.npy", "01_conv5.npy", "02_fc6.npy", "03_fc7.npy", "activations.json"]
    in_memory, on_disk = Activations.load(before), Activations.load(entry / "activations")
    assert on_disk.layers == in_memory.layers and on_disk.image_ids == in_memory.image_ids
    for layer in in_memory:
        assert isinstance(on_disk[layer], np.memmap) and on_disk[layer].tobytes() == in_memory[layer].tobytes()
    # a rerun (now under the default budget) loads the streamed folder from the cache: same tables again
    again = _rerun(tiny_run, tiny_values, monkeypatch, memory_gb=0.0, drop=("network_rsa",))
    assert _status(again, "activations") == ["cached"] and _status(again, "network_rsa") == ["computed"]
    _assert_same_tables(again, tiny_run)


def test_a_cache_written_as_npz_still_loads_when_activations_would_now_stream(tiny_run, tiny_values, monkeypatch):
    result = _rerun(tiny_run, tiny_values, monkeypatch, memory_gb=TINY_BUDGET_GB, drop=("network_rsa",))
    assert _status(result, "activations") == ["cached"] and _status(result, "network_rsa") == ["computed"]
    [entry] = (result.output / ".cache" / "activations").iterdir()
    assert (entry / "activations.npz").is_file() and not (entry / "activations").exists()
    _assert_same_tables(result, tiny_run)


def test_a_damaged_streamed_layer_is_computed_again(tiny_run, tiny_values, monkeypatch):
    _rerun(tiny_run, tiny_values, monkeypatch, memory_gb=TINY_BUDGET_GB, drop=("activations",))
    output = validate(tiny_values).output
    [layer] = (output / ".cache" / "activations").glob("*/activations/02_fc6.npy")
    with open(layer, "r+b") as handle:  # one value changed in place: same size, same header
        handle.seek(-4, 2)
        handle.write(np.float32(123.0).tobytes())
    with pytest.warns(UserWarning, match="02_fc6.npy changed since it was written; computing the step again"):
        result = _rerun(tiny_run, tiny_values, monkeypatch, memory_gb=TINY_BUDGET_GB, drop=())
    assert _status(result, "activations") == ["computed"]
    [before] = (tiny_run.output / ".cache" / "activations").glob("*/activations.npz")
    assert Activations.load(layer.parent)["fc6"].tobytes() == Activations.load(before)["fc6"].tobytes()
