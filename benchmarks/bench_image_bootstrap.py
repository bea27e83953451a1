"""Image bootstrap of RDM correlations (``image_bootstrap_rdm_correlations``), before and after the
per-position pair layout: the code as of ``BASELINE_COMMIT`` (read with ``git show``) beside this
tree's, side by side in one run.

The work is what ``kind_difference`` does per unit set: one reference RDM against two others
(Spearman), images drawn with replacement. RDMs are correlation distances of simulated patterns
(``UNITS`` units; the second RDM shares structure with the reference), plus a categorical model
RDM with long tied runs (``ties``). Each (variant, images) runs in a fresh subprocess, so its
``VmHWM`` peak is its own (``baseline_gib``: the peak after imports and RDMs, so
``peak_gib - baseline_gib`` is what the call added). The setup (sorting, done once per call) and
the resamples are timed apart, wall and CPU (all threads), through each version's internals.
``max_abs_diff_vs_old``: the largest difference between the two codes' correlations on the same
draws. The machine is shared: ``cpu_seconds`` and the ratios of one run are the steadier figures
(``load_average_1min``).

Usage:  python benchmarks/bench_image_bootstrap.py [--sizes 2000 5000 10000] [--resamples 20 20 3]
        writes benchmarks/results/image_bootstrap_speed.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

UNITS = 64
BASELINE_COMMIT = "4adadd4"  # the module before this change
VARIANTS = ("old", "new_1_thread", "new_2_threads")
REPO = Path(__file__).resolve().parents[1]


def _old_module():
    """The baseline module, loaded from git as a sibling of the current one (its relative imports
    resolve to this tree's helpers, which it shares)."""
    import brainprobe.stats  # noqa: F401

    text = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:src/brainprobe/stats/_image_bootstrap.py"],
                          cwd=REPO, capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("brainprobe.stats._image_bootstrap_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "brainprobe.stats"
    exec(compile(text, f"{BASELINE_COMMIT}:_image_bootstrap.py", "exec"), module.__dict__)
    return module


def _rdms(n: int, ties: bool, seed: int = 0):
    """Reference RDM (1, n_pairs) and two others (2, n_pairs): related, and independent or tied."""
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, UNITS))
    reference = pdist(base, "correlation")
    related = pdist(base + 2 * rng.standard_normal((n, UNITS)), "correlation")
    if ties:  # a categorical model: same category 0, else 1 (two tied runs)
        category = rng.integers(0, 8, n).astype(float)[:, None]
        other = (pdist(category, "cityblock") > 0).astype(float)
    else:
        other = pdist(rng.standard_normal((n, UNITS)), "correlation")
    return reference[None], np.stack([related, other])


def _peak_gib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 2**20


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _old_parts(a, b, draws):
    """The baseline's two phases: sort the RDMs; then the resamples, batch by batch."""
    old = _old_module()
    n_items = int(round((1 + np.sqrt(1 + 8 * a.shape[1])) / 2))

    def setup():
        return old._SortedRDMs(a, "spearman"), old._SortedRDMs(b, "spearman")

    def resamples(sorted_rdms):
        # the batch size the baseline takes by default (its memory-budget rule)
        per_resample = 8 * a.shape[1]
        batch = max(1, (old.memory_budget_bytes(None) - 8 * a.shape[1] * (len(b) + 4)) // per_resample)
        batch = int(max(1, min(batch, old._MAX_BATCH_BYTES // per_resample)))
        out = np.empty((len(draws), len(a), len(b)))
        for start in range(0, len(draws), batch):
            counts = old._draw_counts(draws[start:start + batch], n_items)
            out[start:start + len(counts)] = old._weighted_correlations(*sorted_rdms, counts)
        return out

    return setup, resamples


def _new_parts(a, b, draws, jobs):
    from brainprobe.stats import _image_bootstrap as new

    n_items = int(round((1 + np.sqrt(1 + 8 * a.shape[1])) / 2))

    def setup():
        return new._Prepared(a, b, "spearman", n_items, draws.shape[1])

    def resamples(prepared):
        return new._resample_all(prepared, draws, None, None, jobs)

    return setup, resamples


def child(variant: str, n: int, k: int, ties: bool, out_file: str) -> None:
    from brainprobe._internal import bootstrap_indices

    a, b = _rdms(n, ties)
    draws = bootstrap_indices(n, k, seed=0)
    if variant == "old":
        setup, resamples = _old_parts(a, b, draws)
    else:
        setup, resamples = _new_parts(a, b, draws, 1 if variant == "new_1_thread" else 2)
    baseline = _peak_gib()
    prepared, setup_s, setup_cpu = _timed(setup)
    samples, run_s, run_cpu = _timed(lambda: resamples(prepared))
    np.save(out_file, samples)
    row = {"variant": variant, "n_images": n, "n_pairs": a.shape[1], "ties": ties, "n_resamples": k,
           "setup_seconds": setup_s, "setup_cpu_seconds": setup_cpu,
           "seconds_per_resample": run_s / k, "cpu_seconds_per_resample": run_cpu / k,
           "extrapolated_1000_resamples_cpu_seconds": setup_cpu + 1000 * run_cpu / k,
           "peak_gib": _peak_gib(), "baseline_gib": baseline, "load_average_1min": os.getloadavg()[0]}
    print("ROW " + json.dumps(row))


def run_row(variant: str, n: int, k: int, ties: bool, folder: str) -> tuple[dict, np.ndarray | None]:
    out_file = os.path.join(folder, f"{variant}_{n}_{int(ties)}.npy")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", variant, str(n), str(k),
                           str(int(ties)), out_file], capture_output=True, text=True)
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        return {"variant": variant, "n_images": n, "ties": ties, "failed": done.stderr[-1500:]}, None
    return json.loads(rows[-1]), np.load(out_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--resamples", type=int, nargs="+", default=[20, 20, 3])
    parser.add_argument("--ties-at", type=int, nargs="*", default=[2000], help="sizes also run with a tied RDM")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "image_bootstrap_speed.json"))
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, n, k, ties, out_file = args.child
        child(variant, int(n), int(k), bool(int(ties)), out_file)
        return
    from _common import device_description, write_report
    from bench_scale import machine_description

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_image_bootstrap.") as folder:
        cases = [(n, k, False) for n, k in zip(args.sizes, args.resamples, strict=True)]
        cases += [(n, k, True) for n, k in zip(args.sizes, args.resamples, strict=True) if n in args.ties_at]
        for n, k, ties in cases:
            results = {}
            for variant in args.variants:
                row, results[variant] = run_row(variant, n, k, ties, folder)
                rows.append(row)
                print(json.dumps(row))
            old = results.get("old")
            for variant, samples in results.items():
                row = next(r for r in rows if r["variant"] == variant and r["n_images"] == n and r["ties"] == ties)
                if old is not None and samples is not None and variant != "old":
                    row["max_abs_diff_vs_old"] = float(np.nanmax(np.abs(samples - old)))
                    row["same_nan_as_old"] = bool(np.array_equal(np.isnan(samples), np.isnan(old)))
                    base = next(r for r in rows if r["variant"] == "old" and r["n_images"] == n and r["ties"] == ties)
                    for key in ("seconds_per_resample", "cpu_seconds_per_resample", "setup_cpu_seconds",
                                "extrapolated_1000_resamples_cpu_seconds"):
                        if row.get(key) and base.get(key):
                            row[f"{key}_speedup"] = base[key] / row[key]
            new = [results.get(v) for v in ("new_1_thread", "new_2_threads")]
            if all(s is not None for s in new):
                for row in rows:
                    if row["variant"] == "new_2_threads" and row["n_images"] == n and row["ties"] == ties:
                        row["bit_identical_to_1_thread"] = bool(np.array_equal(new[0], new[1], equal_nan=True))
    write_report({"device": device_description(), "machine": machine_description(), "units": UNITS,
                  "baseline_commit": BASELINE_COMMIT, "method": "spearman", "n_a": 1, "n_b": 2, "rows": rows},
                 args.out)


if __name__ == "__main__":
    main()
