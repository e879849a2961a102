"""The style of a style model (TUNIT) at run time: from a reference image (`--reference REF`) or a
pseudo-domain's mean style (`--domain K`), chosen once per job, so every image and every frame of
a video gets the same style, and the same reference gives the same output every time.

A reference is read, converted to RGB and resized to the training size (area interpolation), the
same way for every backend. The PyTorch backend encodes it with the checkpoint's C_EMA; an exported
model with its style encoder graph (`NAME_style.onnx` beside it, ModelInfo.style_encoder), which
OpenCV's DNN module runs on the CPU: one small forward per job, and OpenCV is present wherever the
runtime is (JetPack's too), unlike ONNX Runtime. The mean styles travel in the model's metadata.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from nicegan.common import ImageReadError, read_image
from nicegan.export.metadata import ModelInfo, decode_styles
from nicegan.runtime.backends.base import BackendError

if TYPE_CHECKING:
    from nicegan.runtime.backends.base import Backend


def prepare_reference(rgb: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 image as the style encoder takes it: float32 (1, 3, size, size) in [-1, 1]."""
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(127.5)
                                - np.float32(1))


def read_reference(path: str | os.PathLike, size: int) -> np.ndarray:
    """A reference image file, prepared for the style encoder (prepare_reference)."""
    try:
        bgr = read_image(Path(path), keep_format=False)
    except ImageReadError as exc:
        raise BackendError(f"--reference {path}: {exc}") from None
    return prepare_reference(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)


def style_graph_path(model_path: str | os.PathLike, info: ModelInfo) -> Path:
    """The style encoder graph beside an exported style model (or beside the engine built from it)."""
    if not info.style_encoder:
        raise BackendError(f"{model_path}: its metadata names no style encoder graph; re-export the checkpoint with "
                           "`nicegan export onnx CHECKPOINT` (without --reference/--domain), or use --domain K")
    path = Path(model_path).with_name(info.style_encoder)
    if not path.is_file():
        raise BackendError(f"{path}: the style encoder of {Path(model_path).name} is missing; copy the "
                           f"{info.style_encoder} that `nicegan export onnx` wrote beside it, or use --domain K")
    return path


class StyleGraph:
    """An exported style encoder graph run by OpenCV's DNN module: (1, 3, S, S) -> (1, D) float32."""

    def __init__(self, path: Path):
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise BackendError(f"{path}: OpenCV cannot read this style encoder ({str(exc).strip()[:160]}); "
                               "re-export the checkpoint with `nicegan export onnx`") from None

    def __call__(self, reference: np.ndarray) -> np.ndarray:
        self.net.setInput(reference)
        return np.asarray(self.net.forward(), dtype=np.float32).reshape(1, -1)


def domain_style(info: ModelInfo, domain: int) -> np.ndarray:
    """Pseudo-domain `domain`'s mean style (1, D) from the model's metadata."""
    if not 0 <= domain < info.domains:
        raise BackendError(f"--domain {domain}: this model has {info.domains} pseudo-domains; choose 0..{info.domains - 1}")
    if not info.domain_styles:
        raise BackendError(f"--domain {domain}: this model stores no mean styles (its run had no test images); "
                           "use --reference IMG")
    counts = domain_counts(info)
    if counts[domain] == 0:
        populated = ", ".join(str(k) for k, c in enumerate(counts) if c)
        raise BackendError(f"--domain {domain}: no test image fell into this pseudo-domain, so it has no mean style; "
                           f"choose one of {populated}, or use --reference IMG")
    return decode_styles(info)[domain:domain + 1]


def first_populated_domain(info: ModelInfo) -> int | None:
    if not info.domain_styles:
        return None
    return next((k for k, c in enumerate(domain_counts(info)) if c), None)


def domain_counts(info: ModelInfo) -> list[int]:
    return [int(c) for c in info.domain_counts.split(",")] if info.domain_counts else [1] * info.domains


def default_style(info: ModelInfo) -> np.ndarray | None:
    """A style model's style until a job chooses one: its first pseudo-domain with a mean style."""
    domain = first_populated_domain(info)
    return None if domain is None else domain_style(info, domain)


def require_style(backend: Backend) -> None:
    """A style model without a style (its run stored no mean styles) cannot translate yet."""
    if backend.info.latent_dim and backend.latent is None:
        raise BackendError("this model translates into the style of a reference: pass --reference IMG (its run "
                           "stored no pseudo-domain styles for --domain K)")


def refuse_style_options(info: ModelInfo, reference: str | None, domain: int | None) -> None:
    """--reference and --domain choose a style model's style; other models refuse them."""
    if info.code == "style" and info.latent_dim:
        return
    given = f"--reference {reference}" if reference else f"--domain {domain}"
    baked = f" (its style is baked in: {info.style})" if info.style else ""
    raise BackendError(f"{given}: this model has no style input{baked}; a TUNIT model exported without "
                       "--reference/--domain, or its checkpoint, takes one: drop it or use such a model")


@dataclass(frozen=True)
class StyleChoice:
    """`translate --reference REF` or `--domain K`; neither: the model's default style."""
    reference: str | None = None
    domain: int | None = None

    def apply(self, backend: Backend) -> str | None:
        """Give `backend` this style for the rest of the job; the line that says which (None: not a style model)."""
        info = backend.info
        if self.reference is None and self.domain is None:
            if info.code != "style" or not info.latent_dim:
                return None
            require_style(backend)
            return (f"style: pseudo-domain {first_populated_domain(info)}'s mean (the default; choose with "
                    "--reference IMG or --domain K)")
        refuse_style_options(info, self.reference, self.domain)
        if self.reference is not None:
            backend.use_style(backend.reference_style(read_reference(self.reference, info.img_size)))
            return f"style: of the reference {self.reference}"
        backend.use_style(domain_style(info, self.domain))
        return f"style: pseudo-domain {self.domain}'s mean"
