"""Must never happen again, 3b: a step streamed into its cache folder is trusted only once finished;
what a killed run left is recomputed, and its hidden folder (tens of GiB at NSD scale) removed."""

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from brainprobe.models import Activations, LayeredModel, extract
from brainprobe.models._extract import extract_within
from brainprobe.models._store import LayerFolderWriter
from brainprobe.pipeline._cache import StepCache
from brainprobe.pipeline._study import _load_activations, _save_activations
from brainprobe.stimuli import StimulusSet

KEY = "k-stream"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                            nn.Linear(16, 5))
    return LayeredModel(network, {"conv": "1", "fc": "4"}, input_size=8, name="tiny", weights_source="seed 0")


@pytest.fixture(scope="module")
def stimuli():
    images = torch.tensor(np.random.default_rng(0).uniform(size=(7, 3, 8, 8)), dtype=torch.float32)
    return StimulusSet(images, pd.DataFrame({"image_id": [f"RE/{i}" for i in range(7)], "kind": "RE"}))


def _step(cache, model, stimuli, calls, memory_bytes=0):
    """The study's activations step: streamed (memory_bytes 0) into the step's folder, or one .npz."""
    def compute(folder):
        calls.append(1)
        return extract_within(model, stimuli, spill=folder / "activations", memory_bytes=memory_bytes, batch_size=3)

    return cache.run("activations", KEY, compute, _save_activations, _load_activations, into_folder=True)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _abandoned(root, pid, host=None):
    """What a run killed while streaming leaves: its hidden step folder, a finished layer folder
    and the writer's own hidden folder inside, no complete.json."""
    staging = root / "activations" / f".{KEY}.partial-{host or socket.gethostname()}-{pid}"
    (staging / "activations").mkdir(parents=True)
    (staging / "activations" / "activations.json").write_text("{}")
    (staging / ".activations.partial-x").mkdir()
    (staging / ".activations.partial-x" / "00_conv.npy").write_bytes(b"\x93NUMPY half")
    return staging


def test_a_streamed_step_loads_memory_maps_of_its_finished_folder_equal_to_extract(tiny, stimuli, tmp_path):
    cache, calls = StepCache(tmp_path / ".cache"), []
    value, record = _step(cache, tiny, stimuli, calls)
    final = tmp_path / ".cache" / "activations" / KEY
    assert record["status"] == "computed" and value.folder == final / "activations"
    in_memory = extract(tiny, stimuli, batch_size=3)
    for layer in in_memory:
        assert isinstance(value[layer], np.memmap) and value[layer].tobytes() == in_memory[layer].tobytes()
    assert sorted(p.name for p in (tmp_path / ".cache" / "activations").iterdir()) == [KEY]  # no hidden folder left
    again, record = _step(cache, tiny, stimuli, calls)
    assert record["status"] == "cached" and len(calls) == 1 and again.folder == final / "activations"
    # under a budget they fit in: one .npz, the same bytes
    fits, _ = _step(StepCache(tmp_path / "fits"), tiny, stimuli, calls, memory_bytes=1 << 20)
    assert fits.folder is None and (tmp_path / "fits" / "activations" / KEY / "activations.npz").is_file()
    assert all(fits[layer].tobytes() == in_memory[layer].tobytes() for layer in in_memory)


def test_what_a_killed_run_left_is_recomputed_and_only_its_own_hidden_folder_removed(tiny, stimuli, tmp_path):
    root = tmp_path / ".cache"
    dead = _abandoned(root, _dead_pid())
    running = _abandoned(root, os.getppid())  # a run still going (here: the process that started pytest)
    elsewhere = _abandoned(root, _dead_pid(), host="another-node")  # a process id means nothing off its host
    # and a folder at the key's name without complete.json (written by hand, or by an older version)
    unfinished = root / "activations" / KEY / "activations"
    unfinished.mkdir(parents=True)
    Activations({"conv": np.zeros((7, 16), np.float32)}).save(unfinished.parent / "activations.npz")
    calls = []
    value, record = _step(StepCache(root), tiny, stimuli, calls)
    assert record["status"] == "computed" and calls == [1]
    assert not dead.exists() and running.exists() and elsewhere.exists()
    assert not (root / "activations" / KEY / "activations.npz").exists()
    assert value["conv"].tobytes() == extract(tiny, stimuli, batch_size=3)["conv"].tobytes()


def test_a_stream_interrupted_mid_step_leaves_nothing_and_the_rerun_computes(tiny, stimuli, tmp_path, monkeypatch):
    real, seen = LayerFolderWriter.append, []

    def interrupted(self, outputs, shapes):
        seen.append(1)
        if len(seen) == 2:  # Ctrl-C after the first batch was written
            raise KeyboardInterrupt
        return real(self, outputs, shapes)

    monkeypatch.setattr(LayerFolderWriter, "append", interrupted)
    cache, calls = StepCache(tmp_path / ".cache"), []
    with pytest.raises(KeyboardInterrupt):
        _step(cache, tiny, stimuli, calls)
    assert list((tmp_path / ".cache" / "activations").iterdir()) == []
    monkeypatch.setattr(LayerFolderWriter, "append", real)
    value, record = _step(cache, tiny, stimuli, calls)
    assert record["status"] == "computed" and calls == [1, 1] and value.n_images == 7
