"""Ranking RDM rows (the cost of Spearman at scale): brainprobe's packed-key sort beside
``torch.sort`` (what `rank_rows` used before, and what the GPU path uses) and scipy's ``rankdata``,
side by side in one process, at the RDM sizes of 40, 1,000 and 10,000 images.

Each method ranks the same rows (uniform values: no ties, as continuous distances; or binary: a
categorical model RDM, all ties) and must give scipy's ranks exactly (checked: the run stops
otherwise). Times are the best of ``--repeats`` calls, in ms per row; the
ratios are torch/brainprobe and scipy/brainprobe. numpy's sort is vectorized for the CPU it runs on
(AVX-512 or AVX2): the report names the CPU and its widest vector extension.

Usage:  python benchmarks/bench_rank.py [--quick] [--repeats 3]
        writes benchmarks/results/rank.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from brainprobe.stats._correlation import rank_rows, rank_rows_torch

HERE = Path(__file__).resolve().parent
# (images, rows, values): condensed RDMs of 40, 1,000 and 10,000 images; "binary" is a categorical
# model RDM (two values: two runs of ties half a million long)
SIZES = [(40, 1000, "uniform"), (1000, 8, "uniform"), (1000, 8, "binary"), (10000, 1, "uniform")]
QUICK = [(40, 200, "uniform"), (1000, 2, "uniform"), (1000, 2, "binary")]


def _torch_ranks(values: np.ndarray) -> np.ndarray:
    return rank_rows_torch(torch.from_numpy(values)).numpy()


# scipy first: the reference every other method's ranks must equal
METHODS = {"scipy_rankdata": lambda v: rankdata(v, axis=-1), "brainprobe": rank_rows, "torch_sort": _torch_ranks}


def _vector_extension() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return "avx512" if " avx512f" in flags else "avx2" if " avx2" in flags else "older"


def _best_ms_per_row(method, values: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    best, ranks = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        ranks = method(values)
        best = min(best, time.perf_counter() - start)
    return best * 1e3 / len(values), ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "rank.json"))
    args = parser.parse_args()
    from _common import write_report
    from bench_scale import machine_description

    rng = np.random.default_rng(0)
    rows = []
    for n_images, n_rows, kind in QUICK if args.quick else SIZES:
        values = rng.random((n_rows, n_images * (n_images - 1) // 2))
        if kind == "binary":
            values = np.round(values)
        row = {"n_images": n_images, "n_pairs": values.shape[1], "rows": n_rows, "values": kind}
        expected = None
        for name, method in METHODS.items():
            ms, ranks = _best_ms_per_row(method, values, args.repeats if values.size < 10**7 else 1)
            if expected is None:
                expected = ranks
            elif not np.array_equal(ranks, expected):
                raise AssertionError(f"{name}: ranks differ from scipy's at {n_images} images")
            row[f"{name}_ms_per_row"] = ms
        row["torch_sort / brainprobe"] = row["torch_sort_ms_per_row"] / row["brainprobe_ms_per_row"]
        row["scipy_rankdata / brainprobe"] = row["scipy_rankdata_ms_per_row"] / row["brainprobe_ms_per_row"]
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        rows.append(row)
    write_report({"cpu": machine_description()["cpu"], "vector_extension": _vector_extension(), "numpy": np.__version__,
                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "rows": rows},
                 Path(args.out))


if __name__ == "__main__":
    main()
