"""Subjects who saw the same images: every subject decomposes the layer's kernels (before)
against one decomposition per layer shared through `brainprobe.encoding.kernel_store` (now).

The study's encoding step fits, per subject and layer, a full tuned ridge and its 5-fold
held-out predictions: a Gram pass over the layer, one eigendecomposition of the full kernel and
one per fold. None of it depends on the responses, so in a design where the subjects saw the
same images (NSD's shared images, THINGS, every simulated study) the second subject on can read
what the first computed. Each method runs in its own process (its own peak memory) on the same
simulated float32 layer and ``N_SUBJECTS`` subjects' vertices; the coefficients and predictions
are compared. Wall and CPU seconds are both reported (the machine is shared).

    PYTHONPATH=src python benchmarks/bench_kernel_store.py [--quick]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import compare_methods, measured_sizes, report_child, write_report
from bench_encoding_cv import N_FOLDS, N_VERTICES, _data
from sklearn.model_selection import KFold

from brainprobe.encoding import RidgeCVEncoder, kernel_store

SIZES = ((1000, 40000), (3000, 40000))
QUICK = ((500, 8000),)
N_SUBJECTS = 3


def _subjects(n_images: int, n_units: int):
    X, first = _data(n_images, n_units)
    rng = np.random.default_rng(1)
    others = [X[:, 20:40] @ rng.normal(size=(20, N_VERTICES)) + 5.0 * rng.normal(size=(n_images, N_VERTICES))
              for _ in range(N_SUBJECTS - 1)]
    return X, [first, *others]


def _encode_every_subject(X, subjects, folds) -> tuple[np.ndarray, np.ndarray]:
    """What the study's encoding step does per subject for one layer: a full fit, then 5 folds."""
    coefficients, predictions = [], []
    for Y in subjects:
        coefficients.append(RidgeCVEncoder().fit(X, Y).coef_)
        predictions.append(RidgeCVEncoder().cross_val_predict(X, Y, folds))
    return np.stack(coefficients), np.stack(predictions)


def child(method: str, n_images: int, n_units: int, out: Path) -> None:
    X, subjects = _subjects(n_images, n_units)
    folds = list(KFold(N_FOLDS).split(X))
    start, cpu = time.perf_counter(), time.process_time()
    if method == "each_subject":
        coefficients, predictions = _encode_every_subject(X, subjects, folds)
    else:
        with kernel_store(out.parent / "kernels"):
            coefficients, predictions = _encode_every_subject(X, subjects, folds)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.savez(out, coefficients=coefficients, predictions=predictions)
    stored = sum(f.stat().st_size for f in (out.parent / "kernels").rglob("*.npy")) if method == "store" else 0
    report_child(seconds, cpu, stored_gb=stored / 1e9)


def main() -> None:
    sizes = measured_sizes(__doc__, child, SIZES, QUICK)
    if sizes is None:  # this process ran one method
        return
    rows = []
    for n_images, n_units in sizes:
        row = {"n_images": n_images, "n_units": n_units, "n_vertices": N_VERTICES, "folds": N_FOLDS,
               "subjects": N_SUBJECTS}
        with tempfile.TemporaryDirectory() as folder:
            row.update(compare_methods(__file__, "each_subject", "store", n_images, n_units, folder, ".npz"))
            before, now = np.load(Path(folder) / "each_subject.npz"), np.load(Path(folder) / "store.npz")
            row["identical"] = bool(all(np.array_equal(before[k], now[k]) for k in ("coefficients", "predictions")))
        print(f"{n_images} images x {n_units} units, {N_SUBJECTS} subjects: each subject "
              f"{row['each_subject']['seconds']:.1f} s ({row['each_subject']['cpu_seconds']:.1f} CPU s), one store "
              f"{row['store']['seconds']:.1f} s ({row['store']['cpu_seconds']:.1f} CPU s, "
              f"{row['store']['stored_gb']:.2f} GB on disk) -> {row['speedup']:.2f}x faster, "
              f"{row['cpu_speedup']:.2f}x less CPU; identical: {row['identical']}", flush=True)
        rows.append(row)
    write_report({"benchmark": "kernel_store", "load_average_1min": os.getloadavg()[0], "rows": rows},
                 Path(__file__).parent / "results" / "kernel_store.json")


if __name__ == "__main__":
    main()
