"""Memory estimated before it is taken: an allocation that cannot fit is refused with the number
and the setting to change, instead of a crash (or the machine swapping) minutes later."""

from __future__ import annotations

import os

__all__ = ["available_bytes", "check_allocation"]


def available_bytes() -> int:
    """Memory this process can take now: ``MemAvailable`` of ``/proc/meminfo`` where there is one,
    else the physical memory."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: refuse nothing


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:,.1f} GiB"


def check_allocation(n_bytes: float, what: str, change: str) -> None:
    """Refuse when ``n_bytes`` (an estimate of what ``what`` will hold at once) exceeds the memory
    available.

    Raises
    ------
    ValueError
        ``"<what> would need <n> GiB at once, more than the <m> GiB available; <change>"``.
    """
    limit = available_bytes()
    if n_bytes > limit:
        raise ValueError(f"{what} would need {_gib(n_bytes)} at once, more than the {_gib(limit)} available; {change}")
