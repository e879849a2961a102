"""Sample grids as the official trainer draws them, computed on the training device.

One column per image, five tiles from top to bottom: input, CAM heatmap (JET), reconstruction
(source encoder + other generator), translation, cycle (target encoder + other generator).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from nicegan.models.nicegan.networks import Discriminator, ResnetGenerator


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


# A real inversion: the translation's light and shade are the input's reversed (strongly negative
# correlation), and it is an image, not noise: its brightness varies at least a quarter as much as
# the input's and neighbouring pixels agree. A model a few steps old has a correlation near 0
# (-0.03 at step 4) and must not be told to restart.
INVERTED_BELOW = -0.5
MIN_CONTRAST = 0.25
MIN_SMOOTHNESS = 0.5


@dataclass(frozen=True)
class LuminanceCheck:
    """How a direction's translations relate to their inputs' brightness, all images pooled."""
    correlation: float   # Pearson, pixel brightness of input vs translation: +1 keeps light and shade
    contrast: float      # std of the translation's brightness / std of the input's
    smoothness: float    # correlation of horizontally neighbouring pixels of the translation: ~0 for noise

    @property
    def inverted(self) -> bool:
        return (self.correlation <= INVERTED_BELOW and self.contrast >= MIN_CONTRAST
                and self.smoothness >= MIN_SMOOTHNESS)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    value = float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])
    return value if math.isfinite(value) else 0.0   # a constant image correlates with nothing


def luminance_check(images: torch.Tensor, translated: torch.Tensor) -> LuminanceCheck:
    a = images.detach().float().mean(dim=1)       # brightness: the channel mean, (N, H, W)
    b = translated.detach().float().mean(dim=1)
    contrast = float(b.std() / a.std()) if float(a.std()) > 0 else 0.0
    return LuminanceCheck(_pearson(a, b), contrast, _pearson(b[:, :, 1:], b[:, :, :-1]))


def inversion_warning(direction: str, check: LuminanceCheck, step: int) -> str | None:
    """A warning when a direction's samples are brightness-inverted.

    Small NICE-GAN models can settle on an inverting generator whose inversion the other
    domain's encoder + generator undo, so the cycle and reconstruction losses look healthy
    while every translation is a negative; only the pictures (or these numbers) show it.
    """
    if not check.inverted:
        return None
    return (f"warning: step {step}: the {direction} samples are brightness-inverted (luminance correlation "
            f"{check.correlation:+.2f} with their inputs), a known failure of small NICE-GAN models that the losses "
            "do not show; if it persists, restart with another --seed (see docs/MODEL.md)")


@torch.no_grad()
def translation_columns(source_dis: Discriminator, to_target: ResnetGenerator, target_dis: Discriminator,
                        to_source: ResnetGenerator, images: torch.Tensor) -> tuple[np.ndarray, LuminanceCheck]:
    """The grid for one direction and its brightness check; the caller puts the networks in eval mode."""
    _, _, _, heatmap, z = source_dis(images)
    translated = to_target(z, images)
    cycled = to_source(target_dis.encode(translated)[0], translated)
    recon = to_source(z, images)
    size = images.shape[-1]
    columns = [np.concatenate([to_bgr_uint8(images[i]), cam_heatmap(heatmap[i], size), to_bgr_uint8(recon[i]),
                               to_bgr_uint8(translated[i]), to_bgr_uint8(cycled[i])], axis=0)
               for i in range(images.shape[0])]
    return np.concatenate(columns, axis=1), luminance_check(images, translated)

