"""Searchlight RE-AN/RE-AI on both fs_LR 32k hemispheres (3 mm disks, 64,984 centres) at 1,000 and
10,000 images per kind: the per-disk RDM path beside the batched paths, side by side.

Variants (each in a fresh subprocess, so its ``VmHWM`` peak is its own; ``baseline_gib`` is the
peak right after imports and the patterns, so ``peak_gib - baseline_gib`` is the searchlight's own):

- ``rdm_spearman``: the default (``method="spearman"``) on a CPU: every disk's three condensed
  RDMs formed and ranked, one disk at a time.
- ``rdm_pearson``: the same per-disk RDM path with ``method="pearson"`` (the batched path turned
  off), the like-for-like reference of ``gram_pearson``.
- ``batched_spearman_cpu``: the batched path that a GPU takes for Spearman (one batched product
  and one sort per RDM), here on the CPU: what batching alone buys without a GPU.
- ``gram_pearson``: ``method="pearson"``, ``n_perm=0``: the Gram-identity path, no RDM formed,
  every centre measured; checked against ``rdm_pearson`` on 24 centres (6 at 10,000 images;
  ``peak_gib_before_check`` is the peak before that check's RDMs) (``max_abs_diff_vs_rdm``).

The RDM variants take hours at 1,000 images: they run on a subset of centres spread over both
hemispheres in runs of 64 neighbours (until ``--cap-s``) and are extrapolated linearly in centres (``extrapolated``), as
``bench_scale.py`` does. At 10,000 images only ``gram_pearson`` runs, on float32 patterns
(3 x 10,000 x 64,984 x 4 B = 7.8 GB; one hemisphere when the machine has not that much free,
and the row says so). ``cpu_seconds`` is the steadier figure on a shared machine
(``load_average_1min``).

Usage:  python benchmarks/bench_searchlight_scale.py [--sizes 1000] [--variants ...] [--merge]
        writes benchmarks/results/searchlight_scale.json; with --merge-scale also puts the
        gram_pearson figures on the searchlight rows of benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

VARIANTS = ("rdm_spearman", "rdm_pearson", "batched_spearman_cpu", "gram_pearson")
CAP_S = 120.0
HERE = Path(__file__).resolve().parent


def _disks(hemispheres: str):
    import scipy.sparse as sp

    from brainprobe.roi import fs_lr_32k, geodesic_neighbourhoods

    return sp.block_diag([geodesic_neighbourhoods(fs_lr_32k(h), 3.0, progress=False) for h in hemispheres]).tocsr()


def _hemispheres_that_fit(n: int) -> str:
    """Both hemispheres when their float32 patterns, the memory budget's batches and 2 GiB to spare
    fit in the memory available now, else the left one."""
    from brainprobe._memory import available_bytes, memory_budget_bytes

    both = 3 * n * 64984 * 4
    return "LR" if both + memory_budget_bytes(None) + 2 * 2**30 < available_bytes() else "L"


def _patterns(n: int, n_vertices: int, dtype) -> tuple:
    import pandas as pd

    kinds = ["RE", "AN", "AI"]
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in kinds for i in range(n)],
                          "kind": [k for k in kinds for _ in range(n)],
                          "source_id": [f"s{i}" for _ in kinds for i in range(n)]})
    rng = np.random.default_rng(0)
    # independent kinds but for a shared component in AI (RE + noise), so similarities are not ~0
    patterns = rng.standard_normal((3 * n, n_vertices), dtype=np.float32)
    patterns[2 * n:] += patterns[:n]
    return table, patterns.astype(dtype, copy=False)


def _rows(table, kind):
    return np.flatnonzero(table["kind"].to_numpy() == kind)


def run_variant(variant: str, n: int, cap_s: float) -> dict:
    from bench_scale import _per_item_cap, spread_centres

    import brainprobe.rsa._searchlight as searchlight
    from brainprobe._memory import memory_budget_bytes
    from brainprobe.rsa import searchlight_kind_similarity
    from brainprobe.rsa._searchlight_batched import batched_kind_similarity

    hemispheres = "LR" if n <= 2000 else _hemispheres_that_fit(n)
    disks = _disks(hemispheres)
    n_centers = disks.shape[0]
    table, patterns = _patterns(n, n_centers, np.float64 if n <= 2000 else np.float32)
    row = {"variant": variant, "n_images": n, "hemispheres": hemispheres, "n_centers": n_centers,
           "patterns_dtype": str(patterns.dtype), "mean_disk_size": float(disks.nnz / n_centers)}
    baseline = _peak_gib()
    spread = lambda k: disks[spread_centres(n_centers, k)]  # noqa: E731

    if variant == "gram_pearson":
        wall, cpu = time.perf_counter(), time.process_time()
        maps = searchlight_kind_similarity(patterns, table, disks, method="pearson", device="cpu", progress=False)
        row.update(seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu,
                   measured_centers=n_centers, extrapolated=False,
                   peak_gib_before_check=_peak_gib())  # the check's RDMs (400 MB each at 10,000) come after
        check = np.linspace(0, n_centers - 1, 24 if n <= 2000 else 6).astype(int)
        searchlight._batched_path = lambda *args: False  # the per-disk RDM path on a few centres
        reference = searchlight_kind_similarity(patterns, table, disks[check], method="pearson", progress=False)
        found = maps.set_index(["pair", "center"])["similarity"]
        expected = reference.assign(center=check[reference["center"]]).set_index(["pair", "center"])["similarity"]
        row["max_abs_diff_vs_rdm"] = float(np.nanmax(np.abs(found.loc[expected.index].to_numpy() - expected.to_numpy())))
        row["median_re_ai"] = float(np.nanmedian(maps.loc[maps["pair"] == "RE-AI", "similarity"]))
    else:
        if variant == "batched_spearman_cpu":
            rows = {kind: _rows(table, kind) for kind in ("RE", "AN", "AI")}

            def run(k):
                members = searchlight._membership(spread(k), patterns.shape[1])
                batched_kind_similarity(patterns, rows, members, reference="RE", others=("AN", "AI"),
                                        metric="correlation", method="spearman", budget=memory_budget_bytes(None),
                                        device="cpu")
        else:
            searchlight._batched_path = lambda *args: False
            method = variant.split("_")[1]

            def run(k):
                searchlight_kind_similarity(patterns, table, spread(k), method=method, progress=False)

        # items are thousandths of the centres, as in bench_scale.step_searchlight
        seconds, measured, cpu = _per_item_cap(lambda k: run(max(1, k * n_centers // 1000)), 1000, cap_s)
        row.update(seconds=seconds, cpu_seconds=cpu, measured_centers=measured * n_centers // 1000,
                   extrapolated=measured < 1000)
    row.update(peak_gib=_peak_gib(), baseline_gib=baseline, load_average_1min=os.getloadavg()[0],
               threads=int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
               memory_budget_gib=memory_budget_bytes(None) / 2**30)
    return row


def _peak_gib() -> float:
    from bench_scale import _peak_gib as peak

    return peak()


def child(variant: str, n: int, cap_s: float) -> None:
    import torch  # noqa: F401  (imported before timing)

    import brainprobe.rsa  # noqa: F401

    print("ROW " + json.dumps(run_variant(variant, n, cap_s), default=float))


def run_row(variant: str, n: int, cap_s: float) -> dict:
    from bench_scale import run_child

    return run_child(Path(__file__).resolve(), "variant", variant, n, cap_s)


def ratios(rows: list[dict]) -> dict:
    """Per size: each RDM variant's CPU seconds over gram_pearson's (and over rdm_spearman's for the
    batched Spearman)."""
    out = {}
    for n in sorted({r["n_images"] for r in rows}):
        at = {r["variant"]: r for r in rows if r["n_images"] == n and r.get("cpu_seconds")}
        if "gram_pearson" in at:
            for variant in ("rdm_spearman", "rdm_pearson"):
                if variant in at:
                    out[f"{n}: {variant} / gram_pearson (cpu s)"] = at[variant]["cpu_seconds"] / at["gram_pearson"]["cpu_seconds"]
        if "rdm_spearman" in at and "batched_spearman_cpu" in at:
            out[f"{n}: rdm_spearman / batched_spearman_cpu (cpu s)"] = (at["rdm_spearman"]["cpu_seconds"]
                                                                        / at["batched_spearman_cpu"]["cpu_seconds"])
    return out


def merge_into_scale(rows: list[dict], path: Path) -> None:
    """The gram_pearson figures on bench_scale's searchlight rows (a row per size; created at sizes
    bench_scale skips)."""
    report = json.loads(path.read_text())
    for row in rows:
        if row.get("variant") != "gram_pearson" or "cpu_seconds" not in row:
            continue
        fields = {"pearson_gram_seconds": row["seconds"], "pearson_gram_cpu_seconds": row["cpu_seconds"],
                  "pearson_gram_peak_gib": row.get("peak_gib_before_check", row["peak_gib"]), "pearson_gram_hemispheres": row["hemispheres"],
                  "pearson_gram_note": "method='pearson', n_perm=0: RDM-free Gram path, every centre measured "
                                       "(benchmarks/bench_searchlight_scale.py)"}
        target = [r for r in report["rows"] if r.get("step") == "searchlight" and r.get("n_images") == row["n_images"]]
        if target:
            target[0].update(fields)
        else:
            report["rows"].append({"step": "searchlight", "n_images": row["n_images"],
                                   "skipped": "spearman not run at this size (hours per 1,000 centres on a CPU)",
                                   **fields})
    report["rows"].sort(key=lambda r: (r.get("step", ""), r.get("n_images", 0)))
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--cap-s", type=float, default=CAP_S,
                        help="seconds an RDM variant may take before it is extrapolated from fewer centres")
    parser.add_argument("--out", default=str(HERE / "results" / "searchlight_scale.json"))
    parser.add_argument("--merge", action="store_true", help="add the rows to the existing JSON")
    parser.add_argument("--merge-scale", action="store_true", help="also update benchmarks/results/scale.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.cap_s)
        return
    from _common import device_description, write_report
    from bench_scale import machine_description, previous_rows

    out = Path(args.out)
    rows = previous_rows(json.loads(out.read_text())) if args.merge and out.is_file() else []
    for n in args.sizes:
        for variant in args.variants:
            if n > 2000 and variant != "gram_pearson":
                continue  # hours per 1,000 centres: not run
            row = run_row(variant, n, args.cap_s)
            rows = [r for r in rows if not (r.get("variant") == variant and r.get("n_images") == n)] + [row]
            print(json.dumps(row, default=float), flush=True)
    report = {"device": device_description(), "machine": machine_description(), "cap_s": args.cap_s,
              "rows": sorted(rows, key=lambda r: (r["n_images"], r["variant"])), "ratios": ratios(rows)}
    write_report(report, out)
    print(json.dumps(report["ratios"], indent=1))
    if args.merge_scale:
        merge_into_scale(rows, HERE / "results" / "scale.json")


if __name__ == "__main__":
    main()
