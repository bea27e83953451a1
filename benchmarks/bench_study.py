"""The whole demo study (issue 8's goal: under 10 minutes on 2 CPU cores), step by step.

Runs `brainprobe demo` in a fresh output folder with a fresh neighbourhood cache (what a new user
gets), then reruns it to time the cached path, and writes the step log to
benchmarks/results/study.json.

    python benchmarks/bench_study.py [--subjects 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import device_description, write_report

from brainprobe.pipeline import Study, demo_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["BRAINPROBE_CACHE"] = str(Path(folder) / "cache")
        config = demo_config(Path(folder) / "demo", subjects={"simulate": args.subjects})
        start = time.perf_counter()
        first = Study(config, progress=False).run()
        fresh = time.perf_counter() - start
        start = time.perf_counter()
        Study(config, overwrite=True, progress=False).run()
        cached = time.perf_counter() - start
    steps = first.log.groupby("step", sort=False)["seconds"].sum().round(1).to_dict()
    figures_and_report = fresh - float(first.log["seconds"].sum())
    print(f"demo study, {args.subjects} subjects: {fresh:.0f} s fresh (goal < 600 s), {cached:.0f} s from the cache")
    for step, seconds in steps.items():
        print(f"  {step:<14} {seconds:7.1f} s")
    print(f"  {'disks, figures, report':<14} {figures_and_report:7.1f} s")
    write_report({"device": device_description(), "subjects": args.subjects, "fresh_seconds": fresh,
                  "cached_seconds": cached, "goal_seconds": 600, "steps_seconds": steps,
                  "other_seconds (disks, figures, report)": figures_and_report},
                 Path(__file__).parent / "results" / "study.json")


if __name__ == "__main__":
    main()
