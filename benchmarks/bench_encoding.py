"""Encoding-model fitting speed, side by side in one run.

All 40 models of one subject (5 ROIs x 8 AlexNet layers, 200 vertices per ROI, 40 training
images): brainprobe's batched ROMP (every vertex of a layer in one fit) against
- the same ROMP one vertex at a time (`romp_single_target`), timed on a subset of vertices and
  scaled to all of them (every vertex costs the same);
- scikit-learn's OrthogonalMatchingPursuit (multi-target) with the same sparsity parameter.

Activations are real AlexNet-sized layers (random He-initialized weights; no ImageNet weights
offline) for 40 random images; each vertex reads 3 units of one layer plus noise.

Usage:  python benchmarks/bench_encoding.py [--sparsity 5] [--loop-vertices 25]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import device_description, timed, write_report
from sklearn.linear_model import OrthogonalMatchingPursuit

from brainprobe.encoding import romp_batched, romp_single_target
from brainprobe.models import extract, load_model

N_IMAGES, N_ROIS, N_VERTICES = 40, 5, 200
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]




def make_data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    model = load_model("alexnet", weights=None, seed=seed, init="kaiming", device="cpu")
    activations = extract(model, torch.rand(N_IMAGES, 3, 224, 224, generator=generator), LAYERS, batch_size=20, device="cpu")
    rng = np.random.default_rng(seed)
    targets = {}
    for layer, X in activations.items():
        X = X.astype(np.float64)
        live = np.flatnonzero(X.std(axis=0) > 0)
        Y = np.empty((N_IMAGES, N_ROIS * N_VERTICES))
        for v in range(Y.shape[1]):
            units = rng.choice(live, 3, replace=False)
            signal = X[:, units] @ rng.normal(size=3)
            Y[:, v] = signal / (signal.std() + 1e-12) + 0.5 * rng.normal(size=N_IMAGES)
        targets[layer] = Y
    return {k: v.astype(np.float64) for k, v in activations.items()}, targets




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sparsity", type=int, default=5)
    parser.add_argument("--loop-vertices", type=int, default=25, help="vertices per layer timed in the per-vertex loop")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "encoding.json"))
    args = parser.parse_args()
    s = args.sparsity
    activations, targets = make_data()
    n_targets = N_ROIS * N_VERTICES
    report = {"device": device_description(), "n_models": N_ROIS * len(LAYERS), "n_vertices_per_roi": N_VERTICES,
              "n_training_images": N_IMAGES, "sparsity": s,
              "layer_units": {k: int(v.shape[1]) for k, v in activations.items()}}
    print(f"device: {report['device']}")

    fits, batched = timed(lambda: {layer: romp_batched(activations[layer], targets[layer], s) for layer in LAYERS})
    report["batched_romp_s"] = batched
    report["mean_support_romp"] = float(np.mean([len(x) for f in fits.values() for x in f.support]))

    subset = np.linspace(0, n_targets - 1, args.loop_vertices).astype(int)
    _, loop = timed(lambda: [romp_single_target(activations[layer], targets[layer][:, v], s)
                             for layer in LAYERS for v in subset])
    report["per_vertex_loop_s"] = loop * n_targets / len(subset)
    report["loop_measured_vertices_per_layer"] = int(len(subset))

    _, omp = timed(lambda: [OrthogonalMatchingPursuit(n_nonzero_coefs=s).fit(activations[layer], targets[layer])
                            for layer in LAYERS])
    report["sklearn_omp_s"] = omp
    report["speedup_vs_loop"] = report["per_vertex_loop_s"] / batched
    report["speedup_vs_sklearn_omp"] = omp / batched
    report["goal_cpu_s"], report["goal_speedup_vs_sklearn"], report["goal_gpu_s"] = 15, 5, 3

    print(f"40 models ({N_ROIS} ROIs x {len(LAYERS)} layers x {N_VERTICES} vertices, {N_IMAGES} images, s = {s})")
    print(f"    batched ROMP      {batched:8.2f} s   (goal < 15 s on CPU, < 3 s on GPU)")
    print(f"    per-vertex ROMP   {report['per_vertex_loop_s']:8.2f} s   ({report['speedup_vs_loop']:.0f}x slower, scaled from "
          f"{len(subset)} vertices per layer)")
    print(f"    sklearn OMP       {omp:8.2f} s   ({report['speedup_vs_sklearn_omp']:.1f}x slower; goal >= 5x)")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
