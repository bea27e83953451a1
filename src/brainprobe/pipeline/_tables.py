"""What a run writes beside its results: tidy tables as CSV, and the versions it ran with.

The lowest module of the pipeline (it imports only `_cache`): the study, its report and its
synthesis step all read and write tables through it, so none of them imports another to do so.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import pandas as pd

from .._files import EXACT_FLOATS
from ._cache import atomic_write

__all__ = ["STRING_COLUMNS", "environment", "read_table", "write_table"]

# columns that hold names, never numbers (an image called "0001" stays "0001")
STRING_COLUMNS = ("image_id", "source_id", "category", "kind", "hemi", "subject", "roi", "layer", "pair",
                  "top1_name", "test_kind", "measurement", "best_layer", "comparison", "step", "label", "key", "network")


def write_table(path, frame: pd.DataFrame) -> Path:
    """Write a tidy table as CSV, atomically; NaN as ``NaN`` so empty strings survive."""
    return atomic_write(path, frame.to_csv(index=False, na_rep="NaN"))


def read_table(path) -> pd.DataFrame:
    """Read a table written by `write_table` with its name columns as strings.

    Floats are parsed exactly as written (`brainprobe._files.EXACT_FLOATS`): a cached table must
    equal the one that was computed.
    """
    path = Path(path)
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, keep_default_na=False, dtype={c: str for c in STRING_COLUMNS if c in header},
                       na_values={c: [] if c in STRING_COLUMNS else ["NaN"] for c in header}, **EXACT_FLOATS)


def environment() -> dict:
    """Versions of the packages a result depends on (for the report)."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("brainprobe", "numpy", "scipy", "pandas", "scikit-learn", "torch", "torchvision", "nilearn",
                    "nibabel", "matplotlib", "joblib"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
