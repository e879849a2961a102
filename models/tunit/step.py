"""TUNIT training: one iteration of the official `trainGAN_UNSUP` (clovaai/tunit
`train/train_unsupervised.py`, MIT licence), its optimizers, the MoCo queue, the moving averages
and the phases of a run.

One iteration, in the official order:
1. a random permutation of the batch makes the references x_ref;
2. guiding step on the image x_org and its augmented view x_tf: c_loss = MoCo(C(x_org), C_EMA(x_tf),
   queue) + 5 IIC(C(x_org), C(x_tf)), x 0.1 once the GAN trains; Adam step of C;
3. from `separated` on (the joint phase):
   - discriminator step: pseudo-labels y = argmax C.iic(x_org), x_fake = G(x_org, C(x_ref)); hinge
     losses of D(x_ref, y_ref) and D(x_fake, y_ref), R1 x 10 on x_ref; three backwards as
     officially (real, R1, fake); RMSprop step of D;
   - generator step: x_fake = G(x_org, C(x_ref)), x_rec = G(x_org, C(x_org)); L = adv(x_fake, y_ref)
     + adv(x_rec, y_org) + 0.1 L1(x_rec, x_org) + 0.01 MoCo(C(x_fake), C_EMA(x_ref), queue); one
     backward, then the C and G steps (L_E = L_G - L_MI + L_style: C learns from both);
4. the keys C_EMA(x_tf) enter the queue (the last 1,024 are kept);
5. G_EMA averages G (beta 0.999) from `ema_start` on (copied from G when it starts), C_EMA averages C
   always; after every official epoch of 1,000 iterations both copy their model's BatchNorm
   statistics (official `copy_norm_params`).

Every forward of the official iteration is kept, in train mode: each updates the guiding
network's BatchNorm statistics, which the next iteration and the checkpoint hold. Less work, the
same numbers: the EMA forwards run without autograd (their outputs are detached officially), and
D's parameters are frozen in the generator step (the official gradients there are discarded).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from nicegan.models.tunit.losses import (
    contrastive_loss,
    generator_adversarial,
    hinge_fake,
    hinge_real,
    iic_loss,
    r1_penalty,
    reconstruction,
)
from nicegan.trainer.step import GanStep, frozen

C_WEIGHT_DECAY = 1e-3           # Adam, default betas
GAN_WEIGHT_DECAY = 1e-4         # RMSprop, default alpha 0.99
IIC_WEIGHT = 5.0
JOINT_C_SCALE = 0.1             # the guiding loss's weight once the GAN trains
QUEUE_SIZE = 1024
EMA_BETA = 0.999
EPOCH_ITERS = 1000              # the official --iters: an "epoch", after which norm statistics are copied
OFFICIAL_SEPARATED, OFFICIAL_EMA_START, OFFICIAL_EPOCHS = 65, 66, 200
# The logged losses, under the official names: C/LOSS, C/MOCO, C/IID, D/LOSS, D/ADV, D/GP, G/LOSS,
# G/ADV, G/IMGREC, G/STYCONT.
LOSSES = ("c_loss", "moco", "iic", "d_loss", "d_adv", "d_gp", "g_loss", "g_adv", "g_rec", "g_style")


@dataclass(frozen=True)
class TunitWeights:
    """The official --w_adv, --w_rec, --w_vec and --w_gp."""
    adv: float = 1.0
    rec: float = 0.1
    vec: float = 0.01
    gp: float = 10.0


@dataclass
class TunitNetworks:
    """The official network names, also the checkpoint's keys."""
    C: torch.nn.Module
    C_EMA: torch.nn.Module
    G: torch.nn.Module
    G_EMA: torch.nn.Module
    D: torch.nn.Module

    def as_dict(self) -> dict[str, torch.nn.Module]:
        return {"C": self.C, "C_EMA": self.C_EMA, "G": self.G, "G_EMA": self.G_EMA, "D": self.D}


def make_optimizers(nets: TunitNetworks, lr: float) -> tuple[torch.optim.Optimizer, ...]:
    """(C, G, D) as officially: Adam for C, RMSprop for G and D."""
    return (torch.optim.Adam(nets.C.parameters(), lr, weight_decay=C_WEIGHT_DECAY),
            torch.optim.RMSprop(nets.G.parameters(), lr, weight_decay=GAN_WEIGHT_DECAY),
            torch.optim.RMSprop(nets.D.parameters(), lr, weight_decay=GAN_WEIGHT_DECAY))


@torch.no_grad()
def update_average(target: torch.nn.Module, source: torch.nn.Module, beta: float = EMA_BETA) -> None:
    """target = beta target + (1 - beta) source, parameter by parameter (buffers are left alone)."""
    sources = dict(source.named_parameters())
    for name, param in target.named_parameters():
        param.copy_(beta * param + (1.0 - beta) * sources[name])


@torch.no_grad()
def copy_norm_statistics(target: torch.nn.Module, source: torch.nn.Module) -> None:
    """The official copy_norm_params: every buffer (BatchNorm running statistics) from source."""
    sources = dict(source.named_buffers())
    for name, buffer in target.named_buffers():
        buffer.copy_(sources[name])


class MocoQueue:
    """The keys of the last iterations, the contrastive losses' negatives.

    It carries on from one official epoch to the next, as MoCo intends. The official trainFunc
    rebinds a local `queue` that it never hands back, so each of its epochs restarts from the
    queue initialised before training (one batch of the initial C_EMA's keys) and the first 32
    iterations of an epoch see stale negatives; that is not reproduced (tests/test_tunit_parity.py
    covers iterations within an epoch, where both agree)."""

    def __init__(self, keys: torch.Tensor, size: int = QUEUE_SIZE):
        self.keys, self.size = keys, size

    def push(self, keys: torch.Tensor) -> None:
        keys = torch.cat([self.keys, keys], dim=0)
        self.keys = keys[-self.size:] if len(keys) > self.size else keys


@dataclass(frozen=True)
class Phase:
    """What iteration `index` (0-based) does: the GAN trains (`joint`), G_EMA averages G (`ema`),
    G_EMA is copied from G first (`starts_ema`), the epoch ends with the norm statistics' copy."""
    joint: bool
    ema: bool
    starts_ema: bool
    ends_epoch: bool


@dataclass(frozen=True)
class TunitSchedule:
    """A constant learning rate for the three optimizers (the official code never decays it) and
    the phases: C alone for the first `separated` iterations, then jointly; G_EMA from `ema_start`."""
    iters: int
    base_lr: float
    separated: int
    ema_start: int

    def lr(self, step: int) -> float:
        return self.base_lr

    def phase(self, index: int) -> Phase:
        return Phase(joint=index >= self.separated, ema=index >= self.ema_start, starts_ema=index == self.ema_start,
                     ends_epoch=(index + 1) % EPOCH_ITERS == 0)

    def snapshot_epoch(self, step: int) -> int | None:
        return None  # latest.pt holds everything; the official .ckpt files are not written

    def describe(self) -> str:
        return (f"lr {self.base_lr:g} constant, the guiding network alone for steps 1..{self.separated}, "
                f"then jointly, G_EMA from step {self.ema_start + 1}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "tunit", **asdict(self)}


def official_phases(iters: int, separated: int = 0, ema_start: int = 0) -> tuple[int, int]:
    """(separated, ema_start) in iterations; 0: the official 65 and 66 of 200 epochs, as shares of `iters`."""
    return (separated or round(iters * OFFICIAL_SEPARATED / OFFICIAL_EPOCHS),
            ema_start or round(iters * OFFICIAL_EMA_START / OFFICIAL_EPOCHS))


class TunitStep(GanStep):
    """One official iteration on (x_org, x_tf); `queue` must hold keys first (`start_queue`)."""

    def __init__(self, nets: TunitNetworks, c_optim: torch.optim.Optimizer, g_optim: torch.optim.Optimizer,
                 d_optim: torch.optim.Optimizer, weights: TunitWeights = TunitWeights(), amp: str = "off",
                 device: torch.device | str = "cpu"):
        super().__init__(g_optim, d_optim, amp, device)
        self.nets, self.c_optim, self.weights = nets, c_optim, weights
        self.queue = MocoQueue(torch.zeros(0, nets.C.cont.out_features, device=self.device))
        self.d_params = list(nets.D.parameters())

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.c_optim, self.g_optim, self.d_optim

    @torch.no_grad()
    def start_queue(self, x_tf: torch.Tensor) -> None:
        """The official initialize_queue: the keys C_EMA(x_tf) of one batch (a train-mode forward)."""
        self.nets.C_EMA.train()
        with self.autocast():
            self.queue = MocoQueue(self.nets.C_EMA.moco(x_tf).float())

    def guiding_step(self, x_org: torch.Tensor, x_tf: torch.Tensor, joint: bool) -> tuple[dict, torch.Tensor]:
        n = self.nets
        with self.autocast():
            q_cont = n.C.moco(x_org).float()
            with torch.no_grad():
                k_cont = n.C_EMA.moco(x_tf).float()
            q_disc = torch.softmax(n.C.iic(x_org).float(), 1)
            k_disc = torch.softmax(n.C.iic(x_tf).float(), 1)
        iic = iic_loss(q_disc, k_disc)
        moco = contrastive_loss(q_cont, k_cont, self.queue.keys)
        c_loss = moco + IIC_WEIGHT * iic
        if joint:
            c_loss = JOINT_C_SCALE * c_loss
        self.c_optim.zero_grad()
        c_loss.backward()
        self.c_optim.step()
        return {"c_loss": c_loss, "moco": moco, "iic": iic}, k_cont

    @torch.no_grad()
    def pseudo_labels(self, x_org: torch.Tensor, x_ref: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(y_org, y_ref, x_fake) of the discriminator step, without autograd as officially."""
        n = self.nets
        with self.autocast():
            y_org = torch.argmax(n.C.iic(x_org), 1)
            s_ref = n.C.moco(x_ref)
            x_fake = n.G.decode(n.G.cnt_encoder(x_org), s_ref)
        return y_org, y_org[order], x_fake

    def discriminator_step(self, x_ref: torch.Tensor, x_fake: torch.Tensor, y_ref: torch.Tensor) -> dict:
        x_ref = x_ref.detach().requires_grad_()
        with self.autocast():
            real_logit = self.nets.D(x_ref, y_ref)[0].float()
            fake_logit = self.nets.D(x_fake.detach(), y_ref)[0].float()
        d_real, d_fake = hinge_real(real_logit), hinge_fake(fake_logit)
        d_gp = self.weights.gp * r1_penalty(real_logit, x_ref)
        self.d_optim.zero_grad()
        d_real.backward(retain_graph=True)  # three backwards, as officially: the same sums of gradients
        d_gp.backward()
        d_fake.backward()
        self.d_optim.step()
        d_adv = d_real + d_fake
        return {"d_loss": d_adv + d_gp, "d_adv": d_adv, "d_gp": d_gp}

    def generator_step(self, x_org: torch.Tensor, x_ref: torch.Tensor, y_org: torch.Tensor,
                       y_ref: torch.Tensor) -> dict:
        n, w = self.nets, self.weights
        with frozen(self.d_params), self.autocast():
            s_src = n.C.moco(x_org)
            s_ref = n.C.moco(x_ref)
            content = n.G.cnt_encoder(x_org)
            x_fake = n.G.decode(content, s_ref)
            x_rec = n.G.decode(content, s_src)
            g_adv = (generator_adversarial(n.D(x_fake, y_ref)[0].float())
                     + generator_adversarial(n.D(x_rec, y_org)[0].float()))
            g_rec = reconstruction(x_rec.float(), x_org.float())
            s_fake = n.C.moco(x_fake).float()
            with torch.no_grad():
                s_ref_ema = n.C_EMA.moco(x_ref).float()
        g_style = contrastive_loss(s_fake, s_ref_ema, self.queue.keys)
        g_loss = w.adv * g_adv + w.rec * g_rec + w.vec * g_style
        self.g_optim.zero_grad()
        self.c_optim.zero_grad()
        g_loss.backward()
        self.c_optim.step()
        self.g_optim.step()
        return {"g_loss": g_loss, "g_adv": g_adv, "g_rec": g_rec, "g_style": g_style}

    def __call__(self, x_org: torch.Tensor, x_tf: torch.Tensor, phase: Phase) -> dict[str, torch.Tensor]:
        n = self.nets
        for module in n.as_dict().values():
            module.train()
        if phase.starts_ema:  # the official epoch ema_start begins with G_EMA = G
            n.G_EMA.load_state_dict(n.G.state_dict())
        order = torch.randperm(x_org.shape[0]).to(x_org.device)
        x_ref = x_org[order]
        losses, keys = self.guiding_step(x_org, x_tf, phase.joint)
        if phase.joint:
            y_org, y_ref, x_fake = self.pseudo_labels(x_org, x_ref, order)
            losses.update(self.discriminator_step(x_ref, x_fake, y_ref))
            losses.update(self.generator_step(x_org, x_ref, y_org, y_ref))
        else:  # the official logs hold 0 for the networks that do not train yet
            zero = x_org.new_zeros((), dtype=torch.float32)
            losses.update({key: zero for key in LOSSES if key not in losses})
        self.queue.push(keys)
        if phase.ema:
            update_average(n.G_EMA, n.G)
        update_average(n.C_EMA, n.C)
        if phase.ends_epoch:
            copy_norm_statistics(n.G_EMA, n.G)
            copy_norm_statistics(n.C_EMA, n.C)
        return {key: value.detach() for key, value in losses.items()}
