"""`nicegan bench`: backend throughput over batch sizes and resolutions (warm-up, medians)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import cv2
import numpy as np

from nicegan.runtime.backends.base import Backend
from nicegan.runtime.frames import SizePolicy

DEFAULT_BATCHES = (1, 2, 4, 8)
DEFAULT_SIZES = ((256, 256), (720, 1280))


@dataclass(frozen=True)
class BenchResult:
    batch: int
    height: int
    width: int
    median_s: float | None = None     # per batch
    error: str | None = None          # e.g. out of memory: reported, the sweep goes on

    @property
    def images_per_s(self) -> float | None:
        return self.batch / self.median_s if self.median_s else None


def sample_frames(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random images with fine grain: image-like statistics for the instance norms,
    unlike flat or white-noise frames, and no data files needed."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(batch):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        frames.append(np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


def benchmark(backend: Backend, batches=DEFAULT_BATCHES, sizes=DEFAULT_SIZES,
              warmup: int = 2, runs: int = 5) -> list[BenchResult]:
    """Median seconds per batch for every (batch, size); fixed-size models run at their own size."""
    policy = SizePolicy(backend.info)
    shapes = sorted({policy.placement(h, w) for h, w in sizes}, key=lambda p: p.scaled[0] * p.scaled[1])
    results = []
    for place in shapes:
        height = place.scaled[0] + place.pad[0] + place.pad[1]
        width = place.scaled[1] + place.pad[2] + place.pad[3]
        for batch in batches:
            results.append(_time_one(backend, sample_frames(batch, height, width), warmup, runs))
    return results


def _time_one(backend: Backend, frames: np.ndarray, warmup: int, runs: int) -> BenchResult:
    batch, height, width = frames.shape[:3]
    try:
        for _ in range(warmup):
            backend.infer(frames)
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            backend.infer(frames)
            times.append(time.perf_counter() - began)
    except Exception as exc:  # any backend's failure (OOM, shape outside the engine profile) ends one row
        return BenchResult(batch, height, width, error=str(exc).strip().splitlines()[0][:120])
    return BenchResult(batch, height, width, statistics.median(times))


def format_table(results: list[BenchResult], warmup: int, runs: int) -> str:
    """The results table; the backend and device are the caller's line (printed when it opened them)."""
    lines = [f"warm-up {warmup}, median of {runs} runs",
             f"{'batch':>5}  {'size (HxW)':>11}  {'ms/batch':>9}  {'ms/image':>9}  {'images/s':>9}"]
    for r in results:
        size = f"{r.height}x{r.width}"
        if r.error:
            lines.append(f"{r.batch:>5}  {size:>11}  failed: {r.error}")
        else:
            lines.append(f"{r.batch:>5}  {size:>11}  {r.median_s * 1e3:>9.2f}  {r.median_s * 1e3 / r.batch:>9.2f}"
                         f"  {r.images_per_s:>9.2f}")
    return "\n".join(lines)
