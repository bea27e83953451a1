"""Helpers the benchmarks share: timing with device synchronization, the device line, reports."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

__all__ = ["timed", "device_description", "write_report", "measured_sizes", "report_child", "run_method_process", "compare_methods"]


def timed(fn):
    """(fn(), seconds), waiting for queued CUDA work on both sides."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


def device_description(device: torch.device | None = None) -> str:
    """The device a benchmark ran on, for its report."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.machine()}, {torch.get_num_threads()} torch threads"


def write_report(report: dict, path) -> Path:
    """Write a benchmark's results as JSON and say where.

    Every report names its device (added when the benchmark did not); a run on CUDA goes to
    ``<name>.cuda.json`` so it sits beside the CPU figures instead of replacing them.
    """
    path = Path(path)
    report = {"device": device_description(), **report}
    if report["device"].startswith("cuda") and not path.name.endswith(".cuda.json"):
        path = path.with_name(path.name.removesuffix(".json") + ".cuda.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {path}")
    return path


def measured_sizes(doc: str, child, sizes, quick):
    """``--quick`` and ``--child METHOD N P OUT`` of a benchmark that runs each method in its own
    process (so that its peak resident memory is its own). In such a process, ``child(method,
    n_images, n_units, out)`` runs here and None is returned; else the sizes to measure:
    ``quick`` with ``--quick``, else ``sizes``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "N", "P", "OUT"))
    args = parser.parse_args()
    if args.child:
        method, n_images, n_units, out = args.child
        child(method, int(n_images), int(n_units), Path(out))
        return None
    return quick if args.quick else sizes


def report_child(seconds: float, cpu_seconds: float, **extra) -> None:
    """A child's last line: its times, this process's peak resident memory and ``extra``, as JSON
    (what `run_method_process` reads)."""
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_gib": peak_gib, **extra}))


def run_method_process(script, method: str, n_images: int, n_units: int, out) -> dict:
    """Run ``script --child method n_images n_units out`` and read the JSON its last line prints."""
    done = subprocess.run([sys.executable, str(script), "--child", method, str(n_images), str(n_units), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_methods(script, before: str, now: str, n_images: int, n_units: int, folder, suffix: str) -> dict:
    """Both methods run in their own processes (`run_method_process`), each writing
    ``folder/<method><suffix>``: their JSON by name, and how much faster (wall and CPU) ``now`` is."""
    row = {method: run_method_process(script, method, n_images, n_units, Path(folder) / f"{method}{suffix}")
           for method in (before, now)}
    row["speedup"] = row[before]["seconds"] / row[now]["seconds"]
    row["cpu_speedup"] = row[before]["cpu_seconds"] / row[now]["cpu_seconds"]
    return row
