"""Checkpoint files, whatever the architecture: safe loading and atomic saving.

Files are untrusted input: they are read with `torch.load(weights_only=True)`, which never
unpickles arbitrary objects.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from nicegan.common import AtomicOutput
from nicegan.errors import NiceganError


class CheckpointError(NiceganError, ValueError):
    """A checkpoint file that cannot be used; the message names the file and the fix."""


def load_tensors(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True (never unpickles code), on the CPU; CheckpointError with
    one line otherwise. torch's own message advises weights_only=False, which nicegan never does."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or unsafe files
        raise CheckpointError(f"{path}: {_load_failure(exc)}") from None


def _load_failure(exc: Exception) -> str:
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if unsafe:
        return (f"holds a Python object ({unsafe.group(1)}) that a safe load refuses: checkpoints are read with "
                "weights_only=True and never run code; re-save its state_dicts (tensors, numbers, strings) "
                "with torch.save, or pick another file")
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read it ({exc.strerror})"
    text = str(exc).strip()
    first = text.splitlines()[0].split(". ")[0][:160] if text else type(exc).__name__
    cause = "" if "weights_only" in first else f" ({first})"
    return f"not a PyTorch checkpoint: corrupt, truncated or another format{cause}; pick another file"


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint file's dict, loaded safely; CheckpointError when there is no such file or it
    holds something else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; pass the path of a .pt file")
    ckpt = load_tensors(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict of state_dicts, found {type(ckpt).__name__}")
    return ckpt


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through an fsynced temporary file: readers never see half a checkpoint."""
    with AtomicOutput(path, fsync=True) as tmp:
        torch.save(obj, tmp)
