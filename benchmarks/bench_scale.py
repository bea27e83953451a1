"""Scale: time and peak memory of each step at 40, 1,000 and 10,000 images, beside rsatoolbox.

Every (step, size) runs in a fresh subprocess, so its peak resident memory (``VmHWM`` of
``/proc/self/status``; ``ru_maxrss`` where there is none, which can carry the parent's peak across
exec) is its own; ``baseline_gib`` is the same process's peak right after the imports (numpy,
torch, brainprobe), so ``peak_gib - baseline_gib`` is what the step itself added. ``seconds`` is
wall-clock time and ``cpu_seconds`` the step's CPU time: on a shared machine (``load_average_1min``)
the CPU time is the steadier figure.

Steps (simulated data: three image kinds RE/AN/AI of ``n`` images each, ``UNITS`` units):

- ``rdm_compare``: one correlation-distance RDM per kind, RE-AN and RE-AI Spearman
  (``kind_similarity`` with no resampling); peer: rsatoolbox ``calc_rdm`` + ``compare``.
- ``permutations``: ``rdm_permutation_test`` of two condensed n-image RDMs (Spearman,
  ``N_PERM`` relabelings); peer: rsatoolbox ``RDMs.reorder`` + ``compare`` per relabeling.
- ``image_bootstraps``: ``kind_difference`` (images resampled with replacement, both
  similarities recomputed); peer: rsatoolbox ``bootstrap_sample_pattern`` + ``compare``.
- ``unit_subsamples``: ``kind_similarity`` with 80% unit subsamples (no rsatoolbox equivalent).
  Its setup (one whole call with one subsample) and each further subsample are timed apart
  (``cpu_seconds_per_resample``); when setup plus 1,000 subsamples exceed the cap the row is the
  setup plus 999 times the per-subsample cost (``extrapolated``, with a ``note``).
- ``searchlight``: ``searchlight_kind_similarity`` on both fs_LR 32k hemispheres, 3 mm disks.
- ``encoding``: ROMP (5 atoms) beside scikit-learn ``RidgeCV(alpha_per_target=True)`` on dense
  planted weights, 2,000 vertices, held-out r of each.
- ``study``: the whole general study (`brainprobe run`'s ``Study``) on ``n`` plain 48-pixel
  images: random AlexNet (conv2, conv5, fc7), 2 simulated subjects with planted layers, ROIs V1
  and LO (30 selected vertices per hemisphere), RDMs with ``N_PERM`` permutations and ``N_BOOT``
  image bootstraps, tuned ridge encoding, figures and report (searchlight off: its own row).
  Above 1,000 images the resamples are cut to ``STUDY_RESAMPLES_LARGE`` (the row says so): the
  row shows the whole pipeline fits in memory, and the resampling rows above give the cost of
  the full count, and the RSA and vertex selection use Pearson (``[rsa] method = "pearson"``:
  disk reliabilities from Gram matrices, no 50-million-pair RDM ranked per ROI vertex).
  ``steps_seconds`` is the study's own step log. ``study_pearson``: the same with Pearson at any
  size (the selection's Gram path beside the Spearman row).
- ``disks``: 3 mm edge-path disks on fs_LR 32k (both hemispheres) and on the same surfaces
  subdivided once (4x the vertices, ~260k), local Dijkstra.

A peer or a step that would take longer than its cap is measured on fewer resamples (or
centres) and extrapolated linearly in them; the row says so (``measured_*``, ``extrapolated``).
The growth exponent of each step is the slope of log(seconds) on log(images).

Usage:  python benchmarks/bench_scale.py [--sizes 40 1000] [--out benchmarks/results/scale.json]
        python benchmarks/bench_scale.py --sizes 10000 --merge   (adds rows to the existing JSON)
        python benchmarks/bench_scale.py --sizes 10000 --steps permutations --cap-s 3600 --merge
                                         (a higher cap: measured in full, not extrapolated)
        python benchmarks/bench_scale.py --sizes 10000 --steps image_bootstraps --merge --timeout-s 1800
                                         (capped as usual; the process may take longer: two setups)
        python benchmarks/bench_scale.py --sizes 10000 --steps unit_subsamples --merge --timeout-s 1800
                                         (the same: one setup, then subsamples timed apart)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

UNITS = 512
N_PERM = 1000
N_BOOT = 1000
PEER_CAP_S = 120.0   # rsatoolbox rows longer than 2 min are extrapolated from fewer resamples
STEP_CAP_S = 240.0   # our rows too (the machine is shared: 2 cores, 7 users)
MARGINAL_S = 60.0    # the per-resample cost is timed on about this many seconds of resamples
STUDY_RESAMPLES_LARGE = 20  # permutations and bootstraps of the whole study above 1,000 images
STUDY_TIMEOUT_S = 4 * 3600.0
STEPS = ("rdm_compare", "permutations", "image_bootstraps", "unit_subsamples", "searchlight", "encoding", "study")


def _peak_gib() -> float:
    """This process's peak resident memory in GiB: VmHWM (Linux), else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 2**20
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine_description() -> dict:
    """CPU model, cores and memory of the machine the rows ran on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory, 1),
            "threads_per_step": int(os.environ.get("OMP_NUM_THREADS", "0")) or None}


def _kinds(n: int, seed: int = 0):
    """RE images with structure, AI = RE + noise, AN independent; the table and the patterns."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    kinds = ["RE", "AN", "AI"]
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in kinds for i in range(n)],
                          "kind": [k for k in kinds for _ in range(n)],
                          "source_id": [f"s{i}" for _ in kinds for i in range(n)]})
    base = rng.standard_normal((n, UNITS))
    patterns = np.concatenate([base, rng.standard_normal((n, UNITS)), base + 2 * rng.standard_normal((n, UNITS))])
    return table, patterns


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _per_item_cap(run_one, total: int, cap_s: float) -> tuple[float, int, float]:
    """Seconds for ``total`` items of ``run_one(k)``: all of them when that fits ``cap_s`` (one
    call's fixed cost plus the marginal cost per item, (t(k) - t(1)) / (k - 1), times the items
    left), else that estimate. Returns (wall seconds, items measured in the largest call, CPU seconds, the
    same way): on a shared machine the CPU seconds are the steadier figure."""
    one, one_cpu = _timed(lambda: run_one(1))
    if one * total <= cap_s:
        wall, cpu = _timed(lambda: run_one(total))
        return wall, total, cpu
    # a setup shared by all items (ranking, square matrices) must not be multiplied by `total`
    count = int(min(total, max(3, cap_s / max(one, 1e-9))))
    many, many_cpu = _timed(lambda: run_one(count))
    marginal = max(many - one, 0.0) / (count - 1)
    marginal_cpu = max(many_cpu - one_cpu, 0.0) / (count - 1)
    if count == total:
        return many, total, many_cpu
    return _whole_or_estimate(run_one, total, cap_s, one, one_cpu, marginal, marginal_cpu, count)[:3]


def _whole_or_estimate(run, total: int, cap_s: float, one, one_cpu, per, per_cpu, count):
    """(wall, items measured, CPU, timed whole) of ``run(total)``: timed whole when one call's
    setup plus ``total - 1`` items at their measured cost fits ``cap_s``; else that estimate
    (``count``: the items the cost was measured on)."""
    if one + per * (total - 1) <= cap_s:
        wall, cpu = _timed(lambda: run(total))
        return wall, total, cpu, True
    return one + per * (total - 1), count, one_cpu + per_cpu * (total - 1), False


def step_rdm_compare(n: int) -> dict:
    from brainprobe.rsa import kind_similarity

    table, patterns = _kinds(n)
    small_table, small = _kinds(10)
    kind_similarity({"layer": small}, small_table, n_perm=0, n_boot=0)  # a process's one-time loads (0.3 s) apart
    start = time.perf_counter()
    kind_similarity({"layer": patterns}, table, n_perm=0, n_boot=0)
    ours = time.perf_counter() - start
    row = {"seconds": ours}

    def peer():
        import rsatoolbox

        rdms = {k: rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(patterns[i * n:(i + 1) * n]), method="correlation")
                for i, k in enumerate(("RE", "AN", "AI"))}
        for other in ("AN", "AI"):
            rsatoolbox.rdm.compare(rdms["RE"], rdms[other], method="spearman")

    if n <= 2000:  # rsatoolbox's compare at 10,000 images took minutes and most of the memory
        start = time.perf_counter()
        peer()
        row["rsatoolbox_s"] = time.perf_counter() - start
    else:
        row["rsatoolbox_skipped"] = "not run at this size (its square matrices double the memory; > 5 min in issue 27)"
    return row


def _two_rdms(n: int):
    from brainprobe.rsa import rdm

    table, patterns = _kinds(n)
    return rdm(patterns[:n]), rdm(patterns[2 * n:])


def step_permutations(n: int) -> dict:
    from brainprobe.stats import rdm_permutation_test

    a, b = _two_rdms(n)
    seconds, measured, cpu = _per_item_cap(lambda k: rdm_permutation_test(a, b, n_perm=k, seed=0), N_PERM,
                                           STEP_CAP_S)
    row = {"seconds": seconds, "cpu_seconds": cpu, "n_perm": N_PERM, "measured_n_perm": measured, "extrapolated": measured < N_PERM}
    import rsatoolbox

    rdm_a = rsatoolbox.rdm.RDMs(a[None])
    rdm_b = rsatoolbox.rdm.RDMs(b[None])
    rng = np.random.default_rng(0)

    def peer(k):
        for _ in range(k):
            permuted = rdm_b.copy()
            permuted.reorder(rng.permutation(n))
            rsatoolbox.rdm.compare(rdm_a, permuted, method="spearman")

    if n > 2000:
        row["rsatoolbox_skipped"] = "one relabeling of a 10,000-image RDM alone exceeds the 5 min cap x 1000 (not run)"
        return row
    return _with_peer(row, peer, N_PERM, "n_perm")


def _with_peer(row: dict, peer, count: int, name: str) -> dict:
    """``row`` plus rsatoolbox's time for ``count`` resamples (capped at PEER_CAP_S, then extrapolated)."""
    peer_s, measured, peer_cpu = _per_item_cap(peer, count, PEER_CAP_S)
    row.update({"rsatoolbox_s": peer_s, "rsatoolbox_cpu_s": peer_cpu, f"rsatoolbox_measured_{name}": measured, "rsatoolbox_extrapolated": measured < count})
    return row


def _bootstrap_marginal(patterns: np.ndarray, n: int) -> tuple[float, float, int]:
    """Seconds (wall, CPU) per resample of kind_difference's bootstrap, measured apart from its
    setup: the RE RDM against AI and AN on ``k`` draws, after the RDMs are sorted once. A setup of
    minutes (10,000 images) varies by more than a few resamples cost, so t(k) - t(1) of whole
    calls would be noise. Returns (wall, CPU, k)."""
    from brainprobe.rsa import rdm
    from brainprobe.stats._image_bootstrap import _Prepared, _resample_all

    re, an, ai = (rdm(patterns[i * n:(i + 1) * n], "correlation") for i in range(3))
    prepared = _Prepared(re[None], np.stack([ai, an]), "spearman", n, n)
    draws = np.random.default_rng(0).integers(0, n, size=(N_BOOT, n))
    first, _ = _timed(lambda: _resample_all(prepared, draws[:1], None, None, None))
    k = int(min(N_BOOT, max(3, MARGINAL_S / max(first, 1e-3))))
    wall, cpu = _timed(lambda: _resample_all(prepared, draws[:k], None, None, None))
    return wall / k, cpu / k, k


def _whole_or_extrapolated(run, one, one_cpu, per, per_cpu, k, note) -> dict:
    """`_whole_or_estimate` of N_BOOT resamples under the step cap, as row fields (``note`` when
    extrapolated)."""
    seconds, measured, cpu, whole = _whole_or_estimate(run, N_BOOT, STEP_CAP_S, one, one_cpu, per, per_cpu, k)
    row = {"seconds": seconds, "cpu_seconds": cpu, "measured_n_boot": measured, "extrapolated": not whole}
    return row if whole else {**row, "note": note}


def step_image_bootstraps(n: int) -> dict:
    from brainprobe.rsa import kind_difference

    table, patterns = _kinds(n)

    def run(k):
        return kind_difference({"layer": patterns}, table, n_boot=k, seed=0)

    one, one_cpu = _timed(lambda: run(1))
    per, per_cpu, k = _bootstrap_marginal(patterns, n)
    row = {"n_boot": N_BOOT, "setup_and_one_resample_seconds": one, "setup_and_one_resample_cpu_seconds": one_cpu,
           "seconds_per_resample": per, "cpu_seconds_per_resample": per_cpu, "threads": len(os.sched_getaffinity(0))}
    row.update(_whole_or_extrapolated(run, one, one_cpu, per, per_cpu, k,
                                      "kind_difference(n_boot=1) timed whole; each further resample timed apart "
                                      "from the setup (RE vs AI and AN on k draws, RDMs sorted once), "
                                      "extrapolated to n_boot"))
    if n > 2000:
        row["rsatoolbox_skipped"] = "not run at 10,000 images (> 5 min cap per few resamples)"
        return row
    import rsatoolbox

    rdms = {k: rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(patterns[i * n:(i + 1) * n]), method="correlation")
            for i, k in enumerate(("RE", "AN", "AI"))}
    both = rdms["RE"].copy()
    both.append(rdms["AN"])
    both.append(rdms["AI"])

    def peer(k):
        for _ in range(k):
            sample, _ = rsatoolbox.inference.bootstrap_sample_pattern(both)
            vectors = sample.get_vectors()  # pairs of a pattern drawn twice are NaN, left out by compare
            rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(vectors[:1]), rsatoolbox.rdm.RDMs(vectors[1:]),
                                   method="spearman")

    return _with_peer(row, peer, N_BOOT, "n_boot")


def _subsample_marginal(patterns: np.ndarray, n: int) -> tuple[float, float, int]:
    """Seconds (wall, CPU) per unit subsample of kind_similarity, measured apart from its setup
    (the three full RDMs and their comparison): its resampling loop on ``k`` draws (each draws
    80% of the units, builds the three kinds' RDMs from them and sorts each once). Returns
    (wall, CPU, k)."""
    from brainprobe.rsa._kinds import _unit_bootstrap

    rows = {kind: np.arange(i * n, (i + 1) * n) for i, kind in enumerate(("RE", "AN", "AI"))}

    def run(k):
        _unit_bootstrap(patterns, rows, "RE", ["AN", "AI"], "correlation", "spearman", k, 0.8,
                        np.random.default_rng(0), "cpu")

    first, _ = _timed(lambda: run(1))
    k = int(min(N_BOOT, max(3, MARGINAL_S / max(first, 1e-3))))
    wall, cpu = _timed(lambda: run(k))
    return wall / k, cpu / k, k


def step_unit_subsamples(n: int) -> dict:
    from brainprobe.rsa import kind_similarity

    table, patterns = _kinds(n)

    def run(k):
        return kind_similarity({"layer": patterns}, table, n_perm=0, n_boot=k, seed=0, device="cpu")

    one, one_cpu = _timed(lambda: run(1))
    per, per_cpu, k = _subsample_marginal(patterns, n)
    row = {"n_boot": N_BOOT, "setup_and_one_resample_seconds": one, "setup_and_one_resample_cpu_seconds": one_cpu,
           "seconds_per_resample": per, "cpu_seconds_per_resample": per_cpu, "threads": len(os.sched_getaffinity(0)),
           "peer": "none (rsatoolbox resamples patterns or RDMs, not units)"}
    row.update(_whole_or_extrapolated(run, one, one_cpu, per, per_cpu, k,
                                      "kind_similarity(n_boot=1) timed whole; each further subsample timed apart "
                                      "from the setup (the resampling loop on k draws: the drawn units' RDMs of the "
                                      "three kinds, each sorted once), extrapolated to n_boot"))
    return row


def step_searchlight(n: int) -> dict:
    import scipy.sparse as sp

    from brainprobe.roi import fs_lr_32k, geodesic_neighbourhoods
    from brainprobe.rsa import searchlight_kind_similarity

    if n > 2000:
        return {"skipped": "10,000 images x 64,984 vertices x 3 kinds is 15.6 GB of float64 patterns alone; "
                           "run it per hemisphere on a machine with the memory"}
    disks = sp.block_diag([geodesic_neighbourhoods(fs_lr_32k(h), 3.0, progress=False) for h in "LR"]).tocsr()
    n_vertices = disks.shape[0]
    rng = np.random.default_rng(0)
    table, _ = _kinds(n)
    patterns = rng.standard_normal((3 * n, n_vertices)).astype(np.float64)

    def run(k):  # centres spread over both hemispheres, not the first k of one
        searchlight_kind_similarity(patterns, table, disks[spread_centres(n_vertices, k)], progress=False)

    seconds, measured, cpu = _per_item_cap(lambda k: run(max(1, k * n_vertices // 1000)), 1000, STEP_CAP_S)
    return {"seconds": seconds, "cpu_seconds": cpu, "n_centers": n_vertices, "measured_centers": measured * n_vertices // 1000,
            "extrapolated": measured < 1000}


def spread_centres(n_centers: int, k: int, run: int = 64) -> np.ndarray:
    """k centres in runs of ``run`` consecutive ones, the runs spread evenly over both hemispheres:
    a searchlight takes its centres in chunks of neighbours, whose disks share vertices (single
    centres spread apart would pay for gathering every disk's patterns alone)."""
    starts = np.linspace(0, max(0, n_centers - run), max(1, -(-k // run))).astype(int)
    return np.unique(np.clip(starts[:, None] + np.arange(run), 0, n_centers - 1))[:k]


def step_encoding(n: int) -> dict:
    from sklearn.linear_model import RidgeCV

    from brainprobe.encoding import ROMP

    rng = np.random.default_rng(0)
    n_vertices, n_features = 2000, UNITS
    features = rng.standard_normal((n + max(n // 4, 10), n_features))
    weights = rng.standard_normal((n_features, n_vertices)) / np.sqrt(n_features)  # dense truth
    responses = features @ weights + rng.standard_normal((len(features), n_vertices))
    train, test = slice(0, n), slice(n, None)

    def held_out_r(model):
        predicted = model.predict(features[test])
        p = (predicted - predicted.mean(0)) / predicted.std(0)
        m = (responses[test] - responses[test].mean(0)) / responses[test].std(0)
        return float(np.nanmean((p * m).mean(0)))

    start = time.perf_counter()
    romp = ROMP(n_nonzero=5).fit(features[train], responses[train])
    romp_s = time.perf_counter() - start
    start = time.perf_counter()
    ridge = RidgeCV(alphas=np.logspace(-2, 5, 15), alpha_per_target=True).fit(features[train], responses[train])
    ridge_s = time.perf_counter() - start
    return {"seconds": romp_s, "romp_held_out_r": held_out_r(romp), "ridge_s": ridge_s,
            "ridge_held_out_r": held_out_r(ridge), "n_vertices": n_vertices, "n_features": n_features}


def _study_images(folder: Path, n: int) -> Path:
    """``n`` 48-pixel crops of the bundled photographs as PNG files, half "animal", half "object"."""
    from PIL import Image

    from brainprobe.stimuli import sample_patches

    folder.mkdir(parents=True)
    for start in range(0, n, 1000):  # in blocks: 10,000 patches at once would hold them all
        block = sample_patches(min(1000, n - start), size=48, seed=start)
        pixels = (block.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for i, image in enumerate(pixels, start):
            Image.fromarray(image).save(folder / f"{('animal', 'object')[i % 2]}_{i:05d}.png")
    return folder


def step_study_pearson(n: int) -> dict:
    """The same study with ``[rsa] method = "pearson"`` at any size."""
    return step_study(n, method="pearson")


def step_study(n: int, method: str | None = None) -> dict:
    import tempfile

    from brainprobe.pipeline import Study, validate

    resamples = N_PERM if n <= 1000 else STUDY_RESAMPLES_LARGE
    # Spearman ranks every ROI vertex's disk RDM for the selection: 50 million pairs each at
    # 10,000 images, hours; Pearson's Gram path forms none (the README's advice at that size)
    method = method or ("spearman" if n <= 1000 else "pearson")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        os.environ["BRAINPROBE_CACHE"] = str(folder / "cache")
        start = time.perf_counter()
        images = _study_images(folder / "images", n)
        images_s = time.perf_counter() - start
        config = validate({
            "study": {"name": "scale", "seed": 1, "output": str(folder / "out")},
            "stimuli": {"source": str(images), "generate": False},
            "network": {"name": "alexnet", "weights": "random", "init": "kaiming",
                        "layers": ["conv2", "conv5", "fc7"], "device": "cpu"},
            "subjects": {"simulate": 2, "vertices": "rois", "snr": 4.0,
                         "planted_layers": {"V1": "conv2", "LO": "fc7"}},
            "rois": {"names": ["V1", "LO"]},
            "selection": {"n_per_hemi": 30},
            "rsa": {"n_perm": resamples, "n_boot": resamples, "method": method},
            "encoding": {"estimator": "ridge"},
            "searchlight": {"enabled": False},
            "figures": {"formats": ["png"], "dpi": 50},
        })
        results = []
        wall, cpu = _timed(lambda: results.append(Study(config, progress=False).run()))
        log = results[0].log
    steps = log.groupby("step", sort=False)["seconds"].sum().round(1).to_dict()
    # a nested step's seconds are already in its parent's: the rest is the wall time minus the parents
    outer = float(log.loc[~log["step"].isin(NESTED_STEPS), "seconds"].sum())
    return {"seconds": wall, "cpu_seconds": cpu, "images_s": images_s, "rsa_method": method,
            "n_perm": resamples, "n_boot": resamples,
            "reduced_resamples": resamples < N_PERM, "subjects": 2, "steps_seconds": steps,
            "nested_steps": NESTED_STEPS, "other_seconds (disks, figures, report)": wall - outer}


# steps of a study's log that run inside another step (their parent)
NESTED_STEPS = {"encoding_models": "encoding"}


def step_disks(_: int) -> dict:
    from brainprobe.roi import Mesh, fs_lr_32k, geodesic_neighbourhoods

    out = {}
    for level in (0, 1):
        meshes = [fs_lr_32k(h) for h in "LR"]
        if level:
            meshes = [_subdivide(m) for m in meshes]
        start = time.perf_counter()
        sizes = [geodesic_neighbourhoods(Mesh(m.coordinates, m.faces, name=m.name), 3.0, progress=False).nnz
                 for m in meshes]
        out[f"{sum(m.n_vertices for m in meshes)}_vertices"] = {
            "seconds": time.perf_counter() - start, "mean_disk_size": sum(sizes) / sum(m.n_vertices for m in meshes)}
    return out


def _subdivide(mesh):
    """Each triangle into four (edge midpoints): 4x the faces, about 4x the vertices."""
    from brainprobe.roi import Mesh

    faces = mesh.faces
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    mid = mesh.n_vertices + inverse.reshape(3, -1).T  # midpoints of edges (01, 12, 20) of each face
    coordinates = np.concatenate([mesh.coordinates, mesh.coordinates[unique].mean(axis=1)])
    a, b, c = faces.T
    ab, bc, ca = mid.T
    new_faces = np.concatenate([np.column_stack(f) for f in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return Mesh(coordinates, new_faces, name=f"{mesh.name} subdivided")


def child(step: str, n: int) -> None:
    import rsatoolbox  # noqa: F401  (imported before any timing: its import is not its work)
    import torch  # noqa: F401  (the baseline counts what every brainprobe process maps)

    import brainprobe.rsa  # noqa: F401

    baseline = _peak_gib()
    cpu = time.process_time()
    row = globals()[f"step_{step}"](n)
    # the machine is shared: the load beside the run says how far its seconds are inflated
    row.update(step=step, n_images=n, peak_gib=_peak_gib(), baseline_gib=baseline, peak_source="VmHWM",
               cpu_seconds_in_process=time.process_time() - cpu, load_average_1min=os.getloadavg()[0])
    print("ROW " + json.dumps(row, default=float))


def run_child(script: Path, key: str, name: str, n: int, cap_s: float, timeout: float | None = None) -> dict:
    """Run ``script --child name n`` in a fresh process (its own peak memory) and read its ROW line."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(script), "--child", name, str(n), "--cap-s", str(cap_s)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {key: name, "n_images": n, "failed": f"timed out after {timeout:.0f} s"}
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        return {key: name, "n_images": n, "failed": done.stderr[-1500:]}
    row = json.loads(rows[-1])
    row["wall_s"] = time.perf_counter() - start
    row["cpu"] = machine_description()["cpu"]  # merged reports hold rows of several machines
    return row


def previous_rows(previous: dict) -> list[dict]:
    """The rows of an earlier report, each naming the CPU it ran on (older rows: the report's)."""
    cpu = previous.get("machine", {}).get("cpu", "unknown")
    return [{"cpu": cpu, **row} for row in previous.get("rows", [])]


def run_row(step: str, n: int, timeout: float) -> dict:
    return run_child(Path(__file__).resolve(), "step", step, n, STEP_CAP_S, timeout)


def growth_exponents(rows: list[dict]) -> dict:
    out = {}
    for step in STEPS:
        points = sorted((r["n_images"], r["seconds"]) for r in rows
                        if r.get("step") == step and r.get("seconds") and r.get("n_images"))
        if len(points) >= 2:
            x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
            out[step] = {"seconds": float(np.polyfit(x, y, 1)[0]), "sizes": [p[0] for p in points]}
    return out


def main() -> None:
    global STEP_CAP_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 1000])
    parser.add_argument("--steps", nargs="+", default=list(STEPS) + ["disks"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale.json"))
    parser.add_argument("--merge", action="store_true", help="add the rows to the existing JSON")
    parser.add_argument("--cap-s", type=float, default=STEP_CAP_S,
                        help="seconds a step may take before it is extrapolated from fewer resamples")
    parser.add_argument("--timeout-s", type=float, default=None,
                        help="seconds before a step's process is stopped (default 3 x --cap-s; a 10,000-image "
                             "step measures its setup twice, once per call, which can take longer)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    STEP_CAP_S = args.cap_s
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    from _common import device_description, write_report

    out = Path(args.out)
    previous = json.loads(out.read_text()) if args.merge and out.is_file() else {}
    rows = previous_rows(previous)
    for step in args.steps:
        for n in ([0] if step == "disks" else args.sizes):
            default_timeout = STUDY_TIMEOUT_S if step.startswith("study") else 3 * STEP_CAP_S
            row = run_row(step, n, timeout=args.timeout_s or default_timeout)
            rows = [r for r in rows if not (r.get("step") == step and r.get("n_images") == n)] + [row]
            print(json.dumps(row, default=float))
    for row in rows:
        for peer in ("rsatoolbox_s", "ridge_s"):
            if row.get(peer) and row.get("seconds"):
                row[f"speedup_vs_{peer[:-2]}"] = row[peer] / row["seconds"]
    machine = machine_description()
    if "note" in previous.get("machine", {}):  # what was said of the machine (its sharing) still holds
        machine["note"] = previous["machine"]["note"]
    report = {"device": device_description(), "machine": machine, "units": UNITS, "n_perm": N_PERM, "n_boot": N_BOOT,
              "peer_cap_s": PEER_CAP_S, "step_cap_s": STEP_CAP_S,
              "rows": sorted(rows, key=lambda r: (r.get("step", ""), r.get("n_images", 0))),
              "growth_exponents": growth_exponents(rows)}
    write_report(report, out)


if __name__ == "__main__":
    main()
