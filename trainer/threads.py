"""CPU facts for torch: thread count on machines that other processes share, native bf16."""
from __future__ import annotations

import os
import time

PROC_STAT = "/proc/stat"


def cpu_threads(requested: int = 0) -> int:
    """`requested`, or (0) the cores not already busy: on a shared machine, OpenMP threads that
    outnumber the free cores spin against each other and a forward gets many times slower."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, round((os.cpu_count() or cores) - busy_cores())))


def busy_cores(window_s: float = 0.1) -> float:
    """How many of the machine's cores are busy now, measured over `window_s` from /proc/stat.

    Not the load average: it lags by a minute, so right after a job ends (a previous
    `nicegan translate`, a benchmark's earlier runner) it still counts that job's threads and the
    next one would get half the cores for nothing. Without /proc (not Linux), the load average."""
    try:
        first = _cpu_ticks()
        time.sleep(window_s)
        second = _cpu_ticks()
    except (OSError, ValueError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    total, idle = second[0] - first[0], second[1] - first[1]
    return (os.cpu_count() or 1) * (1.0 - idle / total) if total > 0 else 0.0


def _cpu_ticks() -> tuple[int, int]:
    """(all, idle) jiffies of the machine from /proc/stat's `cpu` line; idle includes iowait."""
    with open(PROC_STAT, encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: without either, torch emulates bf16 matmuls and convolutions, and bf16
    autocast made a ch-32 training step 15x slower than fp32 at 128 px on an AVX2-only AMD EPYC
    (docs/BENCHMARKS.md)."""
    import torch
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)
