"""TUNIT's training images: each one twice, as the official loader makes them (clovaai/tunit
`datasets/datasetgetter.py`, MIT licence), with PIL and torch instead of torchvision:

- x_org: square resize to img_size (bilinear), random horizontal flip;
- x_tf, the augmented view the guiding network must agree with: RandomAffine(20 degrees, translate
  0.1, shear 10; nearest, black fill) of the whole image, RandomResizedCrop(img_size, scale 0.9-1.1,
  ratio 0.9-1.1; bilinear), ColorJitter(0.4, 0.4, 0.4, 0.125) in a random order, random flip.

The colour jitter makes the pseudo-domains colour-invariant: TUNIT groups by shape and content.
The official two-domain sets (summer2winter, photo2ukiyoe) train without it (`--no-color-jitter`).
The draws follow torchvision's parametrisation but not its random stream; every draw comes from
the image's own generator, so a resumed run sees the same views.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance

from nicegan.trainer.data import to_tensor

AFFINE_DEGREES, AFFINE_TRANSLATE, AFFINE_SHEAR = 20.0, 0.1, 10.0
CROP_SCALE, CROP_RATIO = (0.9, 1.1), (0.9, 1.1)
JITTER = 0.4       # brightness, contrast and saturation factors in [0.6, 1.4]
HUE_JITTER = 0.125


class Draws:
    """Uniform draws from a torch generator (None: torch's global one)."""

    def __init__(self, generator: torch.Generator | None):
        self.generator = generator

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return int(torch.randint(low, high, (), generator=self.generator))

    def coin(self) -> bool:
        return float(torch.rand((), generator=self.generator)) < 0.5

    def order(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.generator).tolist()


def random_flip(image: Image.Image, draws: Draws) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if draws.coin() else image


def random_affine(image: Image.Image, draws: Draws) -> Image.Image:
    """A rotation, a translation and an x-shear about the centre; PIL takes the inverse map."""
    width, height = image.size
    angle = math.radians(draws.uniform(-AFFINE_DEGREES, AFFINE_DEGREES))
    shift = np.array([round(draws.uniform(-AFFINE_TRANSLATE * width, AFFINE_TRANSLATE * width)),
                      round(draws.uniform(-AFFINE_TRANSLATE * height, AFFINE_TRANSLATE * height))])
    shear = math.radians(draws.uniform(-AFFINE_SHEAR, AFFINE_SHEAR))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    forward = rotation @ np.array([[1.0, math.tan(shear)], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre = np.array([width * 0.5, height * 0.5])
    offset = centre - inverse @ (centre + shift)
    coefficients = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    return image.transform(image.size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.NEAREST,
                           fillcolor=(0, 0, 0))


def crop_box(width: int, height: int, draws: Draws) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (left, top, right, bottom): ten tries at a random area and
    aspect ratio, then the centre crop."""
    area = width * height
    log_low, log_high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * draws.uniform(*CROP_SCALE)
        aspect = math.exp(draws.uniform(log_low, log_high))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = draws.integer(0, height - h + 1), draws.integer(0, width - w + 1)
            return left, top, left + w, top + h
    ratio = width / height
    w, h = width, height
    if ratio < CROP_RATIO[0]:
        h = int(round(w / CROP_RATIO[0]))
    elif ratio > CROP_RATIO[1]:
        w = int(round(h * CROP_RATIO[1]))
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def shift_hue(image: Image.Image, amount: float) -> Image.Image:
    """torchvision's PIL hue shift: the HSV hue channel plus amount x 255, wrapping around."""
    h, s, v = image.convert("HSV").split()
    hue = (np.asarray(h, dtype=np.uint8).astype(np.int16) + int(amount * 255) % 256) % 256
    return Image.merge("HSV", (Image.fromarray(hue.astype(np.uint8), "L"), s, v)).convert("RGB")


def color_jitter(image: Image.Image, draws: Draws) -> Image.Image:
    """Brightness, contrast, saturation and hue, each by a random factor, in a random order."""
    order = draws.order(4)
    factors = [draws.uniform(1 - JITTER, 1 + JITTER) for _ in range(3)] + [draws.uniform(-HUE_JITTER, HUE_JITTER)]
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    for index in order:
        image = enhancers[index](image).enhance(factors[index]) if index < 3 else shift_hue(image, factors[3])
    return image


@dataclass(frozen=True)
class TwoViews:
    """PIL image -> (6, S, S): x_org's RGB channels, then x_tf's, in [-1, 1]. A class, not a closure,
    so DataLoader workers started by spawn can receive it."""
    img_size: int
    jitter: bool = True

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        draws = Draws(generator)
        size = (self.img_size, self.img_size)
        original = random_flip(image.resize(size, Image.Resampling.BILINEAR), draws)
        view = random_affine(image, draws)
        view = view.crop(crop_box(*view.size, draws)).resize(size, Image.Resampling.BILINEAR)
        if self.jitter:
            view = color_jitter(view, draws)
        view = random_flip(view, draws)
        return torch.cat([to_tensor(original), to_tensor(view)])


def split_views(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_org, x_tf) of a batch of TwoViews."""
    return batch[:, :3].contiguous(), batch[:, 3:].contiguous()
