"""torch CPU threads follow the free cores (oversubscribed OpenMP threads are many times slower)."""
from __future__ import annotations

import os

import torch

from runtime.backends import open_backend
from trainer.threads import cpu_threads


def on_two_cores(monkeypatch, load: float) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))


def test_cpu_threads_leave_busy_cores_alone(monkeypatch):
    on_two_cores(monkeypatch, 0.1)
    assert cpu_threads() == 2
    on_two_cores(monkeypatch, 1.2)
    assert cpu_threads() == 1
    on_two_cores(monkeypatch, 9.0)
    assert cpu_threads() == 1
    assert cpu_threads(3) == 3  # an explicit request wins


def test_torch_backend_on_a_busy_cpu_runs_on_the_free_core(monkeypatch, tiny_checkpoint):
    on_two_cores(monkeypatch, 1.2)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with open_backend(tiny_checkpoint, "torch", device="cpu") as backend:
            assert torch.get_num_threads() == 1
            assert backend.device == "CPU (1 threads)"
    finally:
        torch.set_num_threads(previous)
