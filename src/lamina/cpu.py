"""How many cores this process may use: its CPU affinity (``taskset``, a container's cpuset, a test
worker pinned to one core), not the machine's count, so that threads never outnumber the cores."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform (macOS, Windows)
        return os.cpu_count() or 1


def restricted() -> bool:
    """Whether this process may use fewer cores than the machine has."""
    return available_cores() < (os.cpu_count() or 1)
