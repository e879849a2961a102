"""Pixels in and out of the model: pixel formats and the size policy.

Every backend takes uint8 BGR frames whose size the model accepts. `to_bgr8` / `from_bgr8`
convert any decoded image (gray, BGRA, 16-bit) to that and back; `SizePolicy.fit` /
`SizePolicy.restore` bring a frame to a size the model accepts and the output back to the
frame's own size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from nicegan.errors import NiceganError
from nicegan.export.metadata import ModelInfo

# Below this side the encoder's feature maps (1/4 of the input) get too small for its 3x3
# reflection-padded convolutions and instance statistics; tiny images are padded up to it.
MIN_SIDE = 32
_UINT16_TO_8 = 257.0  # 65535 / 255: maps full scale to full scale


class FrameError(NiceganError, ValueError):
    """An image the runtime cannot translate (unsupported pixel type); the message says why."""


@dataclass(frozen=True)
class PixelFormat:
    """What the decoded image looked like, so the output can be written back the same way."""
    channels: int       # 1 (gray), 3 (BGR) or 4 (BGRA)
    dtype: np.dtype     # uint8 or uint16


def pixel_format(image: np.ndarray) -> PixelFormat:
    if image.dtype not in (np.uint8, np.uint16):
        raise FrameError(f"pixel type {image.dtype} is not supported (use 8- or 16-bit images)")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3, 4):
        raise FrameError(f"{channels} channels are not supported (use gray, BGR or BGRA images)")
    return PixelFormat(channels, image.dtype)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any supported image -> uint8 BGR, the model's input format (alpha is dropped here)."""
    fmt = pixel_format(image)
    if fmt.dtype == np.uint16:
        image = np.rint(image / _UINT16_TO_8).astype(np.uint8)
    if fmt.channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if fmt.channels == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return image


def from_bgr8(bgr: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The model's uint8 BGR output -> the original image's format (gray, alpha re-attached, 16-bit)."""
    fmt = pixel_format(original)
    out = bgr
    if fmt.dtype == np.uint16:
        out = out.astype(np.uint16) * np.uint16(_UINT16_TO_8)
    if fmt.channels == 1:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).reshape(original.shape)
    elif fmt.channels == 4:
        out = np.dstack([out, original[:, :, 3]])
    return out


@dataclass(frozen=True)
class Placement:
    """How one frame was fitted to the model, so the output can be brought back to its size."""
    height: int
    width: int
    scaled: tuple[int, int]            # (h, w) after resizing, before padding
    pad: tuple[int, int, int, int]     # top, bottom, left, right


class SizePolicy:
    """Light models: the frame's own size (or downscaled to `max_size` on its longest side),
    padded by reflection to a multiple of `size_multiple` and at least `min_side`. Full models:
    resized to their fixed `img_size`. Outputs are cropped / resized back to the input size."""

    def __init__(self, info: ModelInfo, max_size: int | None = None, min_side: int = MIN_SIDE):
        if max_size is not None and max_size < min_side:
            raise FrameError(f"--max-size {max_size} is below the smallest model input ({min_side} px)")
        self.info = info
        self.max_size = max_size
        self.min_side = min_side

    def placement(self, height: int, width: int) -> Placement:
        if not self.info.dynamic_hw:
            size = self.info.img_size
            return Placement(height, width, (size, size), (0, 0, 0, 0))
        scaled_h, scaled_w = height, width
        if self.max_size and max(height, width) > self.max_size:
            scale = self.max_size / max(height, width)
            scaled_h, scaled_w = max(1, round(height * scale)), max(1, round(width * scale))
        pad_h = _padded(scaled_h, self.info.size_multiple, self.min_side) - scaled_h
        pad_w = _padded(scaled_w, self.info.size_multiple, self.min_side) - scaled_w
        return Placement(height, width, (scaled_h, scaled_w),
                         (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2))

    def fit(self, bgr: np.ndarray) -> tuple[np.ndarray, Placement]:
        place = self.placement(*bgr.shape[:2])
        out = _resize(bgr, place.scaled)
        if any(place.pad):
            # REFLECT_101 is torch's ReflectionPad2d; OpenCV folds it for pads larger than the side.
            out = cv2.copyMakeBorder(out, *place.pad, cv2.BORDER_REFLECT_101)
        return out, place

    @staticmethod
    def restore(out: np.ndarray, place: Placement) -> np.ndarray:
        top, bottom, left, right = place.pad
        h, w = out.shape[:2]
        out = out[top:h - bottom, left:w - right]
        return np.ascontiguousarray(_resize(out, (place.height, place.width)))


def _padded(side: int, multiple: int, min_side: int) -> int:
    side = max(side, min_side)
    return -(-side // multiple) * multiple


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrinking = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
