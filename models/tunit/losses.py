"""TUNIT's losses, the official `tools/ops.py` (clovaai/tunit, MIT licence) in this project's words,
with the same operations in the same order, so that a step equals the official one to the last
bits that floating point allows (tests/test_tunit_parity.py).

- IIC (Ji et al., ICCV 2019): minus the mutual information of the symmetrised joint distribution
  of the pseudo-domain probabilities of an image and of its augmented view;
- the MoCo contrastive loss (He et al., CVPR 2020): cross-entropy of the positive pair's dot
  product against the queue's, at temperature 0.07. The codes are not L2-normalised, as in the
  official code, which normalises nowhere;
- the hinge adversarial losses, R1 on real images, and the L1 reconstruction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import autograd

IIC_EPS = 1e-10
TEMPERATURE = 0.07


def symmetric_joint(p: torch.Tensor, p_tf: torch.Tensor) -> torch.Tensor:
    """(K, K) joint distribution of the pseudo-domains of the images and of their views."""
    joint = (p.unsqueeze(2) * p_tf.unsqueeze(1)).sum(dim=0)
    joint = (joint + joint.t()) / 2.0
    return joint / joint.sum()


def iic_loss(p: torch.Tensor, p_tf: torch.Tensor, lamb: float = 1.0) -> torch.Tensor:
    """-I(z, z') of softmax probabilities (N, K); terms below 1e-10 are clamped, as officially, so
    that log never sees 0 (their gradient is 0)."""
    joint = symmetric_joint(p, p_tf)
    k = joint.shape[0]
    p_i = joint.sum(dim=1).view(k, 1).expand(k, k).clamp(min=IIC_EPS)
    p_j = joint.sum(dim=0).view(1, k).expand(k, k).clamp(min=IIC_EPS)
    joint = torch.where(joint < IIC_EPS, torch.full_like(joint, IIC_EPS), joint)
    return -(joint * (torch.log(joint) - lamb * torch.log(p_j) - lamb * torch.log(p_i))).sum()


def contrastive_loss(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor,
                     temperature: float = TEMPERATURE) -> torch.Tensor:
    """MoCo's InfoNCE: each query's positive is its key (no gradient), the negatives the queue's keys."""
    n, size = query.shape[0], queue.shape[0]
    key = key.detach()
    positive = torch.bmm(query.view(n, 1, -1), key.view(n, -1, 1))
    negative = torch.mm(query.view(n, -1), queue.t().view(-1, size))
    logits = torch.cat([positive.view(n, 1), negative], dim=1)
    return F.cross_entropy(logits / temperature, torch.zeros(n, dtype=torch.long, device=query.device))


def hinge_real(logit: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - logit).mean()


def hinge_fake(logit: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 + logit).mean()


def generator_adversarial(logit: torch.Tensor) -> torch.Tensor:
    return -logit.mean()


def r1_penalty(logit: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """sum((d D(x) / d x)^2) / N on real images, differentiable (the official compute_grad_gp)."""
    grad = autograd.grad(outputs=logit.sum(), inputs=images, create_graph=True, retain_graph=True,
                         only_inputs=True)[0]
    return grad.pow(2).sum() / images.shape[0]


def reconstruction(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(output - target))
