"""Shared helpers of the benchmark scripts: the machine and software, timing, tables, models.

Every script measures the official-style baseline and the project IN THE SAME RUN, on the same
machine, and prints ratios against that baseline; nothing here asserts a timing.
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # scripts run as `python benchmarks/x.py`: the tests' helpers live in REPO/tests
    sys.path.insert(0, str(REPO))

import torch

from nicegan.common import NOTABLE_EXTENSIONS, cpu_extensions
from nicegan.models.nicegan.checkpoint import NiceConfig

DEFAULT_CONFIG = NiceConfig()   # the light model: ch 64, n_res 6, n_dis 7, 256 px


# --- machine and software --------------------------------------------------------------------


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def gpu_name() -> str | None:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return getattr(imported, "__version__", "?")


def load_average() -> str:
    """1/5/15-minute load: on a shared machine, timings taken above ~the core count are not worth much."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return " / ".join(f"{v:.2f}" for v in load)


def environment() -> list[tuple[str, str]]:
    """(label, value) pairs that every table is printed with."""
    return [
        ("date (UTC)", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{cpu_model()}, {cpu_cores()} cores, torch threads {torch.get_num_threads()}"),
        ("CPU extensions", ", ".join(cpu_extensions()) or "none of " + ", ".join(NOTABLE_EXTENSIONS)),
        ("GPU", gpu_name() or "none (no CUDA device)"),
        ("load average (1/5/15 min)", load_average()),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("onnxruntime", _version("onnxruntime")),
        ("openvino", _version("openvino")),
        ("opencv", _version("cv2")),
        ("numpy", np.__version__),
        ("tensorrt", _version("tensorrt")),
    ]


def print_environment(title: str) -> None:
    print(f"== {title}")
    for label, value in environment():
        print(f"   {label:<26} {value}")
    print(f"   command                    {' '.join([Path(sys.executable).name] + sys.argv)}")


# --- timing ----------------------------------------------------------------------------------


def cuda_sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls after `warmup` untimed ones (CUDA work included)."""
    for _ in range(warmup):
        fn()
    cuda_sync()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        cuda_sync()
        times.append(time.perf_counter() - began)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min..max of the runs, printed beside each median so noisy rows show."""
    return f"{min(values):.3g}..{max(values):.3g}"


# --- tables ----------------------------------------------------------------------------------


def ratio(value: float | None, baseline: float | None) -> str:
    if not value or not baseline:
        return "-"
    return f"{value / baseline:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes into docs/BENCHMARKS.md as it is)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


# --- models and images -----------------------------------------------------------------------


def workdir(path: str | None) -> Path:
    """The folder for generated checkpoints, exports and images, reused between runs and scripts."""
    folder = Path(path) if path else Path(os.environ.get("TMPDIR", "/tmp")) / "nicegan-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def trained_like_checkpoint(folder: Path, config: NiceConfig = DEFAULT_CONFIG) -> Path:
    """A checkpoint of random weights made to look trained (lamda != 0, ILN affine, SN iterated);
    speed does not depend on the values, and no trained model ships with the project."""
    from tests.nicegan_testutils import make_trained_like, save_checkpoint
    path = folder / f"light_ch{config.ch}_res{config.n_res}_dis{config.n_dis}_{config.img_size}.pt"
    if not path.is_file():
        print(f"   building a trained-like checkpoint {path.name} ...", flush=True)
        save_checkpoint(make_trained_like(config), path)
    return path


def fp32_onnx(checkpoint: Path, folder: Path, log: Callable[[str], None] = print) -> Path:
    """The runtime's default export (uint8 I/O, FP32, dynamic batch/H/W) in `folder`, parity-checked once."""
    from nicegan.export.to_onnx import export_onnx
    path = folder / f"{checkpoint.stem}_a2b.onnx"
    if not path.is_file():
        export_onnx(checkpoint, path, log=lambda line: log(f"   {line}"))
    return path


def real_crops(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """`count` BGR crops of scikit-image's bundled photos (real image statistics, no download)."""
    import cv2

    from tests.nicegan_testutils import random_crops, real_photos
    photos = list(real_photos().values())
    crops = []
    for i in range(count):
        crop = random_crops(photos[i % len(photos)], 1, size, seed + i)[0]   # photos are >= 300 px
        crops.append(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return crops
