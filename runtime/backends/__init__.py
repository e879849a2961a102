"""Backends behind one interface; `open_backend` picks one by the model file or --backend."""
from __future__ import annotations

import os
from pathlib import Path

from nicegan.errors import require
from nicegan.runtime.backends.base import Backend, BackendError

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
_KIND_BY_SUFFIX = {".engine": "tensorrt", ".plan": "tensorrt", ".onnx": "onnxruntime", ".pt": "torch", ".pth": "torch"}
_MAKE_IT = {
    "tensorrt": "build an engine first: nicegan export trt MODEL.onnx",
    "onnxruntime": "export the checkpoint first: nicegan export onnx CHECKPOINT.pt",
    "torch": "the PyTorch backend runs checkpoints (.pt/.pth), not exported models",
}


def choose_backend(model_path: str | os.PathLike, backend: str = "auto") -> tuple[str, str]:
    """(backend name, why) for a model file. Each file type has one backend that can run it;
    that backend then takes the fastest device present (CUDA before CPU)."""
    path = Path(model_path)
    if backend not in BACKENDS:
        raise BackendError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if not path.is_file():
        raise BackendError(f"model not found: {path}")
    kind = _KIND_BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise BackendError(f"{path}: unknown model type '{path.suffix}' "
                           "(.engine = TensorRT, .onnx = ONNX Runtime, .pt/.pth = PyTorch checkpoint)")
    if backend not in ("auto", kind):
        raise BackendError(f"{path}: --backend {backend} cannot run a '{path.suffix}' file; {_MAKE_IT[backend]}")
    return kind, ("chosen by --backend" if backend == kind else f"auto: {path.suffix} file")


def open_backend(model_path: str | os.PathLike, backend: str = "auto", half: bool = False,
                 device: str | None = None, direction: str = "a2b", scale: int = 1) -> Backend:
    """A ready backend for the model; `device` is None (fastest present), "cpu", "cuda" or "cuda:N".
    `half`, `direction` and `scale` apply to PyTorch checkpoints (exported models have them baked in)."""
    kind, _ = choose_backend(model_path, backend)
    if scale != 1 and kind != "torch":
        raise BackendError(f"{model_path}: --scale is for PyTorch checkpoints; an exported model runs at the "
                           "scale it was exported with (nicegan export onnx --scale), so drop --scale")
    if kind == "tensorrt":
        from nicegan.runtime.backends.tensorrt_backend import TensorRTBackend
        return TensorRTBackend(model_path, device=_device_index(device))
    if kind == "onnxruntime":
        require("onnxruntime", f"running {model_path}",
                "install it with `pip install onnxruntime` (onnxruntime-gpu for CUDA)")
        from nicegan.runtime.backends.onnxruntime_backend import ONNXRuntimeBackend
        return ONNXRuntimeBackend(model_path, device=device)
    require("torch", f"running the checkpoint {model_path}",
            "install it with `pip install torch`, or export the checkpoint where torch is installed "
            "(`nicegan export onnx CHECKPOINT`) and run the .onnx")
    from nicegan.runtime.backends.torch_backend import TorchBackend
    return TorchBackend(model_path, device=device, half=half, direction=direction, scale=scale)


def _device_index(device: str | None) -> int:
    if device is None or device == "cuda":
        return 0
    if str(device).lower() == "cpu":
        raise BackendError("TensorRT engines run on a GPU only; use an .onnx model for --device cpu")
    return int(str(device).rsplit(":", 1)[-1])


__all__ = ["Backend", "BackendError", "BACKENDS", "choose_backend", "open_backend"]
