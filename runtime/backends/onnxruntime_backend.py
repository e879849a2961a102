"""ONNX Runtime backend: CUDA execution provider when present, else CPU."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nicegan.export.metadata import LATENT_NAME, ModelInfo, model_info_from_onnx
from nicegan.runtime.backends.base import Backend, BackendError, bgr_to_float, float_to_bgr


class ONNXRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_path: str | os.PathLike, device: str | None = None, threads: int = 0):
        path = Path(model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self._providers = _providers(device)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=self._providers)
        except Exception as exc:  # ORT raises its own exception types for every load failure
            raise BackendError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]}); "
                               "re-export it with `nicegan export onnx`") from exc
        self._input = _frames_input(self.session)
        super().__init__(_model_info(self.session), path)
        self._float_io = self.info.io == "float"

    @property
    def device(self) -> str:
        active = self.session.get_providers()[0]
        if active == "CUDAExecutionProvider":
            options = self.session.get_provider_options().get(active, {})
            return f"CUDA:{options.get('device_id', 0)} (ONNX Runtime CUDA provider)"
        threads = self.session.get_session_options().intra_op_num_threads or os.cpu_count()
        return f"CPU ({threads} threads)"

    def infer(self, frames: np.ndarray) -> np.ndarray:
        feeds = {self._input.name: bgr_to_float(frames) if self._float_io else frames}
        if self.latent is not None:
            feeds[LATENT_NAME] = self.latent
        out = self.session.run(None, feeds)[0]
        return float_to_bgr(out) if self._float_io else out

    def close(self) -> None:
        self.session = None


def _providers(device: str | None) -> list:
    wants_cpu = device is not None and str(device).lower() == "cpu"
    if not wants_cpu and "CUDAExecutionProvider" in ort.get_available_providers():
        device_id = int(str(device).rsplit(":", 1)[-1]) if device and ":" in str(device) else 0
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    if device is not None and str(device).lower().startswith("cuda"):
        raise BackendError(f"--device {device}: this onnxruntime has no CUDA provider "
                           "(pip install onnxruntime-gpu)")
    return ["CPUExecutionProvider"]


def _frames_input(session: ort.InferenceSession):
    """The graph input that takes the frames: the one that is not a latent model's code."""
    return next(i for i in session.get_inputs() if i.name != LATENT_NAME)


def _model_info(session: ort.InferenceSession) -> ModelInfo:
    graph_input = _frames_input(session)
    uint8 = graph_input.type == "tensor(uint8)"
    height, width = graph_input.shape[1:3] if uint8 else graph_input.shape[2:4]
    return model_info_from_onnx(session.get_modelmeta().custom_metadata_map, uint8, height, width)
