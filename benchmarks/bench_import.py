"""Start-up cost of the ``brainprobe`` command: what ``brainprobe --help`` imports, and how long.

(a) ``python -X importtime -c "import brainprobe.cli"``: the cumulative import time of
    brainprobe.cli, its slowest imports, and whether torch, matplotlib, nilearn, pandas or scipy
    were imported (they must not be: the subcommands import them when they run).
(b) Wall time of ``python -m brainprobe.cli --help`` (median of repeated runs, each a fresh
    interpreter), side by side with an eager package: the same interpreter importing every
    subpackage first, which is what ``--help`` would cost if cli.py or brainprobe/__init__.py
    imported them at the top. The goal is < 1 s.

Usage:  python benchmarks/bench_import.py [--repeats 5] [--out benchmarks/results/import.json]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import write_report

HEAVY = ("torch", "matplotlib", "nilearn", "pandas", "scipy")
SUBPACKAGES = ("models", "stimuli", "adversarial", "synth", "data", "roi", "rsa", "encoding", "stats", "plotting",
               "pipeline")
BUDGET_S = 1.0


def import_profile() -> dict:
    """Parse ``-X importtime`` (microseconds: self | cumulative | module) for brainprobe.cli."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import brainprobe.cli"],
                            capture_output=True, text=True, check=True, env=os.environ)
    rows = []
    for line in result.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            rows.append((found.group(4), int(found.group(1)), int(found.group(2))))
    cumulative = {name: total for name, _, total in rows}
    slowest = sorted(rows, key=lambda row: row[2], reverse=True)[:8]
    return {
        "import_brainprobe_cli_s": cumulative["brainprobe.cli"] / 1e6,
        "modules_imported": len(rows),
        "slowest_cumulative_s": {name: total / 1e6 for name, _, total in slowest},
        "heavy_modules_imported": sorted({name.split(".")[0] for name, _, _ in rows} & set(HEAVY)),
    }


def wall_seconds(code: list[str], repeats: int) -> float:
    """Median wall time of a fresh interpreter running ``code``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *code], capture_output=True, check=True, env=os.environ)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "import.json"))
    args = parser.parse_args()
    profile = import_profile()
    lazy = wall_seconds(["-m", "brainprobe.cli", "--help"], args.repeats)
    eager_code = "; ".join(f"import brainprobe.{name}" for name in SUBPACKAGES)
    eager = wall_seconds(["-c", f"{eager_code}; import sys; sys.argv = ['brainprobe', '--help']; "
                          "import brainprobe.cli as c; c.main()"], args.repeats)
    print(f"import brainprobe.cli: {profile['import_brainprobe_cli_s'] * 1000:.0f} ms "
          f"({profile['modules_imported']} modules; heavy ones: {profile['heavy_modules_imported'] or 'none'})")
    print(f"brainprobe --help: {lazy:.2f} s lazy vs {eager:.2f} s with every subpackage imported "
          f"({eager / lazy:.0f}x); budget {BUDGET_S} s: {'met' if lazy < BUDGET_S else 'MISSED'}")
    write_report({"python": sys.version.split()[0], "repeats": args.repeats, **profile,
                  "help_wall_s": lazy, "help_wall_eager_s": eager, "eager_over_lazy": eager / lazy,
                  "budget_s": BUDGET_S, "within_budget": lazy < BUDGET_S}, args.out)


if __name__ == "__main__":
    main()
