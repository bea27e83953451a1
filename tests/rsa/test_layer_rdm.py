"""`layer_rdm`: the RDM of a wide (memory-mapped) layer read a block of units at a time."""

import tracemalloc

import numpy as np
import pytest
import torch

from brainprobe.rsa import _rdm, rdm
from brainprobe.rsa._rdm import layer_rdm


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "squared_euclidean"])
def test_layer_rdm_in_blocks_matches_rdm(tmp_path, metric, monkeypatch):
    rng = np.random.default_rng(0)
    n_all, n_units = 30, 100_000
    layer = np.lib.format.open_memmap(tmp_path / "layer.npy", mode="w+", dtype=np.float32, shape=(n_all, n_units))
    layer[:] = rng.gamma(1.0, size=(n_all, n_units))
    layer.flush()
    mapped = np.load(tmp_path / "layer.npy", mmap_mode="r")
    rows = rng.permutation(n_all)[:24]
    expected = rdm(np.asarray(mapped)[rows], metric)
    # small enough: `rdm` itself, bit for bit
    np.testing.assert_array_equal(layer_rdm(mapped, metric, rows=rows), expected)
    monkeypatch.setattr(_rdm, "LAYER_BLOCK_VALUES", 24 * 10_000)  # ten blocks of 10,000 units
    tracemalloc.start()
    try:
        blocked = layer_rdm(mapped, metric, rows=rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(blocked, expected, rtol=1e-12, atol=1e-12)
    # one float64 block (and its float32 read) at a time: the rows' float64 copy is 19 MB
    assert peak < 0.25 * 8 * len(rows) * n_units


def test_layer_rdm_blocks_refuse_crossnobis_and_nan(monkeypatch):
    monkeypatch.setattr(_rdm, "LAYER_BLOCK_VALUES", 10)
    with pytest.raises(ValueError, match="metric"):
        layer_rdm(np.ones((4, 10)), "crossnobis")
    values = np.random.default_rng(1).normal(size=(4, 10))
    values[2, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer_rdm(values, "correlation")


def test_upper_triangle_row_by_row_is_the_index_gather(monkeypatch):
    square = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 60, 60)))
    expected = _rdm._upper(square)
    monkeypatch.setattr(_rdm, "_ROWWISE_UPPER", 10)
    assert torch.equal(_rdm._upper(square), expected)
