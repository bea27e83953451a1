"""One file format for every synthesis object: settings as JSON text plus tensors, saved with
``torch.save`` and read with ``torch.load(weights_only=True)`` (no pickled code runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .._files import replace_atomically

__all__ = ["read_synthesis", "write_synthesis"]


def write_synthesis(path, settings: dict, tensors: dict, losses, *, overwrite: bool = False) -> Path:
    """Write ``settings`` (JSON-able, with ``method``), tensors and the loss history atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tensors = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in tensors.items()}
    content = {"settings": json.dumps(settings), "losses": torch.from_numpy(np.asarray(losses, dtype=np.float64)),
               **tensors}
    return replace_atomically(path, lambda temporary: torch.save(content, temporary))


def read_synthesis(path, method: str) -> tuple[dict, dict]:
    """The settings and tensors of a file written by `write_synthesis` for ``method``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"synthesis file not found: {path}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if "settings" not in saved:
        raise ValueError(f"{path}: not a brainprobe synthesis file (no 'settings' entry)")
    settings = json.loads(saved["settings"])
    if settings.get("method") != method:
        raise ValueError(f"{path}: holds a {settings.get('method')!r} synthesis, not {method!r}")
    return settings, saved
