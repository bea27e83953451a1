"""Tuned ridge of many vertices on a wide layer: (vertices x units) weights (before) against the
dual form `RidgeCVEncoder` keeps when there are more vertices than images (now).

A whole ROI or cortex (10^4 vertices) on a conv layer (10^5 units) makes (vertices x units)
float64 weights of GBs per subject and layer, formed in fit and written to the models file. With
fewer images than vertices, the (images x vertices) dual coefficients plus the training features
are the same model in a fraction of the memory. Each method runs in its own process (its own peak
memory) on the same simulated float32 layer: fit, predict 200 new images, save the models file.
The predictions are compared.

    PYTHONPATH=src python benchmarks/bench_ridge_dual.py [--quick]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import compare_methods, measured_sizes, report_child, write_report

from brainprobe.encoding import EncodingModels, RidgeCVEncoder

SIZES = ((1000, 40000, 10000),)
QUICK = ((200, 8000, 2000),)
N_NEW = 200


def _data(n_images: int, n_units: int, n_vertices: int):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_images + N_NEW, n_units)).astype(np.float32)
    Y = X[:n_images, :50] @ rng.normal(size=(50, n_vertices)) + 5.0 * rng.normal(size=(n_images, n_vertices))
    return X[:n_images], Y, X[n_images:]


def child(method: str, n_images: int, n_units: int, out: Path) -> None:
    n_vertices = int(os.environ["BENCH_VERTICES"])
    X, Y, new = _data(n_images, n_units, n_vertices)
    start, cpu = time.perf_counter(), time.process_time()
    model = RidgeCVEncoder().fit(X, Y)
    if method == "weights":  # what fit kept before: the weights themselves
        model.coef_ = model.coef_
        for name in ("dual_coef_", "X_fit_", "x_mean_"):
            vars(model).pop(name, None)
    predicted = model.predict(new)
    path = EncodingModels(models={("sub-01", "cortex", "layer"): model},
                          columns={("sub-01", "cortex"): np.arange(n_vertices)},
                          train_images={"sub-01": [f"im{i}" for i in range(n_images)]},
                          layers=["layer"], rois=["cortex"], subjects=["sub-01"]).save(out.with_suffix(".models.npz"))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.save(out, predicted)
    report_child(seconds, cpu, file_gb=path.stat().st_size / 1e9)


def main() -> None:
    sizes = measured_sizes(__doc__, child, SIZES, QUICK)
    if sizes is None:  # this process ran one method
        return
    rows = []
    for n_images, n_units, n_vertices in sizes:
        os.environ["BENCH_VERTICES"] = str(n_vertices)
        row = {"n_images": n_images, "n_units": n_units, "n_vertices": n_vertices, "n_new_images": N_NEW}
        with tempfile.TemporaryDirectory() as folder:
            row.update(compare_methods(__file__, "weights", "dual", n_images, n_units, folder, ".npy"))
            before, now = np.load(Path(folder) / "weights.npy"), np.load(Path(folder) / "dual.npy")
        row["max_abs_prediction_difference"] = float(np.abs(before - now).max())
        print(f"{n_images} images x {n_units} units x {n_vertices} vertices: weights {row['weights']['seconds']:.1f} s, "
              f"{row['weights']['peak_gib']:.2f} GiB peak, {row['weights']['file_gb']:.2f} GB file; dual "
              f"{row['dual']['seconds']:.1f} s, {row['dual']['peak_gib']:.2f} GiB, {row['dual']['file_gb']:.2f} GB "
              f"-> {row['speedup']:.2f}x faster; predictions differ by {row['max_abs_prediction_difference']:.1e}",
              flush=True)
        rows.append(row)
    write_report({"benchmark": "ridge_dual", "load_average_1min": os.getloadavg()[0], "rows": rows},
                 Path(__file__).parent / "results" / "ridge_dual.json")


if __name__ == "__main__":
    main()
