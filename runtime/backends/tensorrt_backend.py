"""TensorRT engines (`.engine` + `.engine.json` from `nicegan export trt`) behind the Backend interface.

Name-based I/O (`num_io_tensors`, `set_input_shape`, `set_tensor_address`, `execute_async_v3`), the
one API that exists from TensorRT 8.5 to 11.x. Host buffers are page-locked, copies asynchronous on
one real stream, buffers allocated once and grown only when a larger shape arrives.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nicegan.common import file_sha256
from nicegan.export.metadata import LATENT_NAME
from nicegan.export.to_tensorrt import (
    TensorRTError,
    engine_mismatch,
    import_tensorrt,
    model_info_from_sidecar,
    read_sidecar,
)
from nicegan.runtime.backends.base import Backend, BackendError
from nicegan.runtime.backends.cuda_memory import PycudaMemory, Staging


def _rebuild_hint(engine_path: Path) -> str:
    return f"rebuild it on this machine with `nicegan export trt MODEL.onnx -o {engine_path}`"


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


class TensorRTBackend(Backend):
    """Runs a TensorRT engine file.

    Engine files are TRUSTED input: TensorRT deserialises them as native code paths and plugin
    references with no sandbox, so only load engines you built yourself (`nicegan export trt`).
    `trt` and `memory` replace the tensorrt module and PycudaMemory (tests).
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, device: int = 0, *, trt: Any = None, memory: Any = None):
        self.path = Path(engine_path)
        try:
            sidecar = read_sidecar(self.path)
            self._trt = trt or import_tensorrt()
        except TensorRTError as exc:
            raise BackendError(str(exc)) from None
        super().__init__(model_info_from_sidecar(sidecar), self.path)
        self._memory = memory or PycudaMemory(device)
        self._staging: dict[str, Staging] = {}
        self._check_built_here(sidecar)
        with self._memory.current():
            self._runtime, self._engine = self._deserialize()
            self._context = self._engine.create_execution_context()
        self._input, self._latent_input, self._output = self._io_names()
        self._in_dtype = self._dtype(self._input)
        self._out_dtype = self._dtype(self._output)
        self._profile = [_dims(s) for s in self._engine.get_tensor_profile_shape(self._input, 0)]
        self._staging = {name: Staging(self._memory) for name in (self._input, self._latent_input, self._output)
                         if name is not None}

    # --- loading ---------------------------------------------------------------------------

    def _check_built_here(self, sidecar: dict[str, Any]) -> None:
        if not self.path.is_file():
            raise BackendError(f"{self.path}: engine file not found")
        why = engine_mismatch(sidecar, str(self._trt.__version__), self._memory.gpu)
        if why is None and sidecar.get("engine_sha256") not in (None, file_sha256(self.path)):
            why = "its sidecar describes a different engine file"
        if why:
            raise BackendError(f"{self.path}: cannot run here, {why}; {_rebuild_hint(self.path)}")

    def _deserialize(self) -> tuple[Any, Any]:
        trt = self._trt
        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:  # TensorRT's answer to a plan from another version or GPU
            raise BackendError(f"{self.path}: TensorRT {trt.__version__} could not deserialise the engine; "
                               f"{_rebuild_hint(self.path)}")
        return runtime, engine

    def _io_names(self) -> tuple[str, str | None, str]:
        """(frames input, a latent model's code input or None, output)."""
        engine, modes = self._engine, self._trt.TensorIOMode
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == modes.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == modes.OUTPUT]
        frames = [n for n in inputs if n != LATENT_NAME]
        expected = ["frames"] + ([LATENT_NAME] if self.info.latent_dim else [])
        if len(inputs) != len(expected) or len(frames) != 1 or len(outputs) != 1:
            raise BackendError(f"{self.path}: expected the inputs {' and '.join(expected)} and one output, found "
                               f"{inputs} -> {outputs}; {_rebuild_hint(self.path)}")
        return frames[0], (LATENT_NAME if self.info.latent_dim else None), outputs[0]

    def _dtype(self, name: str | None) -> np.dtype | None:
        return None if name is None else np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))

    # --- inference -------------------------------------------------------------------------

    @property
    def uint8_io(self) -> bool:
        return self._in_dtype == np.uint8

    @property
    def max_batch(self) -> int:
        return self._profile[2][0]

    @property
    def device(self) -> str:
        return f"{self._memory.gpu}, TensorRT {self._trt.__version__}"

    def infer(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise BackendError(f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}")
        chunks = [frames[i:i + self.max_batch] for i in range(0, len(frames), self.max_batch)]
        with self._memory.current():
            return np.concatenate([self._run(chunk) for chunk in chunks])

    def _engine_input(self, frames: np.ndarray) -> np.ndarray:
        if self.uint8_io:
            return np.ascontiguousarray(frames)
        rgb = frames[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
        return (rgb / np.float32(127.5) - np.float32(1.0)).astype(self._in_dtype)

    def _frames(self, output: np.ndarray) -> np.ndarray:
        if self._out_dtype == np.uint8:
            return output.copy()
        pixels = np.rint((output.astype(np.float32) + 1.0) * 127.5)  # half to even, like the uint8 graph
        return np.clip(pixels, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)[..., ::-1].copy()

    def _check_profile(self, shape: tuple[int, ...]) -> None:
        low, _, high = self._profile
        if any(not lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            raise BackendError(f"{self.path}: input shape {shape} is outside the engine's profile {low}..{high}; "
                               f"rebuild with matching `nicegan export trt --batch/--height/--width` or use --max-size")

    def _run(self, frames: np.ndarray) -> np.ndarray:
        x = self._engine_input(frames)
        self._check_profile(x.shape)
        ctx, memory = self._context, self._memory
        if not ctx.set_input_shape(self._input, x.shape):
            raise BackendError(f"{self.path}: TensorRT refused input shape {x.shape}; {_rebuild_hint(self.path)}")
        if self._latent_input is not None:
            self._bind_latent()
        out_shape = _dims(ctx.get_tensor_shape(self._output))
        in_host, in_dev = self._staging[self._input].ensure(x.nbytes)
        out_nbytes = int(np.prod(out_shape)) * self._out_dtype.itemsize
        out_host, out_dev = self._staging[self._output].ensure(out_nbytes)
        in_host.view(self._in_dtype).reshape(x.shape)[...] = x
        memory.htod(in_dev, in_host)
        ctx.set_tensor_address(self._input, memory.address(in_dev))
        ctx.set_tensor_address(self._output, memory.address(out_dev))
        if not ctx.execute_async_v3(memory.stream_handle):
            raise BackendError(f"{self.path}: TensorRT execution failed for input shape {x.shape}")
        memory.dtoh(out_host, out_dev)
        memory.synchronize()
        return self._frames(out_host.view(self._out_dtype).reshape(out_shape))

    def _bind_latent(self) -> None:
        """The job's latent code (Backend.latent), copied to its device buffer before each run."""
        name, ctx, memory = self._latent_input, self._context, self._memory
        code = self.latent.astype(self._dtype(name))
        if not ctx.set_input_shape(name, code.shape):
            raise BackendError(f"{self.path}: TensorRT refused the latent shape {code.shape}; {_rebuild_hint(self.path)}")
        host, device = self._staging[name].ensure(code.nbytes)
        host.view(code.dtype).reshape(code.shape)[...] = code
        memory.htod(device, host)
        ctx.set_tensor_address(name, memory.address(device))

    def close(self) -> None:
        with self._memory.current():
            for staging in self._staging.values():
                staging.release()
        self._staging = {}
        self._context = self._engine = self._runtime = None
