"""OpenVINO backend: exported `.onnx` files and OpenVINO IR (`.xml` + `.bin`) on CPUs, Intel GPUs and NPUs.

On a CPU with AMX or AVX512_BF16 the convolutions run in bf16 (the matrix units; ONNX Runtime's
CPU path leaves them idle), elsewhere in fp32; `precision` chooses. The compiled model goes to
a cache folder, so the second start skips compilation. The model keeps its dynamic batch, height
and width: one compilation serves every frame size. Folders and videos keep several inference
requests in flight (`mode="throughput"`: each batch is split over the requests, which run in
parallel streams); cameras run one request for the lowest latency (`mode="latency"`).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from nicegan.common import cpu_extensions, cpu_threads
from nicegan.export.metadata import LATENT_NAME, ModelInfo, model_info_from_onnx
from nicegan.runtime.backends.base import Backend, BackendError, bgr_to_float, float_to_bgr

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODES = ("throughput", "latency")
_OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "fp32": "FP32"}
# Frames per request in throughput mode: two per stream kept the light ch-64 model's 256 px
# throughput highest on 2-core CPUs (docs/BENCHMARKS.md), and a folder job's batches full.
FRAMES_PER_REQUEST = 2


def default_cache_dir() -> Path:
    """One cache of compiled models per user; OpenVINO keys its entries by model, device and config."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nicegan" / "openvino"


def _usable_cache(folder: Path) -> Path | None:
    """The cache folder, or None (no caching) where it cannot be made, e.g. a read-only home."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _loaded_from_cache(compiled: Any) -> bool:
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except RuntimeError:   # OpenVINO before 2024.5 has no such property
        return False


@functools.lru_cache(maxsize=None)
def shared_core() -> Any:
    """The process's one ov.Core, kept until exit.

    Each Core's CPU plugin installs an alternate signal stack on the thread that creates it and
    puts the previous one back when it is destroyed. Two Cores destroyed in the order they were
    made leave the thread's alternate stack pointing at freed memory, and the next signal (SIGINT
    from Ctrl-C, SIGCHLD from a child process) kills the process with SIGSEGV (OpenVINO 2026.4).
    One Core that lives as long as the process never restores anything."""
    return _openvino().Core()


def _openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendError(f"OpenVINO is not installed ({exc}); install it with `pip install openvino` "
                           "(x86-64 wheels), or run the model with --backend onnxruntime") from None
    return openvino


def resolve_device(core: Any, device: str | None) -> str:
    """CPU by default; GPU, NPU, AUTO (OpenVINO's own choice) and GPU.1-style names when present."""
    name = (device or "CPU").upper()
    if name.startswith("CUDA"):
        raise BackendError(f"--device {device}: OpenVINO runs on CPU, Intel GPUs and NPUs; for NVIDIA GPUs use "
                           "--backend onnxruntime (onnxruntime-gpu) or a TensorRT engine")
    present = core.available_devices
    if name == "AUTO" or name.startswith(("AUTO:", "MULTI:", "HETERO:")) or name in present:
        return name
    raise BackendError(f"--device {device}: OpenVINO sees {', '.join(present)} on this machine "
                       "(Intel GPUs need the GPU driver, NPUs the NPU driver)")


def native_precision(core: Any, device: str) -> str:
    """What `--precision auto` runs: bf16 on CPUs that compute it natively (AMX, AVX512_BF16),
    fp16 on GPUs and NPUs, fp32 elsewhere."""
    capabilities = _capabilities(core, device)
    if device == "CPU":
        return "bf16" if "BF16" in capabilities else "fp32"
    return "fp16" if "FP16" in capabilities else "fp32"


def _capabilities(core: Any, device: str) -> list[str]:
    try:
        return list(core.get_property(device.split(":")[0].split(".")[0], "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:   # AUTO and other virtual devices have none of their own
        return []


def _precision_note(device: str, precision: str, chosen_by: str) -> str:
    if device != "CPU":
        return f"{precision} ({chosen_by})"
    extensions = [e for e in cpu_extensions() if "bf16" in e or e.startswith("amx")] or ["no bf16 units"]
    return f"{precision} ({chosen_by}; CPU: {', '.join(extensions)})"


class OpenVINOBackend(Backend):
    """Runs an ONNX model or OpenVINO IR with OpenVINO. `threads` 0 means the cores not already busy."""

    name = "openvino"

    def __init__(self, model_path: str | os.PathLike, device: str | None = None, precision: str = "auto",
                 threads: int = 0, mode: str = "throughput", cache_dir: Path | None = None):
        if precision not in PRECISIONS:
            raise BackendError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        if mode not in MODES:
            raise BackendError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
        self.version = _openvino().__version__.split("-")[0]
        self.path = Path(model_path)
        self.core = shared_core()
        self.device_name = resolve_device(self.core, device)
        super().__init__(_model_info(self._read()), self.path)
        self.precision = native_precision(self.core, self.device_name) if precision == "auto" else precision
        self._check_precision(precision)
        self.mode = mode
        self._chosen_by = "auto" if precision == "auto" else "--precision"
        config = {"INFERENCE_PRECISION_HINT": _OV_TYPES[self.precision], "PERFORMANCE_HINT": mode.upper()}
        cache = _usable_cache(cache_dir or default_cache_dir())
        if cache is not None:
            config["CACHE_DIR"] = str(cache)
        if self.device_name == "CPU":
            self.threads = cpu_threads(threads)
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            # From the file, not the model object: with a cache entry, nothing is read or compiled again.
            self.compiled = self.core.compile_model(str(self.path), self.device_name, config)
        except RuntimeError as exc:
            raise BackendError(f"{self.path}: OpenVINO cannot compile it for {self.device_name} "
                               f"({_first_line(exc)}); try --precision fp32 or --backend onnxruntime") from None
        self.from_cache = _loaded_from_cache(self.compiled)
        requests = 1 if mode == "latency" else int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._requests = [self.compiled.create_infer_request() for _ in range(max(1, requests))]
        self._float_io = self.info.io == "float"
        self._frames_port, self._latent_port = _input_ports(self.compiled)

    def _read(self) -> Any:
        if not self.path.is_file():
            raise BackendError(f"model not found: {self.path}")
        if self.path.suffix.lower() == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise BackendError(f"{self.path}: its weights file {self.path.with_suffix('.bin').name} is missing "
                               "beside it; copy the .xml and .bin together")
        try:
            return self.core.read_model(str(self.path))
        except RuntimeError as exc:
            raise BackendError(f"{self.path}: OpenVINO cannot read it ({_first_line(exc)}); re-export it with "
                               "`nicegan export onnx`") from None

    def _check_precision(self, requested: str) -> None:
        if requested in ("auto", "fp32") or self.device_name != "CPU":
            return
        if _CAPABILITY[requested] not in _capabilities(self.core, "CPU"):
            raise BackendError(f"--precision {requested}: this CPU has no native {requested} "
                               f"({', '.join(cpu_extensions()) or 'no AVX-512/AMX'}); OpenVINO would quietly run "
                               "fp32: use --precision auto or fp32")

    @property
    def device(self) -> str:
        if self.device_name == "CPU":
            name = self.core.get_property("CPU", "FULL_DEVICE_NAME")
            where = f"CPU ({name}, {self.threads} threads)"
        else:
            where = self.device_name
        cached = ", compiled model from the cache" if self.from_cache else ""
        return (f"{where}, OpenVINO {self.version} {_precision_note(self.device_name, self.precision, self._chosen_by)}, "
                f"{len(self._requests)} request(s) in flight ({self.mode}){cached}")

    @property
    def preferred_batch(self) -> int:
        """Enough frames for every request to have work (a camera: one frame, no waiting)."""
        return 1 if self.mode == "latency" else FRAMES_PER_REQUEST * len(self._requests)

    def infer(self, frames: np.ndarray) -> np.ndarray:
        feed = bgr_to_float(frames) if self._float_io else np.ascontiguousarray(frames)
        chunks = np.array_split(feed, min(len(self._requests), len(feed)))
        busy = list(zip(self._requests, chunks))
        for request, chunk in busy:
            inputs = {self._frames_port: chunk}
            if self.latent is not None:
                inputs[self._latent_port] = self.latent
            request.start_async(inputs)
        outputs = []
        for request, _ in busy:
            request.wait()
            outputs.append(request.get_output_tensor(0).data.copy())
        out = np.concatenate(outputs)
        return float_to_bgr(out) if self._float_io else out

    def close(self) -> None:
        self._requests = []
        self.compiled = None


def read_model_info(path: Path) -> tuple[ModelInfo, Any]:
    """ModelInfo and the read (uncompiled) model, for `nicegan info`."""
    try:
        model = shared_core().read_model(str(path))
    except RuntimeError as exc:
        raise BackendError(f"{path}: OpenVINO cannot read it ({_first_line(exc)})") from None
    return _model_info(model), model


def describe_device(device: str | None) -> str:
    """What `--backend openvino` would run on, without compiling anything."""
    core = shared_core()
    name = resolve_device(core, device)
    precision = native_precision(core, name)
    full = core.get_property(name, "FULL_DEVICE_NAME") if name != "AUTO" else "OpenVINO's choice"
    return f"{name} ({full}), precision auto: {_precision_note(name, precision, 'auto')}"


def _input_ports(model: Any) -> tuple[int, int | None]:
    """The indices of the frames input and of a latent model's code (None without one)."""
    latent = [i for i, port in enumerate(model.inputs) if LATENT_NAME in port.get_names()]
    frames = next(i for i in range(len(model.inputs)) if i not in latent)
    return frames, (latent[0] if latent else None)


def _model_info(model: Any) -> ModelInfo:
    """nicegan.* metadata, kept by OpenVINO under rt_info["framework"] for ONNX files and IR alike."""
    props = {}
    if model.has_rt_info(["framework"]):
        props = {key: str(value) for key, value in _framework_info(model).items()}
    graph_input = model.input(_input_ports(model)[0])
    uint8 = graph_input.get_element_type().get_type_name() == "u8"
    shape = graph_input.get_partial_shape()
    dims = [d.get_length() if d.is_static else None for d in shape]
    height, width = dims[1:3] if uint8 else dims[2:4]
    return model_info_from_onnx(props, uint8, height, width)


def _framework_info(model: Any) -> dict[str, Any]:
    keys = model.get_rt_info()["framework"]
    return {key: model.get_rt_info(["framework", key]).astype(str) for key in keys}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
