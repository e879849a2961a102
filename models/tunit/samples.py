"""TUNIT's pseudo-domain styles and sample grids, as the official validation draws them
(clovaai/tunit `validation/validation.py`): styles from C_EMA, pseudo-domains from argmax C.iic.

- `reference`: the first row the references, the first column the sources, each other tile the
  source in the style of its column's reference;
- `clusters`: the first column the sources, then one column per pseudo-domain in that domain's mean
  style (the official "AVG" grids), headed by the domain's first test image (blank when the domain
  holds none of the test images).
"""
from __future__ import annotations

import numpy as np
import torch

from nicegan.models.tunit.networks import Generator, GuidingNet
from nicegan.trainer.samples import LuminanceCheck, luminance_check, tile_columns

BATCH = 64
BLANK = 255   # the grey level of an empty tile


@torch.no_grad()
def pseudo_domains(guiding: GuidingNet, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.argmax(guiding.iic(chunk), 1) for chunk in images.split(BATCH)])


@torch.no_grad()
def style_codes(guiding_ema: GuidingNet, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([guiding_ema.moco(chunk) for chunk in images.split(BATCH)])


@torch.no_grad()
def domain_styles(guiding: GuidingNet, guiding_ema: GuidingNet, images: torch.Tensor,
                  k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, sty_dim) mean style of each pseudo-domain's images (zeros where it has none), their
    counts (K,) and every image's pseudo-domain (N,); the networks in eval mode."""
    labels = pseudo_domains(guiding, images)
    styles = style_codes(guiding_ema, images)
    counts = torch.bincount(labels, minlength=k)
    sums = torch.zeros(k, styles.shape[1], device=styles.device).index_add_(0, labels, styles)
    return sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype), counts, labels


def blank_tile(size: int) -> np.ndarray:
    return np.full((size, size, 3), BLANK, dtype=np.uint8)


@torch.no_grad()
def reference_grid(generator: Generator, guiding_ema: GuidingNet,
                   images: torch.Tensor) -> tuple[np.ndarray, LuminanceCheck]:
    """Every image in the style of every other (and its own) of `images`."""
    content = generator.cnt_encoder(images)
    styles = guiding_ema.moco(images)
    translations = [generator.decode(content, style[None]) for style in styles]
    columns = [[blank_tile(images.shape[-1]), *images]] + [[ref, *out] for ref, out in zip(images, translations)]
    return tile_columns(columns), luminance_check(images, translations[-1])


@torch.no_grad()
def cluster_grid(generator: Generator, sources: torch.Tensor, test_images: torch.Tensor, styles: torch.Tensor,
                 counts: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, LuminanceCheck]:
    """The sources in each pseudo-domain's mean style."""
    content = generator.cnt_encoder(sources)
    columns: list[list] = [[blank_tile(sources.shape[-1]), *sources]]
    translated = sources
    for domain, style in enumerate(styles):
        if int(counts[domain]) == 0:
            columns.append([blank_tile(sources.shape[-1])] * (len(sources) + 1))
            continue
        translated = generator.decode(content, style[None])
        header = test_images[int(torch.nonzero(labels == domain)[0])]
        columns.append([header, *translated])
    return tile_columns(columns), luminance_check(sources, translated)
