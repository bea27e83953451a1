"""Activation extraction in memory vs streamed to disk (``extract(..., out=folder)``): time and peak memory.

AlexNet (torchvision, random weights), layers conv1..fc8 (~494,000 units, ~2 MB per image in
float32), ``N`` random 224 px images, batches of ``BATCH``. Each mode runs in a fresh subprocess,
so its peak resident memory (``VmHWM`` of ``/proc/self/status``) is its own; ``baseline_gib`` is
that process's peak after the imports, the network and the images are in memory, so
``added_gib = peak_gib - baseline_gib`` is what extraction itself took. ``seconds`` is wall time
and ``cpu_seconds`` the process's CPU time (on a shared machine the steadier figure).

- ``memory``: ``extract(model, images)``, every layer's (n_images, n_units) array in memory.
- ``stream``: ``extract(model, images, out=folder)``, each batch appended to one ``.npy`` per
  layer; the result is read-only memory maps. The peak is taken before anything reads them.

Both modes hash every layer's float32 bytes (SHA-256) after the peak is taken, so the report says
whether the two results are identical bit for bit.

``--study`` measures instead a study's activations step (``StepCache.run`` with the study's own
compute, save and load: extraction, the cache's files and their checksums, the value loaded back),
and adds it to the existing JSON under ``study_activations_step`` (the rows above are kept):

- ``study_memory``: activations within ``[compute] memory_gb``: held in memory, one ``.npz``.
- ``study_stream``: activations over the budget (forced here with a budget of 0): streamed into
  the step's folder, one ``.npy`` per layer, loaded back as memory maps.
- ``study_memory_before`` (with ``--before-src``): the step of a checkout from before streaming.

Usage:  OMP_NUM_THREADS=2 python benchmarks/bench_extract_stream.py [--n 2000] [--out benchmarks/results/extract_stream.json]
        [--before-src /path/to/other/src]   (also runs the memory mode on another checkout's code)
        [--study]                           (the study's activations step instead, e.g. --n 400)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 2000
BATCH = 32
SIDE = 224
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


def _peak_gib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 2**20


def _layer_hashes(activations) -> dict[str, str]:
    hashes = {}
    for layer, values in activations.items():
        digest = hashlib.sha256()
        for start in range(0, len(values), 256):  # a block of rows at a time: maps stay bounded
            digest.update(memoryview(values[start:start + 256].tobytes()))
        hashes[layer] = digest.hexdigest()
    return hashes


def _study_step(model, images, mode: str, folder: str):
    """A study's activations step, as `Study` runs it (or as it ran before streaming existed)."""
    import inspect

    from brainprobe.models import extract
    from brainprobe.pipeline import _study
    from brainprobe.pipeline._cache import StepCache

    cache = StepCache(Path(folder) / ".cache")
    if "into_folder" not in inspect.signature(StepCache.run).parameters:  # --before-src: no streaming there
        value, _ = cache.run("activations", "bench", lambda: extract(model, images, LAYERS, batch_size=BATCH,
                                                                      progress=False),
                             _study._save_activations, _study._load_activations)
        return value
    from brainprobe.models._extract import extract_within

    budget = 0 if mode == "study_stream" else 1 << 62  # forced either way

    def compute(staging):
        return extract_within(model, images, LAYERS, spill=staging / _study.ACTIVATIONS_FOLDER, memory_bytes=budget,
                              batch_size=BATCH, progress=False)

    value, _ = cache.run("activations", "bench", compute, _study._save_activations, _study._load_activations,
                         into_folder=True)
    return value


def child(mode: str, n: int, folder: str) -> None:
    import torch

    from brainprobe.models import extract, load_model

    model = load_model("alexnet", weights=None, device="cpu")
    images = torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    baseline = _peak_gib()
    cpu, start = time.process_time(), time.perf_counter()
    if mode.startswith("study"):
        activations = _study_step(model, images, mode, folder)
    else:
        # the memory mode passes no `out` at all: it also runs on a checkout without streaming (--before-src)
        stream = {"out": Path(folder) / "acts"} if mode == "stream" else {}
        activations = extract(model, images, LAYERS, batch_size=BATCH, progress=False, **stream)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    peak = _peak_gib()  # before the hashes read the maps back
    n_bytes = sum(values.nbytes for values in activations.values())
    row = dict(mode=mode, n_images=n, seconds=seconds, cpu_seconds=cpu_seconds, peak_gib=peak,
               baseline_gib=baseline, added_gib=peak - baseline, activation_gib=n_bytes / 2**30,
               units=int(sum(values.shape[1] for values in activations.values())),
               memmapped=all(type(values).__name__ == "memmap" for values in activations.values()),
               torch_threads=torch.get_num_threads(), load_average_1min=os.getloadavg()[0],
               sha256=_layer_hashes(activations))
    print("ROW " + json.dumps(row))


def run_mode(mode: str, n: int, src: str | None = None) -> dict:
    folder = tempfile.mkdtemp(prefix="bench_extract_stream.")
    environment = dict(os.environ)
    if src:
        environment["PYTHONPATH"] = src + os.pathsep + environment.get("PYTHONPATH", "")
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", mode, str(n), folder],
                              capture_output=True, text=True, env=environment, timeout=1800)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode != 0 or not rows:
        return {"mode": mode, "n_images": n, "failed": done.stderr[-1500:]}
    return json.loads(rows[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_IMAGES)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "extract_stream.json"))
    parser.add_argument("--before-src", help="another checkout's src/ whose in-memory extraction is measured too")
    parser.add_argument("--study", action="store_true", help="the study's activations step, added to --out")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    from _common import device_description, write_report

    if args.study:
        study(args)
        return
    rows = [run_mode("memory", args.n), run_mode("stream", args.n)]
    if args.before_src:
        rows.append({**run_mode("memory", args.n, args.before_src), "mode": "memory_before", "src": args.before_src})
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "sha256"}))
    by_mode = {row["mode"]: row for row in rows if "failed" not in row}
    report = {"device": device_description(), "n_images": args.n, "batch_size": BATCH, "image_side": SIDE,
              "layers": LAYERS, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "rows": rows}
    if {"memory", "stream"} <= set(by_mode):
        memory, stream = by_mode["memory"], by_mode["stream"]
        report["ratios_stream_over_memory"] = {
            "seconds": stream["seconds"] / memory["seconds"],
            "cpu_seconds": stream["cpu_seconds"] / memory["cpu_seconds"],
            "peak_gib": stream["peak_gib"] / memory["peak_gib"],
            "added_gib": stream["added_gib"] / memory["added_gib"],
        }
        report["identical_bytes"] = memory["sha256"] == stream["sha256"]
        print("stream / memory:", json.dumps(report["ratios_stream_over_memory"]),
              "identical:", report["identical_bytes"])
    write_report(report, args.out)


def study(args) -> None:
    """The study's activations step in memory vs streamed, added to the report at ``--out``."""
    from _common import write_report

    rows = [run_mode("study_memory", args.n), run_mode("study_stream", args.n)]
    if args.before_src:
        rows.append({**run_mode("study_memory", args.n, args.before_src), "mode": "study_memory_before",
                     "src": args.before_src})
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "sha256"}))
    by_mode = {row["mode"]: row for row in rows if "failed" not in row}
    section = {"n_images": args.n, "batch_size": BATCH, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               "rows": rows}
    if {"study_memory", "study_stream"} <= set(by_mode):
        memory, stream = by_mode["study_memory"], by_mode["study_stream"]
        section["ratios_stream_over_memory"] = {key: stream[key] / memory[key]
                                                for key in ("seconds", "cpu_seconds", "peak_gib", "added_gib")}
        # every row, the checkout from before streaming included
        section["identical_bytes"] = len({json.dumps(row["sha256"], sort_keys=True) for row in by_mode.values()}) == 1
        print("study step, stream / memory:", json.dumps(section["ratios_stream_over_memory"]),
              "identical:", section["identical_bytes"])
    path = Path(args.out)
    report = json.loads(path.read_text()) if path.is_file() else {}
    write_report({**report, "study_activations_step": section}, path)


if __name__ == "__main__":
    main()
