"""PyTorch backend: a checkpoint (.pt/.pth) run eagerly on CPU or CUDA, fp16 autocast with --half."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from nicegan.common import cpu_threads
from nicegan.export.translator import TranslatorError, UInt8IO, load_translator
from nicegan.runtime.backends.base import Backend, BackendError


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None, half: bool = False,
                 direction: str = "a2b", default_img_size: int = 256, scale: int = 1):
        self._device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"--device {device}: this PyTorch has no CUDA device (use --device cpu)")
        if half and self._device.type != "cuda":
            raise BackendError("--half needs a CUDA device (fp16 on CPU is slower than fp32); drop --half")
        try:
            module, info = load_translator(checkpoint, direction=direction, default_img_size=default_img_size,
                                           scale=scale)
        except TranslatorError as exc:
            raise BackendError(str(exc)) from exc
        super().__init__(info)
        if self._device.type == "cpu":
            torch.set_num_threads(cpu_threads())  # more threads than free cores: many times slower
        self.half = half
        self.module = UInt8IO(module).eval().to(self._device)

    @property
    def device(self) -> str:
        if self._device.type == "cuda":
            name = torch.cuda.get_device_name(self._device)
            return f"{name} ({self._device}, {'fp16 autocast' if self.half else 'fp32'})"
        return f"CPU ({torch.get_num_threads()} threads)"

    def infer(self, frames: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self._device, non_blocking=True)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.half else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            return self.module(batch).cpu().numpy()

    def close(self) -> None:
        self.module = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
