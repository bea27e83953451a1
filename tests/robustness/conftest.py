"""Helpers of the robustness suite: every test proves that nothing of the user's changed."""

import hashlib
from pathlib import Path

import pytest

from _studies import write_photos


def _snapshot(folder) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative posix path -> digest)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_untouched(before: dict[str, str], folder) -> None:
    """Every file recorded in ``before`` is still there with the same bytes."""
    after = _snapshot(folder)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    assert not changed, f"user files changed or removed: {changed}"


@pytest.fixture
def user_images(tmp_path):
    """The user's folder: three small photos, a note and a commented study file."""
    folder = write_photos(tmp_path / "mine")
    (folder / "notes.txt").write_text("my notes, not brainprobe's\n")
    return folder


@pytest.fixture
def snapshot():
    """``snapshot(folder)``: SHA-256 of every file under it."""
    return _snapshot


@pytest.fixture
def assert_untouched():
    """``assert_untouched(before, folder)``: the files of an earlier snapshot are unchanged."""
    return _assert_untouched
