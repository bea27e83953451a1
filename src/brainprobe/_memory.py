"""Memory, in one place: the budget that sizes the chunks of every resampling, searchlight and
extraction loop, and the check that refuses an allocation that cannot fit.

Chunked loops never change a result: a chunk size only decides how many resamples (or rows,
centres, sets) are held at once, never the order of any sum. The budget therefore trades speed
against memory only. It comes from, first to last: a function's ``memory_gb`` argument, the
budget set by `set_memory_budget` (the pipeline sets it from ``[compute] memory_gb``), the
environment variable ``BRAINPROBE_MEMORY_GB``, and a quarter of the machine's physical memory.

What no chunking can shrink (an output, or the arrays a step holds whole) is estimated before it
is taken: `check_allocation` refuses it with the number and the setting to change, instead of a
crash (or the machine swapping) minutes later.
"""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "available_bytes",
    "check_allocation",
    "memory_budget",
    "set_memory_budget",
    "memory_budget_bytes",
    "release_mapped",
    "DEFAULT_MEMORY_FRACTION",
]

# share of physical memory a step may use by default: leaves room for the arrays the caller holds,
# other processes and other Dask workers on the same machine
DEFAULT_MEMORY_FRACTION = 0.25
_FALLBACK_GB = 4.0
_budget_gb: float | None = None


def _physical_bytes() -> int | None:
    """The machine's physical memory, or None where the platform does not report it."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


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
    physical = _physical_bytes()
    return 1 << 62 if physical is None else physical  # unknown: refuse nothing


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


def _check_gb(memory_gb, name: str = "memory_gb") -> float | None:
    """A budget in GiB as a float; 0 (the study file's default) is None: the default budget."""
    if isinstance(memory_gb, bool) or not isinstance(memory_gb, (int, float)) or not memory_gb >= 0:
        raise ValueError(f"{name}: expected a positive number of GiB (0: the default, a quarter of the "
                         f"machine's memory), found {memory_gb!r}")
    return float(memory_gb) or None


def memory_budget_bytes(memory_gb: float | None = None) -> int:
    """Bytes a chunked loop may hold at once (see the module's text for where it comes from)."""
    if memory_gb is not None and _check_gb(memory_gb) is not None:
        return int(_check_gb(memory_gb) * 2**30)
    if _budget_gb is not None:
        return int(_budget_gb * 2**30)
    environment = os.environ.get("BRAINPROBE_MEMORY_GB", "").strip()
    if environment:
        try:
            value = float(environment)
        except ValueError:
            raise ValueError(f"environment variable BRAINPROBE_MEMORY_GB: expected a number of GiB, "
                             f"found {environment!r}") from None
        if _check_gb(value, "BRAINPROBE_MEMORY_GB") is not None:
            return int(value * 2**30)
    physical = _physical_bytes()
    if physical is None:  # not every platform reports it
        return int(_FALLBACK_GB * 2**30)
    return int(DEFAULT_MEMORY_FRACTION * physical)


def set_memory_budget(memory_gb: float | None) -> None:
    """Set the process-wide budget in GiB (``None`` or 0: back to the default)."""
    global _budget_gb
    _budget_gb = None if memory_gb is None else _check_gb(memory_gb)


@contextlib.contextmanager
def memory_budget(memory_gb: float | None):
    """Use ``memory_gb`` GiB as the budget inside a ``with`` block.

    Examples
    --------
    >>> from brainprobe.stats import memory_budget, rdm_permutation_test
    >>> with memory_budget(2):  # doctest: +SKIP
    ...     result = rdm_permutation_test(rdm_a, rdm_b, n_perm=1000)
    """
    global _budget_gb
    previous = _budget_gb
    set_memory_budget(memory_gb)
    try:
        yield
    finally:
        _budget_gb = previous


def release_mapped(array) -> None:
    """Give back the pages of a memory-mapped array (``np.memmap`` or a view of one) that were read.

    A file-backed page stays in this process's resident memory after it is read, until the
    system needs it: a loop that reads a 6 GB memory map a block at a time would otherwise end
    up holding all of it (and report it as its peak). The pages are read again from the file (or
    the system's cache) when used. Arrays that are not memory maps are left alone.
    """
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)
