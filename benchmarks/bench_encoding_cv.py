"""Cross-validated predictions of per-vertex ridge: a refit on each fold's copied rows (before)
against every fold's kernel read from one Gram matrix (`RidgeCVEncoder.cross_val_predict`, now).

The general design's held-out accuracy and `best_layer` on the training images take 5-fold
predictions of every layer. On a wide layer (a conv layer: 10^4-10^5 units, more than the
images) each refit copied the fold's rows (80% of the layer) and summed its kernel again;
now the layer is read once, a block of columns at a time. Each method runs in its own process
(its peak resident memory is its own), on the same simulated float32 layer (ReLU-like: a large
mean) and vertices; the predictions are compared. Wall and CPU seconds are both reported: on a
shared machine the wall time swings with the load, the CPU time much less.

    PYTHONPATH=src python benchmarks/bench_encoding_cv.py [--quick]
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
from _common import compare_methods, measured_sizes, report_child, write_report
from sklearn.base import clone
from sklearn.model_selection import KFold

from brainprobe.encoding import RidgeCVEncoder

SIZES = ((1000, 40000), (3000, 40000), (3000, 140000))
QUICK = ((500, 8000), (1000, 8000))
N_VERTICES = 120
N_FOLDS = 5


def _data(n_images: int, n_units: int):
    rng = np.random.default_rng(0)
    # drawn in float32 and rectified in place: a float64 draw would set the process's peak itself
    X = rng.standard_normal(size=(n_images, n_units), dtype=np.float32)
    X += 0.5
    np.maximum(X, 0, out=X)
    Y = X[:, :20] @ rng.normal(size=(20, N_VERTICES)) + 5.0 * rng.normal(size=(n_images, N_VERTICES))
    return X, Y


def _refit_each_fold(X, Y, folds) -> np.ndarray:
    predicted = np.empty_like(Y)
    for train, test in folds:
        predicted[test] = clone(RidgeCVEncoder()).fit(X[train], Y[train]).predict(X[test])
    return predicted


def child(method: str, n_images: int, n_units: int, out: Path) -> None:
    X, Y = _data(n_images, n_units)
    folds = list(KFold(N_FOLDS).split(X))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start, cpu = time.perf_counter(), time.process_time()
    if method == "refit":
        predicted = _refit_each_fold(X, Y, folds)
    else:
        predicted = RidgeCVEncoder().cross_val_predict(X, Y, folds)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.save(out, predicted)
    report_child(seconds, cpu, before_method_gib=baseline)


def main() -> None:
    sizes = measured_sizes(__doc__, child, SIZES, QUICK)
    if sizes is None:  # this process ran one method
        return
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n_images, n_units in sizes:
            row = {"n_images": n_images, "n_units": n_units, "n_vertices": N_VERTICES, "folds": N_FOLDS}
            row.update(compare_methods(__file__, "refit", "gram", n_images, n_units, folder, ".npy"))
            same = np.max(np.abs(np.load(Path(folder) / "refit.npy") - np.load(Path(folder) / "gram.npy")))
            row["max_abs_difference"] = float(same)
            row["peak_ratio"] = row["refit"]["peak_gib"] / row["gram"]["peak_gib"]
            print(f"{n_images} images x {n_units} units: refit {row['refit']['seconds']:.1f} s "
                  f"{row['refit']['peak_gib']:.2f} GiB, one Gram {row['gram']['seconds']:.1f} s "
                  f"{row['gram']['peak_gib']:.2f} GiB -> {row['speedup']:.2f}x faster, "
                  f"{row['peak_ratio']:.2f}x less peak, {row['cpu_speedup']:.2f}x less CPU time; "
                  f"max |difference| {same:.2e}", flush=True)
            rows.append(row)
    write_report({"benchmark": "encoding_cv", "load_average_1min": os.getloadavg()[0],
                  "rows": rows}, Path(__file__).parent / "results" / "encoding_cv.json")


if __name__ == "__main__":
    main()
