"""The deployable translator of every architecture: float NCHW RGB in [-1, 1] in and out, with
the uint8 NHWC BGR ends and the in-graph rescaling that every export and the PyTorch backend wrap
around it. `load_translator` builds it from any checkpoint the project reads.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from nicegan.common import file_sha256
from nicegan.errors import NiceganError
from nicegan.export.metadata import ModelInfo
from nicegan.models.architecture import read_any_checkpoint
from nicegan.trainer.checkpoint import CheckpointError

DIRECTIONS = ("a2b", "b2a")
SIZE_MULTIPLE = 4
SCALES = (1, 2, 3, 4)


class TranslatorError(NiceganError, ValueError):
    """A source that cannot become a translator; the message names the file and the fix."""


class UInt8IO(nn.Module):
    """uint8 NHWC BGR in -> uint8 NHWC BGR out around a float translator.

    The casts sit at the graph's ends: TensorRT accepts uint8 only as network I/O. Rounding is
    half to even (ONNX Round, like cv2's saturate_cast), then clamped to 0..255. A latent model's
    code (`latent`, float32 (1, latent_dim)) goes to the translator as it is.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.translator = module

    def forward(self, frames: torch.Tensor, *latent: torch.Tensor) -> torch.Tensor:
        x = frames.float().permute(0, 3, 1, 2).flip(1)                # NHWC BGR -> NCHW RGB
        y = self.translator(x / 127.5 - 1.0, *latent).float()
        pixels = torch.clamp(torch.round((y + 1.0) * 127.5), 0.0, 255.0)
        return pixels.flip(1).permute(0, 2, 3, 1).to(torch.uint8)    # NCHW RGB -> NHWC BGR


class Rescaled(nn.Module):
    """Runs a translator at `scale` times the input size: bilinear up, translate, area down.

    A small light model's 4x-downsampling encoder keeps mostly the low frequencies at the size it
    runs at. Run on the input enlarged `scale` times, what it loses is detail finer than the input
    has, and the area reduction gives the input's own detail back (the session-4 model's scale sweep:
    docs/MODEL.md). A residual model keeps the detail anyway and is blurred by it instead. Bilinear
    matches the trainer's PIL enlargement (`--load-size`) and every TensorRT version's Resize;
    average pooling by `scale` is exactly cv2's INTER_AREA.
    """

    def __init__(self, module: nn.Module, scale: int):
        super().__init__()
        self.translator = module
        self.scale = scale

    def forward(self, x: torch.Tensor, *latent: torch.Tensor) -> torch.Tensor:
        enlarged = F.interpolate(x, scale_factor=float(self.scale), mode="bilinear", align_corners=False)
        return F.avg_pool2d(self.translator(enlarged, *latent), self.scale)


class FixedCode(nn.Module):
    """A translator with its second input fixed: one baked style (or latent code) for every frame,
    so the graph has one input and runs without the runtime choosing a code."""

    def __init__(self, module: nn.Module, code: torch.Tensor):
        super().__init__()
        self.translator = module
        self.register_buffer("code", code.detach().float().reshape(1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.translator(x, self.code.to(x.dtype))


def check_scale(scale: int) -> None:
    if scale not in SCALES:
        raise TranslatorError(f"--scale {scale}: choose one of {', '.join(map(str, SCALES))}")


def _rescaled(module: nn.Module, scale: int) -> nn.Module:
    return module if scale == 1 else Rescaled(module, scale).eval()


def with_uint8_io(module: nn.Module) -> UInt8IO:
    return UInt8IO(module)


def load_translator(path: str | os.PathLike, direction: str = "a2b", default_img_size: int = 256,
                    scale: int = 1) -> tuple[nn.Module, ModelInfo]:
    """An eval-mode float translator and its ModelInfo (io="float", precision="fp32"), run at
    `scale` times the input size when scale > 1 (see Rescaled). A latent model's translator takes
    its code as a second argument (`info.latent_dim` > 0).

    Accepts what an architecture of nicegan.models reads: NICE-GAN checkpoints (official or
    project layout), CycleGAN runs (our latest.pt, a folder of official *_net_*.pth; either
    direction) and CycleGAN ResNet generator state_dicts (junyanz or vintagify layout; a2b).
    `default_img_size` applies to files that store no size: official light checkpoints and
    CycleGAN generators.
    """
    if direction not in DIRECTIONS:
        raise TranslatorError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    check_scale(scale)  # before a 1 GB checkpoint is read
    if Path(path).is_dir():
        raise TranslatorError(f"{path}: a folder; pass one checkpoint file (a CycleGAN run's RUN/latest.pt, or one "
                              "generator's latest_net_G_A.pth)")
    try:
        architecture, ckpt = read_any_checkpoint(path)
        module, info = architecture.translator(ckpt, Path(path), direction, default_img_size)
    except CheckpointError as error:
        raise TranslatorError(str(error)) from error
    if scale > 1 and not info.light:
        raise TranslatorError(f"{path}: a full (non-light) model runs at its training size only; drop --scale")
    return _rescaled(module, scale), replace(info, source_sha256=file_sha256(path), scale=scale)


def load_style_encoder(path: str | os.PathLike) -> tuple[nn.Module, int]:
    """A style model's (TUNIT's) eval-mode reference encoder and the square size it takes references at."""
    try:
        architecture, ckpt = read_any_checkpoint(path)
        encoder = architecture.style_encoder(ckpt, Path(path))
    except CheckpointError as error:
        raise TranslatorError(str(error)) from error
    if encoder is None:
        raise TranslatorError(f"{path}: a {architecture.title} checkpoint has no style input; --reference and "
                              "--domain are for TUNIT models (nicegan train --arch tunit)")
    return encoder
