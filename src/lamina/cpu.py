"""How many cores this process may use: its CPU affinity (``taskset``, a container's cpuset, a test
worker pinned to one core), not the machine's count, so that threads never outnumber the cores."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform (macOS, Windows)
        return os.cpu_count() or 1


def restricted_cores() -> int:
    """The cores this process may use when that is fewer than the machine has, else 0 (no limit)."""
    cores = available_cores()
    return cores if cores < (os.cpu_count() or 1) else 0
