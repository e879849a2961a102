"""CycleGAN training: the official iteration (junyanz/pytorch-CycleGAN-and-pix2pix
`CycleGANModel.optimize_parameters`), its optimizers and its per-epoch schedule.

One iteration, in the official order:
1. forward: fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
2. generator step, D_A and D_B frozen: identity L1 terms ||G_A(B) - B||·lambda_B·lambda_identity
   and ||G_B(A) - A||·lambda_A·lambda_identity (skipped at lambda_identity 0), the adversarial
   terms of D_A(fake_B) and D_B(fake_A) against "real", the cycle L1 terms ·lambda_A and
   ·lambda_B; one backward, one Adam step over G_A and G_B;
3. discriminator step on the fakes of 1 (made before the generator update, as the official code
   reuses them), each through its domain's image pool, B's first: per discriminator
   (real -> 1 + pooled fake -> 0) · 0.5; one Adam step over D_A and D_B.
AMP, channels_last and multi-process gradient averaging come from the shared GanStep.

A latent model (MSGAN, nicegan.models.latent) translates with random codes in 1 (a pair of them with
the mode-seeking term, both judged in 2, the first pooled in 3); the cycles' second legs and the
identity terms use the zero code; the term goes into the generator step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F

from nicegan.models.cyclegan.pool import ImagePool
from nicegan.models.latent import LatentCodes, Translations
from nicegan.trainer.step import GanStep, GradSync, frozen

ADAM_BETAS = (0.5, 0.999)  # the official --beta1 0.5; no weight decay
GAN_MODES = ("lsgan", "vanilla")


def gan_loss(prediction: torch.Tensor, target_real: bool, mode: str) -> torch.Tensor:
    """The official GANLoss: MSE (lsgan) or BCE on logits (vanilla) against all-ones or all-zeros, in fp32."""
    prediction = prediction.float()
    target = torch.ones_like(prediction) if target_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    return F.binary_cross_entropy_with_logits(prediction, target)


def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output.float(), target.float())


@dataclass(frozen=True)
class CycleWeights:
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5
    gan_mode: str = "lsgan"


@dataclass
class CycleGANNetworks:
    """The official model_names, also the checkpoint's keys: G_A: A -> B, G_B: B -> A, D_A judges
    B, D_B judges A."""
    G_A: torch.nn.Module
    G_B: torch.nn.Module
    D_A: torch.nn.Module
    D_B: torch.nn.Module

    def as_dict(self) -> dict[str, torch.nn.Module]:
        return {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}


def make_optimizers(nets: CycleGANNetworks, lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(optimizer_G, optimizer_D) over the official parameter order: chain(G_A, G_B), chain(D_A, D_B)."""
    g_optim = torch.optim.Adam(chain(nets.G_A.parameters(), nets.G_B.parameters()), lr=lr, betas=ADAM_BETAS)
    d_optim = torch.optim.Adam(chain(nets.D_A.parameters(), nets.D_B.parameters()), lr=lr, betas=ADAM_BETAS)
    return g_optim, d_optim


class CycleGANStep(GanStep):
    """One official CycleGAN iteration; `pool_a` holds fakes of A (for D_B), `pool_b` fakes of B (for D_A)."""

    def __init__(self, nets: CycleGANNetworks, g_optim: torch.optim.Optimizer, d_optim: torch.optim.Optimizer,
                 weights: CycleWeights = CycleWeights(), pool_size: int = 50, amp: str = "off",
                 device: torch.device | str = "cpu", grad_sync: GradSync | None = None,
                 codes: LatentCodes | None = None):
        super().__init__(g_optim, d_optim, amp, device, grad_sync)
        self.nets, self.weights = nets, weights
        self.codes = codes or LatentCodes()
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.g_params = list(chain(nets.G_A.parameters(), nets.G_B.parameters()))
        self.d_params = list(chain(nets.D_A.parameters(), nets.D_B.parameters()))

    def generator_step(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: Translations,
                       fake_b: Translations, rec_a: torch.Tensor, rec_b: torch.Tensor) -> dict[str, torch.Tensor]:
        n, w = self.nets, self.weights
        self.g_optim.zero_grad(set_to_none=True)
        with frozen(self.d_params), self.autocast():
            idt_a = idt_b = real_a.new_zeros((), dtype=torch.float32)
            if w.lambda_identity > 0:
                idt_a = l1(n.G_A(real_b), real_b) * w.lambda_b * w.lambda_identity
                idt_b = l1(n.G_B(real_a), real_a) * w.lambda_a * w.lambda_identity
            adv_a = gan_loss(n.D_A(fake_b.judged), True, w.gan_mode)
            adv_b = gan_loss(n.D_B(fake_a.judged), True, w.gan_mode)
            cycle_a = l1(rec_a, real_a) * w.lambda_a
            cycle_b = l1(rec_b, real_b) * w.lambda_b
            g_loss = adv_a + adv_b + cycle_a + cycle_b + idt_a + idt_b  # the official sum order
            extra = {}
            if self.codes.settings.seeks_modes:
                extra = {"ms_A": fake_b.mode_seeking, "ms_B": fake_a.mode_seeking}
                g_loss = g_loss + self.codes.settings.ms_weight * (extra["ms_A"] + extra["ms_B"])
            self.apply_loss(g_loss, self.g_optim, self.g_scaler, self.g_params)
        return {"g_loss": g_loss, "G_A": adv_a, "cycle_A": cycle_a, "idt_A": idt_a,
                "G_B": adv_b, "cycle_B": cycle_b, "idt_B": idt_b, **extra}

    def discriminator_step(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                           fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
        n, w = self.nets, self.weights
        self.d_optim.zero_grad(set_to_none=True)
        pooled_b = self.pool_b.query(fake_b)  # the official order of the pools' random draws
        pooled_a = self.pool_a.query(fake_a)
        with self.autocast():
            d_a = (gan_loss(n.D_A(real_b), True, w.gan_mode) + gan_loss(n.D_A(pooled_b), False, w.gan_mode)) * 0.5
            d_b = (gan_loss(n.D_B(real_a), True, w.gan_mode) + gan_loss(n.D_B(pooled_a), False, w.gan_mode)) * 0.5
            d_loss = d_a + d_b  # one backward of the sum: the nets are disjoint, so the same gradients
        self.apply_loss(d_loss, self.d_optim, self.d_scaler, self.d_params)
        return {"d_loss": d_loss, "D_A": d_a, "D_B": d_b}

    def __call__(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        n = self.nets
        for module in n.as_dict().values():
            module.train()
        with self.autocast():
            fake_b = self.codes.translations(n.G_A, real_a)
            rec_a = n.G_B(fake_b.fake)
            fake_a = self.codes.translations(n.G_B, real_b)
            rec_b = n.G_A(fake_a.fake)
        losses = self.generator_step(real_a, real_b, fake_a, fake_b, rec_a, rec_b)
        losses.update(self.discriminator_step(real_a, real_b, fake_a.fake, fake_b.fake))
        return {key: value.detach() for key, value in losses.items()}


@dataclass(frozen=True)
class EpochSchedule:
    """The official schedule (`--lr_policy linear`, the learning rate updated at the start of every
    epoch): epoch e (1-based) trains at base_lr · (1 - max(0, e + 1 - epochs) / (epochs_decay + 1)),
    so the last of `epochs` is already slightly lower and the last of all, epoch epochs +
    epochs_decay, trains at exactly 0. An epoch is `iters_per_epoch` iterations: max(|A|, |B|) images.
    """
    base_lr: float
    iters_per_epoch: int
    epochs: int
    epochs_decay: int
    iters: int
    save_epoch_freq: int = 0  # numbered official files after every N-th epoch (0: none)

    def epoch(self, step: int) -> int:
        return (step - 1) // self.iters_per_epoch + 1

    def lr(self, step: int) -> float:
        return self.base_lr * (1.0 - max(0, self.epoch(step) + 1 - self.epochs) / float(self.epochs_decay + 1))

    def snapshot_epoch(self, step: int) -> int | None:
        done, rest = divmod(step, self.iters_per_epoch)
        return done if self.save_epoch_freq and rest == 0 and done % self.save_epoch_freq == 0 else None

    def describe(self) -> str:
        return (f"epoch e at lr {self.base_lr:g} x (1 - max(0, e + 1 - {self.epochs}) / {self.epochs_decay + 1}), "
                f"{self.iters_per_epoch} iterations an epoch")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "epochs", **asdict(self)}


OFFICIAL_EPOCHS = 100  # --n_epochs and --n_epochs_decay


def epoch_schedule(base_lr: float, iters_per_epoch: int, iters: int = 0, epochs: int = 0, epochs_decay: int = 0,
                   save_epoch_freq: int = 0) -> EpochSchedule:
    """The official schedule of `epochs` + `epochs_decay` epochs (each 100 when not given), or one
    derived from `iters`: the ceil(iters / iters_per_epoch) epochs that it trains, at the rates of
    an official schedule one epoch longer split in half, so no iteration is spent at its final rate 0."""
    if not iters:
        epochs, epochs_decay = epochs or OFFICIAL_EPOCHS, epochs_decay or OFFICIAL_EPOCHS
        return EpochSchedule(base_lr, iters_per_epoch, epochs, epochs_decay, (epochs + epochs_decay) * iters_per_epoch,
                             save_epoch_freq)
    total = math.ceil(iters / iters_per_epoch) + 1
    return EpochSchedule(base_lr, iters_per_epoch, total - total // 2, total // 2, iters, save_epoch_freq)
