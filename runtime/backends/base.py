"""The one small interface every inference backend implements.

The runtime hands a backend a batch of frames as OpenCV decodes them (uint8, NHWC, BGR) and
gets the translated batch back in the same layout; whatever the model's own I/O is (uint8
graph, float graph, PyTorch module, TensorRT engine), the conversion lives in the backend.

A latent (multimodal) model also gets its code on every call: `latent`, the code of one seed
(`use_seed`, seed 0 until a job chooses another), the same for every frame of a job, so that a
video keeps one look.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from nicegan.errors import NiceganError
from nicegan.export.metadata import ModelInfo, latent_for_seed


class BackendError(NiceganError, RuntimeError):
    """A model that cannot run on this backend; the message names the file and the fix."""


def refuse_without_latent(info: ModelInfo, option: str) -> None:
    """`option` (--seed, --samples) chooses a latent model's code: a deterministic model refuses it."""
    if not info.latent_dim:
        raise BackendError(f"{option}: this model has no latent code (latent_dim 0), so it has one translation "
                           "per image; drop it, or use a model trained with --latent-dim (e.g. 8)")


class Backend(ABC):
    name: str = "base"

    def __init__(self, info: ModelInfo):
        self.info = info
        self.seed: int | None = None
        self.latent: np.ndarray | None = None   # float32 (1, latent_dim) of a latent model
        if info.latent_dim:
            self.use_seed(0)

    def use_seed(self, seed: int) -> None:
        """Translate with the latent code of `seed` from now on (export.metadata.latent_for_seed)."""
        refuse_without_latent(self.info, f"--seed {seed}")
        self.seed, self.latent = seed, latent_for_seed(seed, self.info.latent_dim)

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
