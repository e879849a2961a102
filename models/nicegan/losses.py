"""NICE-GAN losses: LSGAN on the three discriminator heads, L1 cycle and reconstruction.

Sums are grouped as in the official `NICE.py` so the float results match it closely.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

# Discriminator.forward returns (out0 local, out1 global, cam_logit, heatmap, z).
LOCAL, GLOBAL, CAM = 0, 1, 2


@dataclass(frozen=True)
class LossWeights:
    adv: float = 1.0
    cycle: float = 10.0
    recon: float = 10.0


def lsgan(logit: torch.Tensor, target_real: bool) -> torch.Tensor:
    """Least-squares GAN term: MSE against all-ones (real) or all-zeros (fake), in fp32."""
    logit = logit.float()
    target = torch.ones_like(logit) if target_real else torch.zeros_like(logit)
    return F.mse_loss(logit, target)


def discriminator_domain_loss(real_out: Sequence[torch.Tensor], fake_out: Sequence[torch.Tensor],
                              adv_weight: float) -> torch.Tensor:
    """adv * (global + cam + local), each real->1 plus fake->0 (official D_loss_A / D_loss_B)."""
    def head(index: int) -> torch.Tensor:
        return lsgan(real_out[index], True) + lsgan(fake_out[index], False)

    return adv_weight * (head(GLOBAL) + head(CAM) + head(LOCAL))


def generator_adversarial_loss(fake_out: Sequence[torch.Tensor]) -> torch.Tensor:
    """Unweighted global + cam + local terms pushing the fakes' logits to 1."""
    return lsgan(fake_out[GLOBAL], True) + lsgan(fake_out[CAM], True) + lsgan(fake_out[LOCAL], True)


def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output.float(), target.float())
