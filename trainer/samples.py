"""What every architecture's sample grids share: tiles in uint8 BGR, one column per image, and the
check for brightness-inverted translations (each architecture draws its own tiles:
nicegan.models.*.samples)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch


def to_bgr_uint8(image: torch.Tensor) -> np.ndarray:
    """CHW RGB in [-1, 1] -> HWC BGR uint8."""
    rgb = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


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

    Small models can settle on an inverting generator whose inversion the other direction
    undoes, so the cycle (and NICE-GAN's reconstruction) losses look healthy while every
    translation is a negative; only the pictures (or these numbers) show it.
    """
    if not check.inverted:
        return None
    return (f"warning: step {step}: the {direction} samples are brightness-inverted (luminance correlation "
            f"{check.correlation:+.2f} with their inputs), a known failure of small models that the losses "
            "do not show; if it persists, restart with another --seed (see docs/MODEL.md)")


def tile_columns(columns: list[list[torch.Tensor | np.ndarray]]) -> np.ndarray:
    """One column per image, its tiles (CHW tensors in [-1, 1] or BGR arrays) from top to bottom."""
    return np.concatenate([np.concatenate([tile if isinstance(tile, np.ndarray) else to_bgr_uint8(tile)
                                           for tile in column], axis=0) for column in columns], axis=1)
