"""CPU thread count for torch on machines that other processes share."""
from __future__ import annotations

import os


def cpu_threads(requested: int = 0) -> int:
    """`requested`, or (0) the cores not already busy: on a shared machine, OpenMP threads that
    outnumber the free cores spin against each other and a forward gets many times slower."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - busy)))
