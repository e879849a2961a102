"""NICE-GAN's sample grids as the official trainer draws them, computed on the training device.

One column per image, five tiles from top to bottom: input, CAM heatmap (JET), reconstruction
(source encoder + other generator), translation, cycle (target encoder + other generator). A latent
model has one translation tile per sample code (nicegan.models.latent.sample_latents), its cycle
taken from the first.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from nicegan.models.latent import translate_with
from nicegan.models.nicegan.networks import Discriminator, ResnetGenerator
from nicegan.trainer.samples import LuminanceCheck, luminance_check, tile_columns


def cam_heatmap(heatmap: torch.Tensor, size: int) -> np.ndarray:
    """1xhxw heatmap -> size x size BGR JET image, min-max normalised like the official `cam()`."""
    values = heatmap.detach().float().cpu().numpy()[0]
    span = values.max() - values.min()
    normalised = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    gray = cv2.resize(np.uint8(255 * normalised), (size, size))
    return cv2.applyColorMap(gray, cv2.COLORMAP_JET)


@torch.no_grad()
def translation_columns(source_dis: Discriminator, to_target: ResnetGenerator, target_dis: Discriminator,
                        to_source: ResnetGenerator, images: torch.Tensor,
                        latents: Sequence[torch.Tensor | None] = (None,)) -> tuple[np.ndarray, LuminanceCheck]:
    """The grid for one direction and its brightness check; the caller puts the networks in eval mode."""
    _, _, _, heatmap, z = source_dis(images)
    translations = [translate_with(to_target, latent, z, images) for latent in latents]
    translated = translations[0]
    cycled = to_source(target_dis.encode(translated)[0], translated)
    recon = to_source(z, images)
    size = images.shape[-1]
    columns = [[images[i], cam_heatmap(heatmap[i], size), recon[i], *(t[i] for t in translations), cycled[i]]
               for i in range(images.shape[0])]
    return tile_columns(columns), luminance_check(images, translated)

