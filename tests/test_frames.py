"""Pixel formats and the size policy: every image comes back with its own size and channels."""
from __future__ import annotations

import numpy as np
import pytest

from nicegan.export.metadata import ModelInfo
from nicegan.runtime.frames import MIN_SIDE, FrameError, SizePolicy, from_bgr8, pixel_format, to_bgr8
from runtime_fixtures import photo

LIGHT = ModelInfo(light=True, dynamic_hw=True, img_size=64, size_multiple=4)
FULL = ModelInfo(light=False, dynamic_hw=False, img_size=64, size_multiple=4)


def test_gray_converts_to_bgr_and_back_to_one_channel():
    gray = photo("coffee", 30, 41)[:, :, 1].copy()
    bgr = to_bgr8(gray)
    assert bgr.shape == (30, 41, 3) and np.array_equal(bgr[:, :, 0], gray) and np.array_equal(bgr[:, :, 2], gray)
    assert np.array_equal(from_bgr8(bgr, gray), gray)
    assert from_bgr8(bgr, gray[:, :, None]).shape == (30, 41, 1)


def test_alpha_is_dropped_for_the_model_and_reattached_unchanged():
    bgr = photo("chelsea", 20, 30)
    alpha = np.arange(600, dtype=np.uint8).reshape(20, 30)
    bgra = np.dstack([bgr, alpha])
    assert np.array_equal(to_bgr8(bgra), bgr)
    restored = from_bgr8(255 - bgr, bgra)
    assert restored.shape == (20, 30, 4)
    assert np.array_equal(restored[:, :, 3], alpha) and np.array_equal(restored[:, :, :3], 255 - bgr)


def test_sixteen_bit_is_scaled_to_eight_bit_and_written_back_sixteen_bit():
    eight = photo("coffee", 16, 16)
    sixteen = eight.astype(np.uint16) * 257 + 100  # not exactly representable: rounding matters
    assert np.array_equal(to_bgr8(sixteen), eight)
    back = from_bgr8(eight, sixteen)
    assert back.dtype == np.uint16 and np.array_equal(back, eight.astype(np.uint16) * 257)


@pytest.mark.parametrize("dtype,shape", [(np.float32, (4, 4, 3)), (np.uint8, (4, 4, 2))])
def test_unsupported_pixel_types_raise_a_clear_error(dtype, shape):
    with pytest.raises(FrameError):
        pixel_format(np.zeros(shape, dtype))


@pytest.mark.parametrize("height,width", [(64, 96), (63, 65), (5, 7), (1, 1), (33, 200)])
def test_light_model_input_is_padded_to_a_multiple_of_four_and_cropped_back(height, width):
    policy = SizePolicy(LIGHT)
    image = photo("rocket", height, width)
    fitted, place = policy.fit(image)
    h, w = fitted.shape[:2]
    assert h % 4 == 0 and w % 4 == 0 and h >= MIN_SIDE and w >= MIN_SIDE
    assert h - height < max(4, MIN_SIDE - height + 4) and w - width < max(4, MIN_SIDE - width + 4)
    top, _, left, _ = place.pad
    assert np.array_equal(fitted[top:top + height, left:left + width], image)
    assert np.array_equal(policy.restore(fitted, place), image)


def test_padding_reflects_like_torch_reflection_pad():
    import torch
    image = photo("coffee", 30, 38)       # pads 2 rows (1+1) and 2 columns (1+1)
    fitted, place = SizePolicy(LIGHT, min_side=4).fit(image)
    top, bottom, left, right = place.pad
    reference = torch.nn.ReflectionPad2d((left, right, top, bottom))(
        torch.from_numpy(image).permute(2, 0, 1).float()[None])[0].permute(1, 2, 0).numpy()
    assert np.array_equal(fitted, reference.astype(np.uint8))


def test_max_size_downscales_the_longest_side_and_restores_the_input_size():
    policy = SizePolicy(LIGHT, max_size=64)
    image = photo("astronaut", 120, 200)
    fitted, place = policy.fit(image)
    assert place.scaled == (38, 64) and fitted.shape[:2] == (40, 64)
    restored = policy.restore(fitted, place)
    assert restored.shape == image.shape
    # resized down and back up: close to the input, not equal to it
    assert 0 < np.abs(restored.astype(int) - image).mean() < 20


def test_full_model_runs_at_its_fixed_size_and_is_resized_back():
    policy = SizePolicy(FULL)
    image = photo("chelsea", 50, 70)
    fitted, place = policy.fit(image)
    assert fitted.shape == (64, 64, 3)
    assert policy.restore(fitted, place).shape == (50, 70, 3)


def test_max_size_below_the_smallest_model_input_is_refused():
    with pytest.raises(FrameError, match="max-size"):
        SizePolicy(LIGHT, max_size=8)
