"""TUNIT's training step equals the official one (tests/official_tunit_step.py, a transcription of
the MIT training code driving this project's networks), and its losses equal hand-computed values.

Same perturbed weights (BatchNorm statistics, FRN parameters, C_EMA and G_EMA away from C and G),
same inputs (real photos and fixed augmented views), fp32 on CPU, three consecutive iterations: the
guiding network alone, then the first joint one (G_EMA copied from G, and the end of an epoch, with
the norm statistics' copy), then a joint one with EMA. Tolerances as the NICE-GAN parity test:
losses rtol 1e-6; every parameter and buffer of the five networks, the queue and the optimizer
states within atol 1e-7 + rtol 1e-6.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image

from nicegan.models.tunit.checkpoint import build_networks
from nicegan.models.tunit.losses import contrastive_loss, iic_loss
from nicegan.models.tunit.networks import FRN, TunitConfig
from nicegan.models.tunit.step import Phase, TunitStep, make_optimizers
from nicegan.models.tunit.views import TwoViews, split_views
from nicegan_testutils import real_photos
from official_tunit_step import (
    calc_contrastive_loss,
    calc_iic_loss,
    copy_norm_params,
    initialize_queue,
    official_iteration,
    official_optimizers,
)

CONFIG = TunitConfig(img_size=32, ch=8, sty_dim=16, k=4)
PHASES = (Phase(joint=False, ema=False, starts_ema=False, ends_epoch=False),
          Phase(joint=True, ema=True, starts_ema=True, ends_epoch=True),
          Phase(joint=True, ema=True, starts_ema=False, ends_epoch=False))


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def trained_like(seed: int = 0):
    """Networks off their initial values: BatchNorm statistics from train-mode forwards, FRN's
    parameters moved, C_EMA's weights apart from C's (G_EMA is a generator of its own)."""
    torch.manual_seed(seed)
    nets = build_networks(CONFIG)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(2):
            nets.C(torch.randn(4, 3, 32, 32, generator=gen))
            nets.C_EMA(torch.randn(4, 3, 32, 32, generator=gen))
        for p in nets.C_EMA.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
        for m in nets.D.modules():
            if isinstance(m, FRN):
                m.gamma.mul_(1 + 0.2 * torch.randn(m.gamma.shape, generator=gen))
                m.beta.add_(0.1 * torch.randn(m.beta.shape, generator=gen))
                m.tau.add_(-0.1 + 0.05 * torch.randn(m.tau.shape, generator=gen))
    return nets


def view_batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x_org, x_tf) batches of 4 real photos, the views drawn once and then fixed."""
    photos = [Image.fromarray(p) for p in real_photos().values()]
    views = TwoViews(CONFIG.img_size)
    return [split_views(torch.stack([views(p, torch.Generator().manual_seed(10 * b + i)) for i, p in enumerate(photos)]))
            for b in range(count)]


def assert_same(ours: dict, ref: dict, atol: float = 1e-7, rtol: float = 1e-6) -> None:
    for name, module in ours.items():
        ref_state = ref[name].state_dict()
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, ref_state[key], atol=atol, rtol=rtol,
                                       msg=lambda m, where=f"{name}.{key}": f"{where}: {m}")


def assert_same_optimizer(ours: torch.optim.Optimizer, ref: torch.optim.Optimizer) -> None:
    for (_, a), (_, b) in zip(sorted(ours.state_dict()["state"].items()), sorted(ref.state_dict()["state"].items())):
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-7, rtol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


def test_three_iterations_match_the_official_code():
    ours = trained_like()
    ref = copy.deepcopy(ours)
    batches = view_batches(len(PHASES) + 1)
    step = TunitStep(ours, *make_optimizers(ours, 1e-4))
    ref_nets = ref.as_dict()
    ref_opts = official_optimizers(ref.C, ref.G, ref.D)
    step.start_queue(batches[0][1])
    queue = initialize_queue(ref.C_EMA, batches[0][1], feat_size=CONFIG.sty_dim)
    assert_same(ours.as_dict(), ref_nets, atol=0, rtol=0)
    before = {name: copy.deepcopy(m.state_dict()) for name, m in ours.as_dict().items()}
    for (x_org, x_tf), phase in zip(batches[1:], PHASES):
        if phase.starts_ema:   # main.py, at the start of epoch ema_start
            ref.G_EMA.load_state_dict(ref.G.state_dict())
        torch.manual_seed(7)
        losses = step(x_org, x_tf, phase)
        torch.manual_seed(7)
        ref_losses, queue = official_iteration(ref_nets, ref_opts, x_org, x_tf, queue, phase.joint, phase.ema)
        if phase.ends_epoch:   # the end of trainGAN_UNSUP
            copy_norm_params(ref.G_EMA, ref.G)
            copy_norm_params(ref.C_EMA, ref.C)
        for key, value in ref_losses.items():
            assert losses[key].item() == pytest.approx(value, rel=1e-6), key
        assert_same(ours.as_dict(), ref_nets)
        torch.testing.assert_close(step.queue.keys, queue, atol=1e-7, rtol=1e-6)
        for ours_optim, ref_optim in zip(step.optimizers, (ref_opts["C"], ref_opts["G"], ref_opts["D"])):
            assert_same_optimizer(ours_optim, ref_optim)
        if not phase.joint:
            assert all(float(losses[key]) == 0 for key in ("d_loss", "g_loss"))
    # Every network moved (the comparison is not vacuous) and the queue grew by a batch per iteration.
    for name, module in ours.as_dict().items():
        moved = max(float((v.float() - before[name][k].float()).abs().max()) for k, v in module.state_dict().items())
        assert moved > 1e-6, name
    assert len(step.queue.keys) == 4 * (len(PHASES) + 1)


def test_iic_of_hand_made_distributions():
    # Two views agreeing on two equally used pseudo-domains: the joint is diag(1/2, 1/2), I = log 2.
    sure = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(iic_loss(sure, sure)) == pytest.approx(-math.log(2), abs=1e-8)
    # Uniform predictions carry no information: every joint entry is 1/4 = p_i p_j.
    uniform = torch.full((3, 2), 0.5)
    assert float(iic_loss(uniform, uniform)) == pytest.approx(0.0, abs=1e-7)
    # Random softmax outputs against the formula written out in NumPy, in float64: the mutual
    # information of nearly independent views is a small difference of logs (about 2e-3 here),
    # whose float32 value is only good to a few 1e-5 relative.
    gen = torch.Generator().manual_seed(0)
    p, q = (torch.softmax(torch.randn(6, 3, generator=gen, dtype=torch.float64), 1) for _ in range(2))
    joint = (p.numpy()[:, :, None] * q.numpy()[:, None, :]).sum(0)
    joint = (joint + joint.T) / 2
    joint /= joint.sum()
    expected = -(joint * (np.log(joint) - np.log(joint.sum(0, keepdims=True)) - np.log(joint.sum(1, keepdims=True)))).sum()
    assert float(iic_loss(p, q)) == pytest.approx(expected, rel=1e-9)
    assert float(iic_loss(p, q)) == pytest.approx(float(calc_iic_loss(p.clone(), q.clone())), rel=1e-6)


def test_contrastive_loss_of_a_hand_made_case():
    # q.k / 0.07 = 1, the queue's logits 0 and 1: loss = -log(e / (e + 1 + e)) = log(2 + 1/e).
    query, key = torch.tensor([[0.07, 0.0]]), torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(contrastive_loss(query, key, queue)) == pytest.approx(math.log(2 + 1 / math.e), rel=1e-6)
    # No gradient reaches the key; the query gets one.
    query, key = query.clone().requires_grad_(), key.clone().requires_grad_()
    contrastive_loss(query, key, queue).backward()
    assert key.grad is None and float(query.grad.abs().sum()) > 0
    gen = torch.Generator().manual_seed(1)
    q, k, bank = (torch.randn(*shape, generator=gen) for shape in ((5, 8), (5, 8), (12, 8)))
    assert float(contrastive_loss(q, k, bank)) == pytest.approx(float(calc_contrastive_loss(q, k, bank)), rel=1e-6)
