"""ONNX Runtime vs PyTorch on random, real and high-dynamic-range inputs.

The reference is always the FP32 PyTorch translator, so an FP16 graph is measured against what
the checkpoint computes, not against another FP16 simulation. Real photos come from
`real_images` paths or scikit-image's bundled photos; high-dynamic-range sets (saturated noise,
contrast-stretched photos) are added for FP16 graphs, where overflow would show as NaN/Inf.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn as nn

from nicegan.export.fp16 import NORM_TYPES
from nicegan.export.metadata import INPUT_NAME, LATENT_NAME, ModelInfo, decode_styles, latent_for_seed
from nicegan.export.translator import SIZE_MULTIPLE, UInt8IO

if TYPE_CHECKING:
    from pathlib import Path

    from nicegan.export.to_onnx import ExportReport, _Shapes

SKIMAGE_PHOTOS = ("coffee", "chelsea", "rocket", "astronaut")


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize: no padding, no distortion."""
    h, w = image.shape[:2]
    scale = min(h / height, w / width)
    ch, cw = round(height * scale), round(width * scale)
    y, x = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(image[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_AREA)


def _read_rgb(path: str | os.PathLike) -> np.ndarray:
    from nicegan.export.to_onnx import ExportError
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"{path}: not a readable image for the parity check; pass JPEG/PNG files")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def real_photos(paths: Sequence[str | os.PathLike] | None) -> list[np.ndarray] | None:
    """RGB uint8 photos: the given files, else scikit-image's bundled ones, else None."""
    if paths:
        return [_read_rgb(p) for p in paths]
    try:
        from skimage import data
    except ImportError:
        return None
    return [getattr(data, name)() for name in SKIMAGE_PHOTOS]


def _input_sets(height: int, width: int, dynamic: bool, fp16: bool, photos: list[np.ndarray] | None,
                seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB uint8 NHWC batch) pairs; random sets are continuous-valued only for float io."""
    rng = np.random.default_rng(seed)
    yield "random", rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    if dynamic:
        wide = width + max(SIZE_MULTIPLE, (width // 2) // SIZE_MULTIPLE * SIZE_MULTIPLE)
        yield "random non-square", rng.integers(0, 256, (1, height, wide, 3), dtype=np.uint8)
    fitted = np.stack([_fit(p, height, width) for p in photos]) if photos else None
    if fitted is not None:
        yield "photos", fitted
    if fp16:
        yield "saturated", (rng.integers(0, 2, (2, height, width, 3)) * 255).astype(np.uint8)
        if fitted is not None:
            stretched = (fitted.astype(np.float32) - 128.0) * 4.0 + 128.0
            yield "photos x4 contrast", np.clip(stretched, 0, 255).astype(np.uint8)


def _to_batches(images: np.ndarray, batch: int | None) -> list[np.ndarray]:
    if batch is None:
        return [images]
    reps = -(-len(images) // batch) * batch
    padded = np.concatenate([images] * (-(-reps // len(images))))[:reps]
    return [padded[i:i + batch] for i in range(0, reps, batch)]


def _float_input(rgb: np.ndarray, rng: np.random.Generator, continuous: bool) -> np.ndarray:
    x = rgb.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    if continuous:  # random sets: full-precision values, not only the 256 pixel levels
        x = np.clip(x + rng.uniform(-1 / 255, 1 / 255, x.shape).astype(np.float32), -1.0, 1.0)
    return x


class _NormInputPeak:
    """Forward hooks recording the largest |activation| entering any normalisation layer."""

    def __init__(self, module: nn.Module):
        self.peak = 0.0
        self._handles = [m.register_forward_pre_hook(self._record) for m in module.modules()
                         if isinstance(m, NORM_TYPES)]

    def _record(self, _module: nn.Module, args: tuple) -> None:
        self.peak = max(self.peak, float(args[0].detach().abs().max()))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


PARITY_SEEDS = (0, 1, 2)   # a latent model is checked with the codes of `translate --seed` 0, 1, 2


def _latents(info: ModelInfo) -> list[tuple[str, np.ndarray | None]]:
    """(label, code) pairs to check every input set with: one without a latent; a style model's
    first three pseudo-domain styles (the seeds' codes when it stores none)."""
    if not info.latent_dim:
        return [("", None)]
    if info.code == "style" and info.domain_styles:
        styles = decode_styles(info)
        return [(f", domain {k}", styles[k:k + 1]) for k in range(min(len(styles), len(PARITY_SEEDS)))]
    return [(f", seed {seed}", latent_for_seed(seed, info.latent_dim)) for seed in PARITY_SEEDS]


def _feeds(first: np.ndarray, latent: np.ndarray | None) -> dict[str, np.ndarray]:
    return {INPUT_NAME: first} if latent is None else {INPUT_NAME: first, LATENT_NAME: latent}


def _run_both(session, module: nn.Module, uint8_ref: nn.Module, info: ModelInfo, chunk: np.ndarray, latent: np.ndarray | None,
              rng: np.random.Generator, continuous: bool) -> tuple[np.ndarray, int]:
    """|ONNX Runtime - PyTorch| of one batch (pixel levels for uint8 io), and its non-finite outputs."""
    code = () if latent is None else (torch.from_numpy(latent),)
    if info.io == "uint8":
        frames = np.ascontiguousarray(chunk[..., ::-1])          # RGB -> BGR, as cv2 decodes
        with torch.no_grad():
            want = uint8_ref(torch.from_numpy(frames), *code).numpy().astype(np.int16)
        got = session.run(None, _feeds(frames, latent))[0].astype(np.int16)
        return np.abs(got - want).astype(np.float64), 0
    x = _float_input(chunk, rng, continuous)
    with torch.no_grad():
        want = module(torch.from_numpy(x), *code).numpy()
    got = session.run(None, _feeds(x, latent))[0]
    nonfinite = int(np.size(got) - np.isfinite(got).sum())
    return np.abs(np.nan_to_num(got, nan=9.0, posinf=9.0, neginf=9.0) - want), nonfinite


def measure_parity(report: ExportReport, onnx_path: Path, module: nn.Module, shapes: _Shapes,
                   real_images: Sequence[str | os.PathLike] | None, log: Callable[[str], None]) -> None:
    """Run every input set (a latent model: with each of PARITY_SEEDS' codes) through ONNX Runtime
    and the FP32 PyTorch module; append to report.checks."""
    import onnxruntime as ort

    from nicegan.export.to_onnx import FP16_TOLERANCE, FP32_TOLERANCE, UINT8_LEVELS, ParityCheck

    info = report.info
    fp16 = info.precision == "fp16"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    photos = real_photos(real_images)
    if photos is None:
        log("warning: real-image parity skipped (install scikit-image or pass parity image files)")
    height, width = shapes.parity_size(info)
    uint8_ref = UInt8IO(module).eval()
    probe = _NormInputPeak(module)
    rng = np.random.default_rng(1)
    log("parity, ONNX Runtime vs PyTorch fp32:")
    try:
        for name, rgb in _input_sets(height, width, shapes.height is None, fp16, photos):
            for label, latent in _latents(info):
                runs = [_run_both(session, module, uint8_ref, info, chunk, latent, rng, name.startswith("random"))
                        for chunk in _to_batches(rgb, shapes.batch)]
                diff = np.concatenate([d.ravel() for d, _ in runs])
                if info.io == "uint8":
                    check = ParityCheck(name + label, rgb.shape, float(diff.max()), float(diff.mean()),
                                        UINT8_LEVELS[info.precision], unit=" lv")
                else:
                    check = ParityCheck(name + label, rgb.shape, float(diff.max()), float(diff.mean()),
                                        FP16_TOLERANCE if fp16 else FP32_TOLERANCE, sum(n for _, n in runs))
                report.checks.append(check)
                log(check.line())
    finally:
        probe.close()
    report.norm_input_peak = probe.peak
    where = ("the norms run as FP32 islands" if report.info.precision == "fp16"
             else "an --fp16 export keeps the norms in FP32")
    log(f"  peak |activation| entering a normalisation: {probe.peak:.4g} (FP16 squares overflow above 256; {where})")
