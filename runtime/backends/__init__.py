"""Backends behind one interface; `open_backend` picks one by the model file or --backend.

`--backend auto` takes the backend that runs the file type fastest on this machine: TensorRT for
engines, PyTorch for checkpoints, and for `.onnx` ONNX Runtime's CUDA provider where CUDA is
present, else OpenVINO when it is installed (bf16 on CPUs with AMX or AVX512_BF16), else ONNX
Runtime on the CPU.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from nicegan.errors import require
from nicegan.runtime.backends.base import Backend, BackendError

BACKENDS = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# The backends that can run each file type, the preferred one first.
_RUNNERS = {".engine": ("tensorrt",), ".plan": ("tensorrt",), ".onnx": ("onnxruntime", "openvino"),
            ".xml": ("openvino",), ".pt": ("torch",), ".pth": ("torch",)}
_MAKE_IT = {
    "tensorrt": "build an engine first: nicegan export trt MODEL.onnx",
    "onnxruntime": "export the checkpoint first: nicegan export onnx CHECKPOINT.pt",
    "openvino": "export the checkpoint first: nicegan export onnx CHECKPOINT.pt",
    "torch": "the PyTorch backend runs checkpoints (.pt/.pth), not exported models",
}


def choose_backend(model_path: str | os.PathLike, backend: str = "auto", device: str | None = None) -> tuple[str, str]:
    """(backend name, why) for a model file and the device asked for (None: the fastest present)."""
    path = Path(model_path)
    if backend not in BACKENDS:
        raise BackendError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if not path.is_file():
        raise BackendError(f"model not found: {path}")
    runners = _RUNNERS.get(path.suffix.lower())
    if runners is None:
        raise BackendError(f"{path}: unknown model type '{path.suffix}' (.engine = TensorRT, .onnx = ONNX Runtime "
                           "or OpenVINO, .xml = OpenVINO IR, .pt/.pth = PyTorch checkpoint)")
    if backend != "auto":
        if backend not in runners:
            raise BackendError(f"{path}: --backend {backend} cannot run a '{path.suffix}' file; {_MAKE_IT[backend]}")
        return backend, "chosen by --backend"
    if len(runners) == 1:
        return runners[0], f"auto: {path.suffix} file"
    return _onnx_runner(device)


def _onnx_runner(device: str | None) -> tuple[str, str]:
    """ONNX Runtime on CUDA, OpenVINO on CPUs (and Intel GPUs/NPUs), ONNX Runtime where OpenVINO is missing."""
    wanted = (device or "").lower()
    if wanted.startswith("cuda"):
        return "onnxruntime", "auto: .onnx file on CUDA: ONNX Runtime's CUDA provider"
    if device is None and _onnxruntime_has_cuda():
        return "onnxruntime", "auto: .onnx file, CUDA present: ONNX Runtime's CUDA provider"
    if importlib.util.find_spec("openvino") is not None:
        return "openvino", "auto: .onnx file, no CUDA: OpenVINO"
    if wanted not in ("", "cpu"):
        raise BackendError(f"--device {device}: Intel GPUs and NPUs run through OpenVINO, which is not installed "
                           "(pip install openvino)")
    return "onnxruntime", "auto: .onnx file (OpenVINO is not installed: pip install openvino runs CPUs faster)"


def _onnxruntime_has_cuda() -> bool:
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def open_backend(model_path: str | os.PathLike, backend: str = "auto", half: bool = False,
                 device: str | None = None, direction: str = "a2b", scale: int = 1, precision: str = "auto",
                 threads: int = 0, live: bool = False) -> Backend:
    """A ready backend for the model.

    `device`: None (the fastest present), "cpu", "cuda", "cuda:N", or for OpenVINO "GPU", "NPU", "AUTO".
    `precision`: auto (the fastest the device computes natively: bf16 on CPUs with AMX or
    AVX512_BF16) or fp32 (the exact path), bf16, fp16; `half` is fp16 for PyTorch on CUDA.
    `direction` and `scale` apply to PyTorch checkpoints (exported models have them baked in).
    `threads`: CPU threads, 0 for the cores not already busy. `live`: a camera or stream, run for
    latency rather than throughput."""
    kind, _ = choose_backend(model_path, backend, device)
    if precision not in PRECISIONS:
        raise BackendError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if scale != 1 and kind != "torch":
        raise BackendError(f"{model_path}: --scale is for PyTorch checkpoints; an exported model runs at the "
                           "scale it was exported with (nicegan export onnx --scale), so drop --scale")
    if precision not in ("auto", "fp32") and kind in ("onnxruntime", "tensorrt"):
        raise BackendError(f"--precision {precision}: {kind} runs the precision the model was exported or built "
                           f"with; use --backend openvino, or export with --fp16")
    if kind == "tensorrt":
        from nicegan.runtime.backends.tensorrt_backend import TensorRTBackend
        return TensorRTBackend(model_path, device=_device_index(device))
    if kind == "openvino":
        from nicegan.runtime.backends.openvino_backend import OpenVINOBackend
        return OpenVINOBackend(model_path, device=device, precision=precision, threads=threads,
                               mode="latency" if live else "throughput")
    if kind == "onnxruntime":
        require("onnxruntime", f"running {model_path}",
                "install it with `pip install onnxruntime` (onnxruntime-gpu for CUDA)")
        from nicegan.runtime.backends.onnxruntime_backend import ONNXRuntimeBackend
        return ONNXRuntimeBackend(model_path, device=device, threads=threads)
    require("torch", f"running the checkpoint {model_path}",
            "install it with `pip install torch`, or export the checkpoint where torch is installed "
            "(`nicegan export onnx CHECKPOINT`) and run the .onnx")
    from nicegan.runtime.backends.torch_backend import TorchBackend
    return TorchBackend(model_path, device=device, precision="fp16" if half else precision, direction=direction,
                        scale=scale, threads=threads)


def _device_index(device: str | None) -> int:
    if device is None or device == "cuda":
        return 0
    if str(device).lower() == "cpu":
        raise BackendError("TensorRT engines run on a GPU only; use an .onnx model for --device cpu")
    return int(str(device).rsplit(":", 1)[-1])


__all__ = ["Backend", "BackendError", "BACKENDS", "PRECISIONS", "choose_backend", "open_backend"]
