"""The one device policy of brainprobe (as himalaya's backend is for its arrays).

Two rules, used by every torch computation (RDMs, the unit bootstrap, ROMP, the synthesis core,
adversarial images, extraction):

- Work that owns its tensors (an RDM of an array, a ROMP fit) runs where `resolve_device` says:
  the device asked for, validated, else CUDA when present, else the CPU.
- Work on a user's network runs where that network already is, unless a device is asked for; then
  `model_on` moves it there for the call and puts it back afterwards. Nothing here leaves a
  user's network on another device than the one they put it on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["model_on", "module_device", "resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; None means CUDA when available, else CPU.

    Raises
    ------
    ValueError
        For a name torch does not know (``"gpu0"``), or a CUDA device on a machine without
        CUDA (or without that many GPUs).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', found {device!r}") from None
    if found.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine; use 'cpu' or leave "
                             "the device unset (CUDA when present)")
        if found.index is not None and found.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if found.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use 'cpu'")
    return found


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module with neither)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _same_device(a: torch.device, b: torch.device) -> bool:
    # "cuda" (no index) means the current CUDA device: cuda:0 unless the user changed it
    if a.type != b.type:
        return False
    if a.type == "cuda" and (a.index is None or b.index is None):
        current = torch.cuda.current_device()
        return (current if a.index is None else a.index) == (current if b.index is None else b.index)
    return a.index == b.index


@contextlib.contextmanager
def model_on(model: nn.Module, device: str | torch.device | None = None) -> Iterator[torch.device]:
    """Run ``model`` on ``device`` inside the block; yields the device the work runs on.

    ``device=None`` keeps the model where it is (its own device). Any other device is validated
    by `resolve_device`; the model is moved there for the block and moved back to where it was
    when the block ends, also on an error.
    """
    home = module_device(model)
    target = home if device is None else resolve_device(device)
    if _same_device(target, home):
        yield home
        return
    model.to(target)
    try:
        yield module_device(model)
    finally:
        model.to(home)
