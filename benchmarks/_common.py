"""Helpers the benchmarks share: timing with device synchronization, the device line, reports."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

__all__ = ["timed", "device_description", "write_report"]


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
