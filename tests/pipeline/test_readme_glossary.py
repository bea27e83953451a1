"""Every column the study writes to results/*.csv is explained in the README's glossary, and the
glossary explains no column the study does not write."""

import re

from _readme import section

LIBRARY_ONLY = {"unit_set"}  # the Python functions' name for what the study calls roi / layer
NOT_IN_THE_TINY_STUDY = {"p_fwe"}  # searchlight permutations ([searchlight] n_perm > 0)


def _glossary() -> dict[str, re.Pattern]:
    rows = [line for line in section("Output columns").splitlines() if line.startswith("| `")]
    names = {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}
    return {name: re.compile(re.escape(name).replace(re.escape("<layer>"), r".+") + r"\Z") for name in names}


def test_every_result_column_is_in_the_readme_glossary(tiny_run):
    glossary = _glossary()
    written = {(table, column) for table, frame in tiny_run.tables.items() for column in frame.columns}
    missing = sorted(f"{table}.{column}" for table, column in written
                     if not any(pattern.match(column) for pattern in glossary.values()))
    assert not missing, f"README '## Output columns' lacks {missing}"
    unused = sorted(name for name, pattern in glossary.items()
                    if name not in LIBRARY_ONLY | NOT_IN_THE_TINY_STUDY and not any(pattern.match(column) for _, column in written))
    assert not unused, f"README '## Output columns' explains columns no table has: {unused}"
    assert len(tiny_run.tables) >= 12
