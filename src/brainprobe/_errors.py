"""The errors brainprobe raises on input it cannot use, for users to catch.

Every one is a ``ValueError`` (code that catches ValueError keeps working), and its message names
the file, field or argument, what was expected and what was found. Where a library's error
explains the cause (a corrupt HDF5 file, a CSV parser's line number) it is chained as the
``__cause__``, so the traceback shows both.

``except brainprobe.BrainprobeInputError`` catches them all:

- `InputFileError`: a file that cannot be read, or does not hold what it should (corrupt,
  truncated, another format, a missing field or column, pickled data not allowed).
- `MissingFileError`: a named file or folder that does not exist (also a ``FileNotFoundError``).
- `ConfigError`: a study configuration that cannot run (names the study file and the key).
"""

from __future__ import annotations

__all__ = ["BrainprobeInputError", "ConfigError", "InputFileError", "MissingFileError"]


class BrainprobeInputError(ValueError):
    """Input brainprobe cannot use: an array, table, file or setting (the message names it)."""


class InputFileError(BrainprobeInputError):
    """A file that cannot be read as what it should be, or lacks what it should hold."""


class MissingFileError(BrainprobeInputError, FileNotFoundError):
    """A file or folder that was named as input but does not exist."""


class ConfigError(BrainprobeInputError):
    """A study configuration that cannot run; the message names the file and the key."""


def check_format(manifest, path, expected_format: str, expected_version) -> dict:
    """A file's parsed JSON manifest with its ``format`` and ``version`` checked (InputFileError
    naming the file and the field otherwise): the manifest."""
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputFileError(f"{path}: field 'format': expected {expected_format!r}, found {found!r}")
    if manifest.get("version") != expected_version:
        raise InputFileError(f"{path}: field 'version': expected {expected_version}, found "
                             f"{manifest.get('version')!r} (written by another brainprobe version?)")
    return manifest
