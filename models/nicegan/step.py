"""NICE-GAN training: the official D step and G step (alpc91/NICE-GAN-pytorch `NICE.py`),
without its wasted work.

Same maths as the official loop:
- decoupled training: the encoders live inside disA/disB and only the D optimizer updates them;
- every discriminator forward of the official step is kept, in train mode, because each one
  runs a spectral-norm power iteration that the next step depends on;
- Adam (lr 1e-4, betas (0.5, 0.999), L2 weight decay 1e-4), constant lr then linear decay to 0.
Less work: the generator forward of the D step and the real-image encodings of the G step run
without autograd (nothing differentiates through them), and D parameters are frozen during the
G step so its backward computes no discriminator gradients.

Three additions, all off by default: `residual` generators (see ResnetGenerator),
`identity_init` steps of autoencoder training before step 1 (`IdentityInit`), so that every
translation starts as the identity mapping, and MSGAN's latent codes (nicegan.models.latent): the
translations get random codes, the cycles' second legs and the reconstructions the zero code, and
the mode-seeking term (and the optional latent regression, whose code is read back from the target
domain's encoding of each translation) goes into the G step only, so the encoders are still
trained by the D step alone.
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.utils.spectral_norm import SpectralNorm

from nicegan.models.latent import LatentCodes, latent_regression_loss
from nicegan.models.nicegan.checkpoint import NiceNetworks
from nicegan.models.nicegan.losses import LossWeights, discriminator_domain_loss, generator_adversarial_loss, l1
from nicegan.trainer.step import GanStep, GradSync, frozen, set_learning_rate

ADAM_BETAS = (0.5, 0.999)
WEIGHT_DECAY = 1e-4


def learning_rate(step: int, iters: int, base_lr: float) -> float:
    """lr for 1-based `step`: base_lr for the first half, then linear to 0 at `iters`.

    The official decay (lr -= base_lr / (iters // 2) at every step past the half) written as a
    pure function of the step, so a resumed run cannot decay twice and never goes negative.
    """
    half = iters // 2
    if half == 0 or step <= half:
        return base_lr
    return base_lr * max(0.0, 1.0 - (step - half) / half)


def make_optimizers(nets: NiceNetworks, lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(G_optim, D_optim) over the official parameter partition and order; D owns the encoders."""
    g_optim = torch.optim.Adam(chain(nets.gen2B.parameters(), nets.gen2A.parameters()),
                               lr=lr, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)
    d_optim = torch.optim.Adam(chain(nets.disA.parameters(), nets.disB.parameters()),
                               lr=lr, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)
    return g_optim, d_optim


class FullPrecisionHook:
    """Runs a forward pre-hook with autocast off. CUDA autocast would run the legacy spectral-norm
    power iteration (`torch.mv`) in fp16/bf16 and write the rounded u/v back into fp32 buffers;
    keeping it fp32 makes AMP change only the convolutions, as intended."""

    def __init__(self, hook: Callable, device_type: str):
        self.hook = hook
        self.device_type = device_type

    def __call__(self, module: torch.nn.Module, inputs: Any) -> Any:
        with torch.autocast(self.device_type, enabled=False):
            return self.hook(module, inputs)


def keep_spectral_norm_fp32(module: torch.nn.Module, device_type: str) -> None:
    for sub in module.modules():
        hooks = sub._forward_pre_hooks  # the legacy spectral_norm API registers its hook here
        for key, hook in list(hooks.items()):
            if isinstance(hook, SpectralNorm):
                hooks[key] = FullPrecisionHook(hook, device_type)


class TrainStep(GanStep):
    """One NICE-GAN iteration: D step then G step, each followed by its optimizer step."""

    def __init__(self, nets: NiceNetworks, g_optim: torch.optim.Optimizer, d_optim: torch.optim.Optimizer,
                 weights: LossWeights = LossWeights(), amp: str = "off", device: torch.device | str = "cpu",
                 grad_sync: GradSync | None = None, codes: LatentCodes | None = None):
        super().__init__(g_optim, d_optim, amp, device, grad_sync)
        self.nets, self.weights = nets, weights
        self.codes = codes or LatentCodes()
        if self.amp_dtype is not None:
            for dis in (nets.disA, nets.disB):
                keep_spectral_norm_fp32(dis, self.device.type)
        self.d_params = list(chain(nets.disA.parameters(), nets.disB.parameters()))
        self.g_params = list(chain(nets.gen2B.parameters(), nets.gen2A.parameters()))

    def discriminator_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        n, w = self.nets, self.weights
        self.d_optim.zero_grad(set_to_none=True)
        with self.autocast():
            real_a_out = n.disA(real_a)
            real_b_out = n.disB(real_b)
            with torch.no_grad():  # the official code detaches these fakes: no graph needed at all
                fake_a2b = self.codes.random_translation(n.gen2B, real_a_out[4].detach(), real_a)
                fake_b2a = self.codes.random_translation(n.gen2A, real_b_out[4].detach(), real_b)
            fake_a_out = n.disA(fake_b2a)
            fake_b_out = n.disB(fake_a2b)
            d_loss_a = discriminator_domain_loss(real_a_out, fake_a_out, w.adv)
            d_loss_b = discriminator_domain_loss(real_b_out, fake_b_out, w.adv)
            d_loss = d_loss_a + d_loss_b
        self.apply_loss(d_loss, self.d_optim, self.d_scaler, self.d_params)
        return {"d_loss": d_loss.detach()}

    def generator_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        n, w = self.nets, self.weights
        self.g_optim.zero_grad(set_to_none=True)
        with frozen(self.d_params), self.autocast():
            with torch.no_grad():  # full forwards (heads too) keep the official SN power iterations
                real_a_z = n.disA(real_a)[4]
                real_b_z = n.disB(real_b)[4]
            a2b = self.codes.translations(n.gen2B, real_a_z, real_a)
            b2a = self.codes.translations(n.gen2A, real_b_z, real_b)
            fake_a_out = n.disA(b2a.judged)
            fake_b_out = n.disB(a2b.judged)
            # cycle through the target domain's encoder (a latent generator gets the zero code here)
            fake_b2a2b = n.gen2B(b2a.of_fake(fake_a_out[4]), b2a.fake)
            fake_a2b2a = n.gen2A(a2b.of_fake(fake_b_out[4]), a2b.fake)
            fake_a2a = n.gen2A(real_a_z, real_a)  # recon: source encoder, other generator
            fake_b2b = n.gen2B(real_b_z, real_b)
            adv_a, adv_b = generator_adversarial_loss(fake_a_out), generator_adversarial_loss(fake_b_out)
            cycle_a, cycle_b = l1(fake_a2b2a, real_a), l1(fake_b2a2b, real_b)
            recon_a, recon_b = l1(fake_a2a, real_a), l1(fake_b2b, real_b)
            g_loss_a = w.adv * adv_a + w.cycle * cycle_a + w.recon * recon_a
            g_loss_b = w.adv * adv_b + w.cycle * cycle_b + w.recon * recon_b
            g_loss = g_loss_a + g_loss_b
            extra, latent = {}, self.codes.settings
            if latent.seeks_modes:
                extra["g_ms"] = a2b.mode_seeking + b2a.mode_seeking
                g_loss = g_loss + latent.ms_weight * extra["g_ms"]
            if latent.regresses:  # the code read back by the target domain's encoder of each translation
                extra["g_latent"] = (
                    latent_regression_loss(n.gen2B.regress_latent(a2b.of_fake(fake_b_out[4])), a2b.latent)
                    + latent_regression_loss(n.gen2A.regress_latent(b2a.of_fake(fake_a_out[4])), b2a.latent))
                g_loss = g_loss + latent.regression_weight * extra["g_latent"]
            self.apply_loss(g_loss, self.g_optim, self.g_scaler, self.g_params)
        losses = {"g_loss": g_loss, "g_adv": adv_a + adv_b, "g_cycle": cycle_a + cycle_b,
                  "g_recon": recon_a + recon_b, **extra}
        return {key: value.detach() for key, value in losses.items()}

    def __call__(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        for module in self.nets.as_dict().values():
            module.train()
        return {**self.discriminator_step(real_a, real_b), **self.generator_step(real_a, real_b)}


class IdentityInit:
    """Warm start, not in the official code: train disA's encoder and gen2A as an autoencoder on
    images of both domains (L1), then copy disA into disB and gen2A into gen2B.

    Every path of the model (translations, cycles, reconstructions) then starts as the identity,
    so for a subtle translation the adversarial training has only the difference between the
    domains to learn, instead of first learning to reproduce images at all, and it starts far from
    the brightness-inverted solution that small models found from a random start (docs/MODEL.md).
    """

    # Plain autoencoder training: no adversary to keep in balance, so Adam's usual lr and betas, and
    # the lr schedule of the main loop (constant, then linear to 0): at a constant lr the batch-1
    # noise keeps the reconstructions blurry (L1 stalled at 0.13 from step 1,000 to 2,000 at ch 32).
    LR = 1e-3
    name, metric = "identity init", "recon_l1"   # the progress bar's label and value

    def __init__(self, train_step: TrainStep, steps: int):
        self.train_step, self.steps = train_step, steps
        nets = train_step.nets
        # Only the encoder part of disA receives gradients; Adam skips the heads' grad-less params.
        self.params = list(chain(nets.disA.parameters(), nets.gen2A.parameters()))
        self.optim = torch.optim.Adam(self.params, lr=self.LR)
        self.scaler = torch.amp.GradScaler(train_step.device.type, enabled=train_step.d_scaler.is_enabled())

    def step(self, batch: dict[str, torch.Tensor], index: int) -> float:
        """Warm-start step `index` (1-based) on a batch of each domain; returns their mean reconstruction L1."""
        n, ts = self.train_step.nets, self.train_step
        set_learning_rate([self.optim], learning_rate(index, self.steps, self.LR))
        n.disA.train()
        n.gen2A.train()
        self.optim.zero_grad(set_to_none=True)
        with ts.autocast():
            loss = sum(l1(n.gen2A(n.disA.encode(real)[0], real), real) for real in (batch["A"], batch["B"]))
        ts.apply_loss(loss, self.optim, self.scaler, self.params)
        return float(loss.detach()) / 2

    def finish(self, values: list[float]) -> str:
        """Copy disA/gen2A into disB/gen2B; the line that reports the warm start."""
        n = self.train_step.nets
        n.disB.load_state_dict(n.disA.state_dict())
        n.gen2B.load_state_dict(n.gen2A.state_dict())
        last = values[-100:]
        return (f"reconstruction L1 {np.mean(last):.4f} over the last {len(last)} (images in [-1, 1]); "
                "disA/gen2A copied to disB/gen2B")
