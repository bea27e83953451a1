"""The README's code blocks, by section, for the tests that run them as written."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def section(heading: str) -> str:
    """The text under ``## heading``, up to the next ``## `` heading."""
    text = README.read_text()
    if f"## {heading}\n" not in text:
        raise KeyError(f"README.md has no section '## {heading}'")
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def section_blocks(heading: str) -> dict[str, str]:
    """The fenced code blocks of a section by language (``toml``, ``python``); one of each at most."""
    own_text = re.split(r"^### ", section(heading), maxsplit=1, flags=re.M)[0]  # not its ### subsections
    blocks = re.findall(r"```(toml|python)\n(.*?)```", own_text, flags=re.S)
    languages = [language for language, _ in blocks]
    if len(set(languages)) != len(languages):
        raise ValueError(f"README.md '## {heading}': more than one block of a language: {languages}")
    return dict(blocks)


def glossary() -> dict[str, re.Pattern]:
    """The columns ``## Output columns`` explains, each as a pattern (``r_<layer>`` matches ``r_conv1``)."""
    rows = [line for line in section("Output columns").splitlines() if line.startswith("| `")]
    names = {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}
    return {name: re.compile(re.escape(name).replace(re.escape("<layer>"), r".+") + r"\Z") for name in names}


def unexplained_columns(tables: dict) -> list[str]:
    """``table.column`` of every column of ``tables`` (name -> DataFrame) the glossary lacks."""
    patterns = glossary().values()
    return sorted(f"{table}.{column}" for table, frame in tables.items() for column in frame.columns
                  if not any(pattern.match(column) for pattern in patterns))


def subsection_blocks(heading: str, subheading: str) -> dict[str, str]:
    """The fenced code blocks of ``### subheading`` inside ``## heading``, by language."""
    text = section(heading)
    if f"### {subheading}\n" not in text:
        raise KeyError(f"README.md '## {heading}' has no subsection '### {subheading}'")
    own_text = re.split(r"^### ", text.split(f"### {subheading}\n", 1)[1], maxsplit=1, flags=re.M)[0]
    blocks = re.findall(r"```(toml|python)\n(.*?)```", own_text, flags=re.S)
    languages = [language for language, _ in blocks]
    if len(set(languages)) != len(languages):
        raise ValueError(f"README.md '### {subheading}': more than one block of a language: {languages}")
    return dict(blocks)
