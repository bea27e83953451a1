"""Print a pip constraints file that pins every runtime dependency to its floor.

`make test-min` installs brainprobe with these constraints, so the fast tests run against the
oldest releases pyproject.toml claims to support (the idea of scikit-learn's
``_min_dependencies.py``): a floor that is not true fails there, not on a user's machine.

Usage: python .ci/min_dependencies.py [--skip NAME ...] > constraints.txt

Only ``[project].dependencies`` are pinned; the test tools of the extras install at whatever
release fits those pins. ``--skip`` leaves packages out (torch and torchvision are pinned by the
Makefile's TORCH_PINS to the builds on this machine's disk instead).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# "name[extras] >= version ; marker": the only form a floor is written in pyproject.toml
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.+))?$"
)


def floors(requirements: list[str], skip: set[str]) -> list[str]:
    """One ``name==floor`` line per requirement (its marker kept), in pyproject's order."""
    lines = []
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"{PYPROJECT}: cannot read the requirement {requirement!r}")
        name = match["name"]
        if name.lower() in skip:
            continue
        lower = [part.strip()[2:].strip() for part in match["spec"].split(",") if part.strip().startswith(">=")]
        if len(lower) != 1:
            raise SystemExit(f"{PYPROJECT}: {requirement!r} has no single '>=' floor; every runtime "
                             "dependency needs one so that `make test-min` can test it")
        line = f"{name}=={lower[0]}"
        if match["marker"]:
            line += f"; {match['marker']}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], help="package names to leave out")
    args = parser.parse_args(argv)
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    print("# floors of [project].dependencies in pyproject.toml (written by .ci/min_dependencies.py)")
    for line in floors(project["dependencies"], {name.lower() for name in args.skip}):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
