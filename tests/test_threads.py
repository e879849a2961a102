"""torch CPU threads follow the free cores (oversubscribed OpenMP threads are many times slower)."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

import nicegan.common as threads
from nicegan.common import busy_cores, cpu_threads
from nicegan.runtime.backends import open_backend

JIFFIES_PER_WINDOW = 200


def on_two_cores(monkeypatch, busy: float, stale_load: float = 0.0) -> None:
    """Two cores, `busy` of them busy over the sampling window; the load average says `stale_load`."""
    ticks = iter([(1000, 600), (1000 + JIFFIES_PER_WINDOW, 600 + round(JIFFIES_PER_WINDOW * (1 - busy / 2)))])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (stale_load, stale_load, stale_load))
    monkeypatch.setattr(threads, "_cpu_ticks", lambda: next(ticks))


def test_cpu_threads_leave_busy_cores_alone(monkeypatch):
    on_two_cores(monkeypatch, 0.1)
    assert cpu_threads() == 2
    on_two_cores(monkeypatch, 1.2)
    assert cpu_threads() == 1
    on_two_cores(monkeypatch, 2.0)
    assert cpu_threads() == 1
    assert cpu_threads(3) == 3  # an explicit request wins


def test_a_job_that_just_ended_does_not_count(monkeypatch):
    """The load average still says 1.9 a minute after a 2-thread job ended; the cores are free."""
    on_two_cores(monkeypatch, busy=0.0, stale_load=1.9)
    assert cpu_threads() == 2


def test_without_proc_stat_the_load_average_decides(monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "PROC_STAT", str(tmp_path / "missing"))
    monkeypatch.setattr(os, "getloadavg", lambda: (1.25, 1.0, 1.0))
    assert busy_cores(0.0) == 1.25


def test_a_spinning_process_is_seen_as_one_busy_core():
    spin = "import time\nprint('spinning', flush=True)\nend = time.time() + 5\nwhile time.time() < end: pass"
    spinner = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout.readline().strip() == "spinning"
        assert busy_cores(0.5) >= 0.7   # other load only adds to it
    finally:
        spinner.kill()
        spinner.wait()


def test_torch_backend_on_a_busy_cpu_runs_on_the_free_core(monkeypatch, tiny_checkpoint):
    on_two_cores(monkeypatch, 1.2)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with open_backend(tiny_checkpoint, "torch", device="cpu") as backend:
            assert torch.get_num_threads() == 1
            assert backend.device.startswith("CPU (1 threads")
    finally:
        torch.set_num_threads(previous)
