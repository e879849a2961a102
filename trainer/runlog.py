"""Scalars of a run: always RUN_DIR/log.csv, and TensorBoard events when tensorboard is installed."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

from nicegan.common import AtomicOutput

LOOP_FIELDS = ("lr", "it_per_s", "elapsed_s")  # after the architecture's losses


def _open_tensorboard(log_dir: Path) -> Any | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(log_dir))


def _rewrite_csv_up_to(path: Path, last_step: int, fields: Sequence[str]) -> None:
    """Drop rows logged after `last_step` (a crash after the last checkpoint), atomically."""
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["step"]) <= last_step]
    with AtomicOutput(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class RunLog:
    """Appends one row per logging interval (step, the architecture's losses, lr, speed); on resume,
    continues after the checkpoint's step."""

    def __init__(self, run_dir: Path, start_step: int, losses: Sequence[str]):
        self.path = run_dir / "log.csv"
        fields = ("step", *losses, *LOOP_FIELDS)
        if start_step > 0 and self.path.is_file():
            _rewrite_csv_up_to(self.path, start_step, fields)
        new_file = not self.path.is_file() or start_step == 0
        self._file = open(self.path, "w" if new_file else "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore")
        if new_file:
            self._csv.writeheader()
        self._tensorboard = _open_tensorboard(run_dir / "tensorboard")

    def write(self, row: dict[str, float]) -> None:
        self._csv.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._file.flush()
        if self._tensorboard is not None:
            for name, value in row.items():
                if name != "step":
                    self._tensorboard.add_scalar(f"train/{name}", value, int(row["step"]))

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
