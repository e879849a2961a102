"""Sample grids as the official trainer draws them, computed on the training device.

One column per image, five tiles from top to bottom: input, CAM heatmap (JET), reconstruction
(source encoder + other generator), translation, cycle (target encoder + other generator).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from trainer.networks import Discriminator, ResnetGenerator


def to_bgr_uint8(image: torch.Tensor) -> np.ndarray:
    """CHW RGB in [-1, 1] -> HWC BGR uint8."""
    rgb = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def cam_heatmap(heatmap: torch.Tensor, size: int) -> np.ndarray:
    """1xhxw heatmap -> size x size BGR JET image, min-max normalised like the official `cam()`."""
    values = heatmap.detach().float().cpu().numpy()[0]
    span = values.max() - values.min()
    normalised = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    gray = cv2.resize(np.uint8(255 * normalised), (size, size))
    return cv2.applyColorMap(gray, cv2.COLORMAP_JET)


def luminance_correlation(images: torch.Tensor, translated: torch.Tensor) -> float:
    """Pearson correlation of pixel brightness (channel mean) between inputs and translations,
    all images pooled: near +1 for a translation that keeps the scene's light and shade."""
    a = images.detach().float().mean(dim=1).flatten()
    b = translated.detach().float().mean(dim=1).flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def inversion_warning(direction: str, correlation: float, step: int) -> str | None:
    """A warning when a direction's samples are brightness-inverted.

    Small NICE-GAN models can settle on an inverting generator whose inversion the other
    domain's encoder + generator undo, so the cycle and reconstruction losses look healthy
    while every translation is a negative; only the pictures (or this number) show it.
    """
    if correlation >= 0:
        return None
    return (f"warning: step {step}: the {direction} samples are brightness-inverted (luminance correlation "
            f"{correlation:+.2f} with their inputs), a known failure of small NICE-GAN models that the losses "
            "do not show; if it persists, restart with another --seed (see docs/MODEL.md)")


@torch.no_grad()
def translation_columns(source_dis: Discriminator, to_target: ResnetGenerator, target_dis: Discriminator,
                        to_source: ResnetGenerator, images: torch.Tensor) -> tuple[np.ndarray, float]:
    """The grid for one direction and its luminance correlation; the caller puts the networks in eval mode."""
    _, _, _, heatmap, z = source_dis(images)
    translated = to_target(z, images)
    cycled = to_source(target_dis.encode(translated)[0], translated)
    recon = to_source(z, images)
    size = images.shape[-1]
    columns = [np.concatenate([to_bgr_uint8(images[i]), cam_heatmap(heatmap[i], size), to_bgr_uint8(recon[i]),
                               to_bgr_uint8(translated[i]), to_bgr_uint8(cycled[i])], axis=0)
               for i in range(images.shape[0])]
    return np.concatenate(columns, axis=1), luminance_correlation(images, translated)


def write_image_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Encode with cv2 (format from the suffix), write a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
