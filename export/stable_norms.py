"""ILN/adaILN for export: the official maths with the statistics reduced in stages.

The layer-norm statistics of NICE-GAN's generator reduce over C*H*W values (1 M per sample at
256 px, 8 M at 1080p). ONNX Runtime's (and likely TensorRT's) FP32 ReduceMean sums them in one
pass and loses ~1e-6 relative, which the 17 norms of the light generator amplify to 1.4e-4 at
the output (torch's pairwise reductions: 8e-6). Reducing over W, then H, then C keeps every sum
short: 4e-6 in ONNX Runtime on the same model. The values are the official ones: unbiased
variances, softmax(rho) mix, eps inside the square root.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nicegan.models.nicegan.networks import ILN, adaILN


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)


def staged_mix_coefficients(x: torch.Tensor, rho: torch.Tensor,
                            eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x - instance mean, scale, shift) with dev * scale + shift equal to
    trainer.networks.mix_instance_layer_norm(x, rho, eps), from short reductions only.

    The mix of the two normalisations is linear in x, so it is one per-channel scale and shift on
    the full tensor (6 full-tensor passes per norm in all instead of 13); the layer variance comes from the channel
    statistics (mean over channels of variance + squared mean offset), never from a second pass.
    """
    pixels = x.shape[2] * x.shape[3]
    channels = x.shape[1]
    in_mean = _spatial_mean(x)
    in_dev = x - in_mean
    in_spread = _spatial_mean(in_dev * in_dev)                      # biased, per (sample, channel)
    ln_mean = in_mean.mean(dim=1, keepdim=True)
    offset = in_mean - ln_mean
    ln_spread = (in_spread + offset * offset).mean(dim=1, keepdim=True)
    in_inv_std = torch.rsqrt(in_spread * (pixels / (pixels - 1)) + eps)
    ln_inv_std = torch.rsqrt(ln_spread * (pixels * channels / (pixels * channels - 1)) + eps)
    weights = torch.softmax(rho, dim=2).unsqueeze(3)          # (1, C, 2, 1)
    ln_part = weights[:, :, 1:2] * ln_inv_std
    return in_dev, weights[:, :, 0:1] * in_inv_std + ln_part, ln_part * offset


def staged_affine_norm(x: torch.Tensor, rho: torch.Tensor, eps: float, gamma: torch.Tensor,
                       beta: torch.Tensor) -> torch.Tensor:
    """mix_instance_layer_norm(x) * gamma + beta, with gamma and beta of shape (N or 1, C, 1, 1)."""
    in_dev, scale, shift = staged_mix_coefficients(x, rho, eps)
    return in_dev * (scale * gamma) + (shift * gamma + beta)


class StagedILN(nn.Module):
    """An ILN's parameters with the staged statistics."""

    def __init__(self, norm: ILN):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        return staged_affine_norm(x, norm.rho, norm.eps, norm.gamma, norm.beta)


class StagedAdaILN(nn.Module):
    """An adaILN's parameters with the staged statistics; gamma/beta come from the MLP at run time."""

    def __init__(self, norm: adaILN):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return staged_affine_norm(x, self.norm.rho, self.norm.eps, gamma.unsqueeze(2).unsqueeze(3),
                                  beta.unsqueeze(2).unsqueeze(3))


def staged(norm: nn.Module) -> nn.Module:
    """The export form of a normalisation layer (other norm types are exported as they are)."""
    if isinstance(norm, ILN):
        return StagedILN(norm)
    if isinstance(norm, adaILN):
        return StagedAdaILN(norm)
    return norm
