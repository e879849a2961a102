"""The one small interface every inference backend implements.

The runtime hands a backend a batch of frames as OpenCV decodes them (uint8, NHWC, BGR) and
gets the translated batch back in the same layout; whatever the model's own I/O is (uint8
graph, float graph, PyTorch module, TensorRT engine), the conversion lives in the backend.

A latent (multimodal) model also gets its code on every call: `latent`, the code of one seed
(`use_seed`, seed 0 until a job chooses another), the same for every frame of a job, so that a
video keeps one look. A style model (TUNIT) takes a style code there instead (`use_style`): a
reference's (runtime.styles) or a pseudo-domain's mean, its first one until a job chooses.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from nicegan.errors import NiceganError
from nicegan.export.metadata import ModelInfo, latent_for_seed


class BackendError(NiceganError, RuntimeError):
    """A model that cannot run on this backend; the message names the file and the fix."""


def refuse_without_latent(info: ModelInfo, option: str) -> None:
    """`option` (--seed, --samples) chooses a latent model's code: a deterministic model refuses it,
    and so does a style model, whose code is a style."""
    if info.latent_dim and info.code == "style":
        raise BackendError(f"{option}: this TUNIT model takes a style, not a random code: choose it with --reference "
                           "IMG or --domain K")
    if not info.latent_dim:
        raise BackendError(f"{option}: this model has no latent code (latent_dim 0), so it has one translation "
                           "per image; drop it, or use a model trained with --latent-dim (e.g. 8)")


class Backend(ABC):
    name: str = "base"

    def __init__(self, info: ModelInfo, model_path: str | os.PathLike | None = None):
        self.info = info
        self.model_path = None if model_path is None else Path(model_path)
        self.seed: int | None = None
        self.latent: np.ndarray | None = None   # float32 (1, latent_dim): a latent model's code or a style
        if info.latent_dim and info.code == "latent":
            self.use_seed(0)
        elif info.latent_dim:
            from nicegan.runtime.styles import default_style
            self.latent = default_style(info)

    def use_seed(self, seed: int) -> None:
        """Translate with the latent code of `seed` from now on (export.metadata.latent_for_seed)."""
        refuse_without_latent(self.info, f"--seed {seed}")
        self.seed, self.latent = seed, latent_for_seed(seed, self.info.latent_dim)

    def use_style(self, style: np.ndarray) -> None:
        """Translate with this style code (1, latent_dim) from now on (runtime.styles.StyleChoice)."""
        self.latent = np.ascontiguousarray(style, dtype=np.float32).reshape(1, self.info.latent_dim)

    def reference_style(self, reference: np.ndarray) -> np.ndarray:
        """The style code (1, latent_dim) of a prepared reference (runtime.styles.read_reference): an
        exported model's style encoder graph; the PyTorch backend uses the checkpoint's."""
        from nicegan.runtime.styles import StyleGraph, style_graph_path
        return StyleGraph(style_graph_path(self.model_path, self.info))(reference)

    @property
    @abstractmethod
    def device(self) -> str:
        """Human-readable device, e.g. 'CPU (2 threads)' or 'NVIDIA H100 80GB HBM3 (sm_90)'."""

    @property
    def max_batch(self) -> int | None:
        """Largest batch the model takes in one call (a TensorRT profile's max); None: no limit."""
        return None

    @property
    def preferred_batch(self) -> int | None:
        """The batch that keeps this backend busiest (OpenVINO: frames for every request in flight);
        None: the pipeline's default (1 on CPU, 8 on GPUs)."""
        return None

    @abstractmethod
    def infer(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 BGR -> (N, H, W, 3) uint8 BGR. H, W already satisfy the model's size policy."""

    def close(self) -> None:
        """Release device memory and sessions; safe to call twice."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the float graphs' I/O (exported with --io float, CycleGAN and foreign ONNX files) -----------


def bgr_to_float(frames: np.ndarray) -> np.ndarray:
    """uint8 NHWC BGR -> float32 NCHW RGB in [-1, 1] (the float graph's input)."""
    rgb = frames[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray(rgb / np.float32(127.5) - np.float32(1.0))


def float_to_bgr(images: np.ndarray) -> np.ndarray:
    """float NCHW RGB in [-1, 1] -> uint8 NHWC BGR, rounded half to even like the uint8 graph."""
    pixels = np.clip(np.rint((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, ::-1].transpose(0, 2, 3, 1))
