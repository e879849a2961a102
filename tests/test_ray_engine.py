"""`--engine ray` on a real local Ray cluster (2 workers on this machine) with a real model and
real images: the same outputs as the local engine, a worker or the driver SIGKILLed mid-job, and
the bounded retries of an input that kills its worker."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from nicegan.runtime.distributed import AttemptGuard
from nicegan.runtime.jobs import Unit
from nicegan.runtime.pipeline import TranslateReport
from runtime_fixtures import output_files, photo

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nicegan[ray]', Python 3.10+)")

IMAGES = 90


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray") / "in"
    (root / "deep").mkdir(parents=True)
    names = ["chelsea", "coffee", "rocket", "astronaut"]
    for i in range(IMAGES):
        folder = root / "deep" if i % 4 == 0 else root
        cv2.imwrite(str(folder / f"{i:03d}.png"), photo(names[i % 4], 96, 128))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a whole png")
    return root


def nicegan(*args: object) -> list[str]:
    return [sys.executable, "-m", "nicegan.cli", "translate", *map(str, args)]


def ray_job(photos: Path, out: Path, model: Path, *extra: object) -> list[str]:
    return nicegan(photos, out, "-m", model, "--backend", "onnxruntime", "--engine", "ray", "--num-workers", 2,
                   "--part-size", 3, "--no-progress", *extra)


def finished(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): cv2.imread(str(p)) for p in output_files(folder)
            if not p.name.startswith(".") and ".nicegan" not in p.parts}


@pytest.fixture(scope="module")
def local_outputs(photos, tiny_onnx, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("local") / "out"
    done = subprocess.run(nicegan(photos, out, "-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "broken.png" in done.stdout, done.stderr
    return finished(out)


def assert_same_outputs(folder: Path, want: dict[str, np.ndarray]) -> None:
    got = finished(folder)
    assert sorted(got) == sorted(want) and len(got) == IMAGES
    assert all(image is not None for image in got.values())          # every output decodes
    assert all(np.abs(got[k].astype(int) - want[k]).max() <= 1 for k in want)
    assert not [p for p in output_files(folder) if p.name.startswith(".") and ".nicegan" not in p.parts]


def processes(*needles: str) -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines()[1:]
            if any(n in line for n in needles) and "defunct" not in line]


def worker_pids() -> list[int]:
    return processes("ray::MapWorker")


def counts(summary: str) -> tuple[int, int, int]:
    written, skipped, failed = re.search(r"(\d+) written, (\d+) already done \(skipped\), (\d+) failed", summary).groups()
    return int(written), int(skipped), int(failed)


@pytest.fixture(autouse=True)
def no_stray_ray_processes():
    """A SIGKILLed driver leaves its cluster's idle workers behind: end them after each test."""
    yield
    for pid in processes("ray/_private/workers/default_worker.py", "ray::", "/ray/core/src/ray/"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_mid_job_is_replaced_and_nothing_is_lost_or_doubled(photos, tiny_onnx, local_outputs,
                                                                          tmp_path):
    out = tmp_path / "out"
    job = subprocess.Popen(ray_job(photos, out, tiny_onnx), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: out.is_dir() and len(finished(out)) >= 3 and len(worker_pids()) == 2)
    first = worker_pids()
    os.kill(first[0], signal.SIGKILL)
    wait_for(lambda: set(worker_pids()) - set(first) or job.poll() is not None)
    restarted = set(worker_pids()) - set(first)
    out_text, err = job.communicate(timeout=600)
    assert job.returncode == 1, err[-3000:]
    assert restarted, "Ray did not restart the killed worker"
    written, skipped, failed = counts(out_text)   # the retried unit skips what the killed worker finished
    assert written + skipped == IMAGES and failed == 1 and out_text.count("FAILED") == 1
    assert_same_outputs(out, local_outputs)


def test_a_killed_driver_is_resumed_by_a_rerun_that_rewrites_nothing(photos, tiny_onnx, local_outputs, tmp_path):
    """The rerun finishes the job with the local engine's outputs; what the killed run finished is
    never written again (its lingering workers may still finish a unit: the rerun skips it)."""
    out = tmp_path / "out"
    job = subprocess.Popen(ray_job(photos, out, tiny_onnx), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    wait_for(lambda: out.is_dir() and len(finished(out)) >= 6)
    os.killpg(job.pid, signal.SIGKILL)           # the driver and the local cluster it started
    job.wait(timeout=60)
    before = {p: p.stat().st_mtime_ns for p in output_files(out)
              if ".nicegan" not in p.parts and not p.name.startswith(".")}
    assert 0 < len(before) < IMAGES
    rerun = subprocess.run(ray_job(photos, out, tiny_onnx), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    written, skipped, failed = counts(rerun.stdout)
    assert written + skipped == IMAGES and written <= IMAGES - len(before) and failed == 1
    assert rerun.stdout.count("FAILED") == 1 and "broken.png" in rerun.stdout
    assert "grfmt_png" not in rerun.stderr and "streaming_executor" not in rerun.stderr   # OpenCV's and Ray's lines
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())   # finished outputs untouched
    assert_same_outputs(out, local_outputs)


class WorkerDied(BaseException):
    """Stands in for a worker process killed inside `runner` (nothing after it runs)."""


def test_an_input_that_kills_its_worker_is_retried_twice_then_reported(tmp_path):
    guard = AttemptGuard(tmp_path / "attempts")
    unit = Unit("images", ("a.png", "poison.png", "c.png"))
    done: list[str] = []

    def runner(part: Unit) -> TranslateReport:
        if "poison.png" in part.paths:
            raise WorkerDied
        done.extend(part.paths)
        return TranslateReport(output="", written=len(part.paths))

    for _ in range(2):   # the whole unit, then file by file: the poison file kills both attempts
        with pytest.raises(WorkerDied):
            guard.run(unit, runner)
    third = guard.run(unit, runner)
    assert third.written == 2 and len(third.failed) == 1 and "poison.png" in third.failed[0]
    assert done == ["a.png", "a.png", "c.png"]
    assert not list((tmp_path / "attempts").iterdir())   # nothing left for the next run to trip on
