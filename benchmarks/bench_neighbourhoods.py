"""Geodesic neighbourhoods and vertex selection on fs_LR 32k, timed in one run.

(a) 3 mm neighbourhoods of both fs_LR 32k hemispheres (midthickness), exact (pygeodesic on
    local patches) and graph (Dijkstra along edges), with the mean disk size of each: the graph
    method's under-count is the difference.
(b) Reliability-based vertex selection over a whole hemisphere (every cortical vertex a
    candidate), 40 RE images x 2 repeats, against a per-vertex loop (one RDM pair and one
    Spearman correlation per disk with scipy).

Usage:  python benchmarks/bench_neighbourhoods.py [--out benchmarks/results/neighbourhoods.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
from _common import device_description, timed, write_report

from brainprobe.data import Responses
from brainprobe.roi import fs_lr_32k, geodesic_neighbourhoods, mmp_labels, select_reliable_vertices

N_IMAGES = 40




def bench_neighbourhoods() -> tuple[dict, dict]:
    report, disks = {}, {}
    for method in ("graph", "exact"):
        per_hemi, total = {}, 0.0
        for hemi in ("L", "R"):
            mesh = fs_lr_32k(hemi, "midthickness")
            result, seconds = timed(lambda m=mesh, k=method: geodesic_neighbourhoods(m, 3.0, method=k, progress=False))
            per_hemi[hemi] = float(np.diff(result.indptr).mean())
            total += seconds
            disks[(method, hemi)] = result
        report[method] = {"seconds_both_hemispheres": total, "mean_disk_size": per_hemi}
    return report, disks


def naive_selection(betas_first, betas_second, disks, centers) -> np.ndarray:
    upper = np.triu_indices(betas_first.shape[0], 1)
    reliability = np.empty(len(centers))
    for k, center in enumerate(centers):
        members = disks.indices[disks.indptr[center]:disks.indptr[center + 1]]
        if len(members) < 2:
            reliability[k] = np.nan
            continue
        a = (1 - np.corrcoef(betas_first[:, members]))[upper]
        b = (1 - np.corrcoef(betas_second[:, members]))[upper]
        reliability[k] = scipy.stats.spearmanr(a, b)[0]
    return reliability


def bench_selection(disks) -> dict:
    cortex = np.flatnonzero(mmp_labels("L") != "")
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(N_IMAGES, len(cortex)))
    betas = np.concatenate([signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape)])
    trials = pd.DataFrame({"image_id": [f"RE{i}" for i in range(N_IMAGES)] * 2, "kind": "RE",
                           "repeat": np.repeat([1, 2], N_IMAGES)})
    vertices = pd.DataFrame({"hemi": "L", "vertex": cortex, "cortex": True})
    responses = Responses(betas, trials, vertices)
    graph_disks = {"L": disks[("graph", "L")]}
    table, ours = timed(lambda: select_reliable_vertices(responses, "cortex", graph_disks, n_per_hemi=100))
    # the loop runs on the same column-space disks, on a subset of centres, scaled to all of them
    from brainprobe.roi import neighbourhoods_for_columns

    column_disks = neighbourhoods_for_columns(responses.vertices, graph_disks)
    subset = np.arange(0, len(cortex), 20)
    loop_values, loop_seconds = timed(lambda: naive_selection(betas[:N_IMAGES], betas[N_IMAGES:], column_disks, subset))
    np.testing.assert_allclose(loop_values, table["reliability"].to_numpy()[subset], atol=1e-8, equal_nan=True)
    loop_total = loop_seconds * len(cortex) / len(subset)
    return {"n_candidates": int(len(cortex)), "brainprobe_s": ours, "per_vertex_loop_s": loop_total,
            "loop_measured_centres": int(len(subset)), "speedup": loop_total / ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "neighbourhoods.json"))
    args = parser.parse_args()
    report = {"device": device_description()}
    print(f"device: {report['device']}")
    report["neighbourhoods"], disks = bench_neighbourhoods()
    for method, r in report["neighbourhoods"].items():
        print(f"(a) {method:<6} 3 mm neighbourhoods, fs_LR 32k both hemispheres: {r['seconds_both_hemispheres']:7.1f} s, "
              f"mean disk {r['mean_disk_size']['L']:.1f} / {r['mean_disk_size']['R']:.1f} vertices")
    report["selection"] = sel = bench_selection(disks)
    print(f"(b) vertex selection over {sel['n_candidates']} candidates: {sel['brainprobe_s']:.2f} s vs per-vertex loop "
          f"{sel['per_vertex_loop_s']:.1f} s (scaled from {sel['loop_measured_centres']} centres): {sel['speedup']:.0f}x")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
