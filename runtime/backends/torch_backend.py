"""PyTorch backend: a checkpoint (.pt/.pth) run eagerly on CPU or CUDA.

Precision `auto` is bf16 autocast with channels_last on a CPU that computes bf16 natively (AMX
or AVX512_BF16; docs/BENCHMARKS.md has its speed), fp32 elsewhere; `fp16` is autocast on CUDA
(what --half asks for); `fp32` is the exact path.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from nicegan.common import cpu_threads
from nicegan.export.translator import TranslatorError, UInt8IO, load_style_encoder, load_translator
from nicegan.runtime.backends.base import Backend, BackendError
from nicegan.trainer.threads import cpu_has_native_bf16

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None, precision: str = "auto",
                 direction: str = "a2b", default_img_size: int = 256, scale: int = 1, threads: int = 0):
        self._device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"--device {device}: this PyTorch has no CUDA device (use --device cpu)")
        self.precision = self._resolve_precision(precision)
        try:
            module, info = load_translator(checkpoint, direction=direction, default_img_size=default_img_size,
                                           scale=scale)
        except TranslatorError as exc:
            raise BackendError(str(exc)) from exc
        super().__init__(info, checkpoint)
        if self._device.type == "cpu":
            torch.set_num_threads(cpu_threads(threads))  # more threads than free cores: many times slower
        # channels_last lets oneDNN's bf16 convolutions (AMX, AVX512_BF16) and cuDNN's tensor cores
        # skip a layout conversion per layer.
        memory_format = torch.channels_last if self.precision in _AUTOCAST else torch.contiguous_format
        self.module = UInt8IO(module).eval().to(self._device, memory_format=memory_format)

    def _resolve_precision(self, precision: str) -> str:
        on_cpu = self._device.type == "cpu"
        if precision == "auto":
            return "bf16" if on_cpu and cpu_has_native_bf16() else "fp32"
        if precision == "fp16" and on_cpu:
            raise BackendError("--half/--precision fp16 needs a CUDA device (fp16 on CPU is slower than fp32); "
                               "on a CPU use --precision auto (bf16 where the CPU has it) or fp32")
        if precision == "bf16" and on_cpu and not cpu_has_native_bf16():
            raise BackendError("--precision bf16: this CPU has neither AMX nor AVX512_BF16, so torch would emulate "
                               "bf16 several times slower than fp32; use --precision auto or fp32")
        return precision

    @property
    def device(self) -> str:
        precision = f"{self.precision} autocast, channels_last" if self.precision in _AUTOCAST else "fp32"
        if self._device.type == "cuda":
            return f"{torch.cuda.get_device_name(self._device)} ({self._device}, {precision})"
        return f"CPU ({torch.get_num_threads()} threads, {precision})"

    def infer(self, frames: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self._device, non_blocking=True)
        code = () if self.latent is None else (torch.from_numpy(self.latent).to(self._device),)
        autocast = torch.autocast(self._device.type, dtype=_AUTOCAST[self.precision]) \
            if self.precision in _AUTOCAST else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            return self.module(batch, *code).cpu().numpy()

    def reference_style(self, reference: np.ndarray) -> np.ndarray:
        """The checkpoint's own style encoder (TUNIT's C_EMA), in fp32."""
        try:
            encoder = load_style_encoder(self.model_path)[0].to(self._device)
        except TranslatorError as exc:
            raise BackendError(str(exc)) from exc
        with torch.inference_mode():
            return encoder(torch.from_numpy(reference).to(self._device)).float().cpu().numpy()

    def close(self) -> None:
        self.module = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
