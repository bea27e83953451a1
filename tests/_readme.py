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
    blocks = re.findall(r"```(toml|python)\n(.*?)```", section(heading), flags=re.S)
    languages = [language for language, _ in blocks]
    if len(set(languages)) != len(languages):
        raise ValueError(f"README.md '## {heading}': more than one block of a language: {languages}")
    return dict(blocks)
