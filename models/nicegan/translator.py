"""NICE-GAN's deployed translator: the source domain's encoder (CAM folded) followed by the generator.

NICE-GAN's official test path runs the whole discriminator and keeps only its fifth output z.
Here the encoder is rebuilt from the discriminator's trunk with spectral norm baked in eval mode,
and the CAM block (cat[x0, x0] * fc.weight_orig -> conv1x1 -> lamda*h + x0) becomes one 1x1 conv,
which is exact because every step of it is linear in x0 (architecture notes, section 7).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils import remove_spectral_norm

from nicegan.models.nicegan.checkpoint import NiceNetworks
from nicegan.models.nicegan.networks import Discriminator, ResnetGenerator


def _baked_trunk(dis: Discriminator) -> nn.Sequential:
    """The encoder trunk (`model`) with its spectral-normalised weights frozen at eval-mode values.

    `remove_spectral_norm` on an eval-mode module computes W = weight_orig / sigma from the stored
    u and v without a power iteration, which is what the official eval forward uses.
    """
    trunk = copy.deepcopy(dis.model).eval()
    for layer in trunk:
        if hasattr(layer, "weight_orig"):
            remove_spectral_norm(layer)
    return trunk


def fold_cam(dis: Discriminator) -> nn.Conv2d:
    """The CAM block as one 1x1 conv C -> C: W[o,i] = lamda*(K[o,i]*w[i] + K[o,C+i]*w[C+i]) + delta(o,i).

    w is the raw `fc.weight_orig` (the official attention weight), never the normalised one.
    Folding runs in float64 so the folded conv is as close to the unfolded maths as fp32 allows.
    """
    kernel = dis.conv1x1.weight.detach().double().flatten(1)          # (C, 2C)
    channels = kernel.shape[0]
    attention = dis.cam_weight().detach().double().flatten()          # (2C,)
    lamda = dis.lamda.detach().double()
    folded = lamda * (kernel[:, :channels] * attention[:channels] + kernel[:, channels:] * attention[channels:])
    folded = folded + torch.eye(channels, dtype=torch.float64)
    conv = nn.Conv2d(channels, channels, kernel_size=1, bias=True)
    with torch.no_grad():
        conv.weight.copy_(folded.view(channels, channels, 1, 1).float())
        conv.bias.copy_((lamda * dis.conv1x1.bias.detach().double()).float())
    return conv


class FoldedEncoder(nn.Module):
    """x (B,3,H,W) in [-1,1] -> z (B,2*ch,H/4,W/4): trunk + folded CAM + LeakyReLU(0.2)."""

    def __init__(self, dis: Discriminator):
        super().__init__()
        self.trunk = _baked_trunk(dis)
        self.cam = fold_cam(dis)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.cam(self.trunk(x)))


class NiceTranslator(nn.Module):
    """float32 NCHW RGB in [-1, 1] -> same: the deployed NICE-GAN path, no discriminator heads; a
    latent model also takes its code, (1, latent_dim)."""

    def __init__(self, dis: Discriminator, gen: ResnetGenerator):
        super().__init__()
        self.encoder = FoldedEncoder(dis)
        self.gen = gen.eval()  # shared, not copied: the full model's generator holds 1 GB

    def forward(self, x: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        return self.gen(self.encoder(x), x, latent)


def nice_translator(nets: NiceNetworks, direction: str) -> nn.Module:
    dis, gen = nets.encoder_and_generator(direction)
    return NiceTranslator(dis.eval(), gen.eval()).eval()
