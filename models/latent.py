"""MSGAN on top of a model family (Mao et al., CVPR 2019, "Mode Seeking Generative Adversarial
Networks for Diverse Image Synthesis"): generators that also take a latent code z ~ N(0, I), and the
mode-seeking term that keeps them from ignoring it.

The term as every official variant codes it (HelenMao/MSGAN: DRIT, pix2pix, DCGAN, StackGAN++),
with weight 1 per direction, in the generator's loss only:

    lz = mean|G(x, z2) - G(x, z1)| / mean|z2 - z1|,    loss_ms = 1 / (lz + 1e-5)

The two translations share x and come from one forward over the duplicated batch, as there.

MSGAN has no cycle-consistent variant of NICE-GAN or CycleGAN; what this project adds to make one:
- the zero code is the deterministic path: a generator called without a latent gets zeros, and a
  zero code adds nothing where it enters (NICE-GAN's MLP, CycleGAN's residual blocks), so
  `--latent-dim 0` trains and runs today's networks unchanged;
- the translations the discriminators judge (both of a mode-seeking pair, averaged in the
  adversarial loss, so its weight stays the family's own) use random codes; the second leg of a
  cycle, the reconstructions and CycleGAN's identity terms use the zero code: they ask for the
  faithful image, whose look is the input's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from nicegan.export.metadata import latent_for_seed

if TYPE_CHECKING:
    from nicegan.trainer.options import TrainOptions

MS_EPS = 1e-5       # the official eps of 1 / (lz + eps)
SAMPLE_SEEDS = (0, 1, 2)   # the codes of the training sample grids: `translate --seed 0/1/2` of the same model


def mode_seeking_loss(fake1: torch.Tensor, fake2: torch.Tensor, latent1: torch.Tensor,
                      latent2: torch.Tensor) -> torch.Tensor:
    """1 / (mean|fake2 - fake1| / mean|latent2 - latent1| + 1e-5), in fp32 (under AMP too)."""
    lz = torch.mean(torch.abs(fake2.float() - fake1.float())) / torch.mean(torch.abs(latent2.float() - latent1.float()))
    return 1 / (lz + MS_EPS)


def latent_or_zeros(latent: torch.Tensor | None, like: torch.Tensor, dim: int) -> torch.Tensor:
    """(batch, dim) codes in `like`'s dtype and device: `latent` ((1, dim) is expanded to the batch)
    or, without one, the zero code."""
    if latent is None:
        return like.new_zeros(like.shape[0], dim)
    return latent.to(like.dtype).expand(like.shape[0], -1)


@dataclass(frozen=True)
class LatentSettings:
    """`--latent-dim` (0: no latent, the family's official networks), `--ms-weight` and NICE-GAN's
    `--latent-regression`."""
    dim: int = 0
    ms_weight: float = 1.0
    regression_weight: float = 0.0

    @property
    def seeks_modes(self) -> bool:
        return self.dim > 0 and self.ms_weight > 0

    @property
    def regresses(self) -> bool:
        return self.dim > 0 and self.regression_weight > 0

    def describe(self) -> str:
        terms = [f"mode seeking x {self.ms_weight:g}" if self.seeks_modes else "no mode-seeking term"]
        terms += [f"latent regression x {self.regression_weight:g}"] if self.regresses else []
        return f", latent {self.dim}-d ({', '.join(terms)})" if self.dim else ""


def latent_settings(options: TrainOptions) -> LatentSettings:
    return LatentSettings(options.latent_dim, options.ms_weight, options.latent_regression)


def latent_regression_loss(regressed: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """DRIT's latent regression ||E(G(x, z)) - z||_1 (mean), in fp32: the code must be readable from
    the translation, which keeps it from hiding in invisible noise that only the cycle would decode."""
    return torch.mean(torch.abs(regressed.float() - latent.float()))


@dataclass
class Translations:
    """One direction's translations in a generator step. `fake` is G(x, z1) (G(x) without a
    latent), what the cycle sees, and `latent` its code z1; `judged` is what the discriminator
    judges: `fake`, or with the mode-seeking term G(x, z1) and G(x, z2) in one batch;
    `mode_seeking` is their unweighted term."""
    fake: torch.Tensor
    judged: torch.Tensor
    latent: torch.Tensor | None = None
    mode_seeking: torch.Tensor | None = None

    def of_fake(self, judged_output: torch.Tensor) -> torch.Tensor:
        """The part of a per-image output on `judged` that belongs to `fake`."""
        return judged_output if self.judged is self.fake else judged_output[:len(self.fake)]


class LatentCodes:
    """Draws the codes of a training step from torch's global generator (saved with the run, so a
    resumed run draws the same ones) and runs a generator with them."""

    def __init__(self, settings: LatentSettings = LatentSettings()):
        self.settings = settings

    def draw(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape[0], self.settings.dim, device=like.device)

    def random_translation(self, generator: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """generator(*inputs), with a random code appended for a latent model."""
        return translate_with(generator, self.draw(inputs[0]) if self.settings.dim else None, *inputs)

    def translations(self, generator: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> Translations:
        """One direction's translations (see Translations): a pair from one forward over the
        duplicated batch when the mode-seeking term is on."""
        first = self.draw(inputs[0]) if self.settings.dim else None
        if not self.settings.seeks_modes:
            fake = translate_with(generator, first, *inputs)
            return Translations(fake, fake, first)
        second = self.draw(inputs[0])
        both = generator(*(torch.cat([t, t]) for t in inputs), torch.cat([first, second]))
        fake1, fake2 = both[:len(first)], both[len(first):]
        return Translations(fake1, both, first, mode_seeking_loss(fake1, fake2, first, second))


def translate_with(generator: Callable[..., torch.Tensor], latent: torch.Tensor | None,
                   *inputs: torch.Tensor) -> torch.Tensor:
    """generator(*inputs), with `latent` appended when there is one (a deterministic generator's own call)."""
    return generator(*inputs) if latent is None else generator(*inputs, latent)


def sample_latents(dim: int, device: torch.device | str) -> list[torch.Tensor | None]:
    """The codes of the sample grids: those of `translate --seed` 0, 1, 2; [None] without a latent."""
    if not dim:
        return [None]
    return [torch.from_numpy(latent_for_seed(seed, dim)).to(device) for seed in SAMPLE_SEEDS]
