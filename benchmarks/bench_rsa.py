"""RSA speed, side by side with the naive method and rsatoolbox, in one run.

(a) RE-AN and RE-AI similarity with 1000 label permutations over the 8 AlexNet layers
    (40 images per kind): brainprobe's `kind_similarity` against
    - a naive loop: permute the labels, rebuild the RDM, scipy.stats.spearmanr;
    - rsatoolbox in a loop: Dataset -> calc_rdm -> compare(method="spearman").
    The two loops are timed on ``--loop-perms`` permutations per layer and pair and scaled
    linearly to 1000 (each permutation costs the same); ``--loop-perms 1000`` times them whole.
(b) Searchlight RSA over fs_LR 32k (both hemispheres, 3 mm graph-geodesic disks on the
    midthickness), 40 images per kind.

Usage:  python benchmarks/bench_rsa.py [--loop-perms 10] [--out benchmarks/results/rsa.json]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
import torch
from _common import device_description, write_report

from brainprobe.models import extract, load_model
from brainprobe.roi import fs_lr_32k, geodesic_neighbourhoods
from brainprobe.rsa import kind_similarity, searchlight_kind_similarity

N_PER_KIND = 40
N_PERM = 1000
KINDS = ("RE", "AN", "AI")




def study_table(n: int = N_PER_KIND) -> pd.DataFrame:
    return pd.DataFrame({
        "image_id": [f"{k}{i}" for k in KINDS for i in range(n)],
        "kind": [k for k in KINDS for _ in range(n)],
        "source_id": [f"RE{i}" for _ in KINDS for i in range(n)],
    })


def alexnet_activations(seed: int = 0):
    """Real AlexNet-sized activations: random-weight AlexNet on RE, AN (unrelated) and AI (RE + noise) images."""
    generator = torch.Generator().manual_seed(seed)
    regular = torch.rand(N_PER_KIND, 3, 224, 224, generator=generator)
    noise = torch.rand(N_PER_KIND, 3, 224, 224, generator=generator)
    interference = (regular + 0.03 * torch.randn(regular.shape, generator=generator)).clamp(0, 1)
    model = load_model("alexnet", weights=None, seed=seed, device="cpu")
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    return extract(model, torch.cat([regular, noise, interference]), layers, batch_size=40, device="cpu")


def naive_permutations(activations, n_perm: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    upper = np.triu_indices(N_PER_KIND, 1)
    start = time.perf_counter()
    for values in activations.values():
        values = values.astype(np.float64)
        reference = (1 - np.corrcoef(values[:N_PER_KIND]))[upper]
        for offset in (N_PER_KIND, 2 * N_PER_KIND):  # AN, AI
            other = values[offset:offset + N_PER_KIND]
            for _ in range(n_perm):
                permuted = other[rng.permutation(N_PER_KIND)]
                scipy.stats.spearmanr(reference, (1 - np.corrcoef(permuted))[upper])
    return time.perf_counter() - start


def rsatoolbox_permutations(activations, n_perm: int, seed: int = 0) -> float:
    import rsatoolbox

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for values in activations.values():
        values = values.astype(np.float64)
        reference = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(values[:N_PER_KIND]), method="correlation")
        for offset in (N_PER_KIND, 2 * N_PER_KIND):
            other = values[offset:offset + N_PER_KIND]
            for _ in range(n_perm):
                permuted = rsatoolbox.data.Dataset(other[rng.permutation(N_PER_KIND)])
                rsatoolbox.rdm.compare(reference, rsatoolbox.rdm.calc_rdm(permuted, method="correlation"),
                                       method="spearman")
    return time.perf_counter() - start


def bench_permutations(loop_perms: int) -> dict:
    activations = alexnet_activations()
    table = study_table()
    start = time.perf_counter()
    result = kind_similarity(activations, table, n_perm=N_PERM, n_boot=0, seed=0, progress=False, unit="layer")
    ours = time.perf_counter() - start
    naive_measured = naive_permutations(activations, loop_perms)
    toolbox_measured = rsatoolbox_permutations(activations, loop_perms)
    scale = N_PERM / loop_perms
    naive, toolbox = naive_measured * scale, toolbox_measured * scale
    return {
        "layers": {name: values.shape[1] for name, values in activations.items()},
        "n_images_per_kind": N_PER_KIND,
        "n_perm": N_PERM,
        "brainprobe_s": ours,
        "naive_loop_s": naive,
        "rsatoolbox_loop_s": toolbox,
        "loops_measured_perms": loop_perms,
        "loops_extrapolated": loop_perms != N_PERM,
        "speedup_vs_naive": naive / ours,
        "speedup_vs_rsatoolbox": toolbox / ours,
        "goal_speedup_vs_naive": 50,
        "similarities": result[["layer", "pair", "similarity", "p_perm"]].to_dict("records"),
    }


def bench_searchlight() -> dict:
    meshes = [fs_lr_32k(hemi, "midthickness") for hemi in ("L", "R")]
    start = time.perf_counter()
    disks = [geodesic_neighbourhoods(mesh, 3.0, method="graph") for mesh in meshes]
    neighbourhood_s = time.perf_counter() - start
    from scipy.sparse import block_diag

    both = block_diag(disks, format="csr")
    n_vertices = both.shape[1]
    rng = np.random.default_rng(0)
    regular = rng.normal(size=(N_PER_KIND, n_vertices))
    patterns = np.concatenate([regular, rng.normal(size=regular.shape), regular + 0.5 * rng.normal(size=regular.shape)])
    start = time.perf_counter()
    maps = searchlight_kind_similarity(patterns, study_table(), both, progress=False)
    searchlight_s = time.perf_counter() - start
    return {
        "n_vertices": int(n_vertices),
        "mean_disk_size": float(np.diff(both.indptr).mean()),
        "neighbourhoods_s": neighbourhood_s,
        "searchlight_s": searchlight_s,
        "goal_searchlight_s": 60,
        "mean_similarity": maps.groupby("pair")["similarity"].mean().to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop-perms", type=int, default=10, help="permutations timed per layer and pair in the loops")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "rsa.json"))
    args = parser.parse_args()
    report = {"device": device_description(), "torch": torch.__version__, "python": platform.python_version()}
    print(f"device: {report['device']}")
    report["permutations"] = perm = bench_permutations(args.loop_perms)
    print(f"(a) {N_PERM} permutations x 2 pairs x 8 layers, {N_PER_KIND} images per kind")
    print(f"    brainprobe      {perm['brainprobe_s']:8.2f} s")
    print(f"    naive loop      {perm['naive_loop_s']:8.2f} s   ({perm['speedup_vs_naive']:.0f}x slower)"
          + ("  [extrapolated]" if perm["loops_extrapolated"] else ""))
    print(f"    rsatoolbox loop {perm['rsatoolbox_loop_s']:8.2f} s   ({perm['speedup_vs_rsatoolbox']:.0f}x slower)"
          + ("  [extrapolated]" if perm["loops_extrapolated"] else ""))
    report["searchlight"] = light = bench_searchlight()
    print(f"(b) searchlight over fs_LR 32k, {light['n_vertices']} vertices, mean disk {light['mean_disk_size']:.1f} vertices")
    print(f"    neighbourhoods  {light['neighbourhoods_s']:8.2f} s (graph, once per mesh; cacheable)")
    print(f"    searchlight RSA {light['searchlight_s']:8.2f} s   (goal < {light['goal_searchlight_s']} s)")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
