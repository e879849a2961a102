"""NICE-GAN (Chen et al., CVPR 2020) as the trainer and the exporter see it: the options and their
official defaults, the iteration schedule, the networks and step, the official checkpoint layout
and the deployed translator."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from nicegan.export.metadata import ModelInfo
from nicegan.export.translator import SIZE_MULTIPLE
from nicegan.models.architecture import (
    Architecture,
    DataSettings,
    Sample,
    TrainingModel,
    WarmStart,
    checkpoint_fixes,
)
from nicegan.models.latent import LatentCodes, latent_settings, sample_latents
from nicegan.models.nicegan.checkpoint import (
    NiceConfig,
    build_networks,
    checkpoint_dict,
    infer_config,
    is_nice_checkpoint,
    networks_from_checkpoint,
    without_profiler_keys,
)
from nicegan.models.nicegan.losses import LossWeights
from nicegan.models.nicegan.samples import translation_columns
from nicegan.models.nicegan.step import (
    ADAM_BETAS,
    WEIGHT_DECAY,
    IdentityInit,
    TrainStep,
    learning_rate,
    make_optimizers,
)
from nicegan.models.nicegan.translator import nice_translator
from nicegan.trainer.data import CROP_MARGIN
from nicegan.trainer.options import TrainError, TrainOptions
from nicegan.trainer.step import GradSync

OFFICIAL_ITERS = 300_000
OFFICIAL_LR = 1e-4
OFFICIAL_N_DIS, MIN_N_DIS = 7, 6
# The options a checkpoint's networks fix.
ARCH_FIELDS = ("img_size", "ch", "n_res", "n_dis", "light", "residual", "latent_dim")


def smallest_crop(n_dis: int) -> int:
    """The smallest training crop for a discriminator of depth n_dis: its global head needs a 1x1 output."""
    return 3 * 2 ** (n_dis - 2)


def default_n_dis(img_size: int) -> int:
    """The official depth (7), or the deepest one whose global head fits `img_size` (6 from 48 px)."""
    fitting = [n for n in range(MIN_N_DIS, OFFICIAL_N_DIS + 1) if smallest_crop(n) <= img_size]
    return max(fitting, default=MIN_N_DIS)


def check_options(o: TrainOptions, n_dis_given: bool = True) -> None:
    """Refuse NICE-GAN options that cannot train, with the fix in the message (n_dis already resolved)."""
    smallest = smallest_crop(o.n_dis)
    if o.img_size % 4 or o.img_size < smallest:
        if o.img_size % 4 == 0 and o.img_size >= smallest_crop(MIN_N_DIS) and n_dis_given:
            fix = f"use --n-dis {default_n_dis(o.img_size)}, or leave --n-dis out to have it chosen from --img-size"
        else:
            fix = f"use a multiple of 4 of at least {smallest_crop(MIN_N_DIS)}"
        raise TrainError(f"--img-size {o.img_size}: a discriminator of depth {o.n_dis} needs crops that are a "
                         f"multiple of 4 and at least {smallest} px; {fix}")
    if o.identity_init < 0:
        raise TrainError(f"--identity-init must be >= 0 (got {o.identity_init})")
    if o.latent_regression < 0 or (o.latent_regression and not o.latent_dim):
        raise TrainError(f"--latent-regression {o.latent_regression:g}: a weight >= 0 of a latent model's code "
                         "regression; add --latent-dim 8 (or drop it)")
    if o.identity_init and o.residual:
        raise TrainError("--identity-init with --residual: residual generators start as the identity "
                         "already; drop --identity-init")


def nice_config(o: TrainOptions) -> NiceConfig:
    return NiceConfig(img_size=o.img_size, ch=o.ch, n_res=o.n_res, n_dis=o.n_dis, light=o.light, residual=o.residual,
                      latent_dim=o.latent_dim)


@dataclass(frozen=True)
class IterationSchedule:
    """The official schedule: base_lr for the first half of the iterations, then linear to 0."""
    iters: int
    base_lr: float

    def lr(self, step: int) -> float:
        return learning_rate(step, self.iters, self.base_lr)

    def snapshot_epoch(self, step: int) -> int | None:
        return None  # the official NICE-GAN code counts iterations, not epochs

    def describe(self) -> str:
        return f"lr {self.base_lr:g}, linear decay to 0 over the second half"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "iterations", **asdict(self)}


class NiceGANModel(TrainingModel):
    def __init__(self, options: TrainOptions, device: torch.device, grad_sync: GradSync | None):
        self.nets = build_networks(nice_config(options))
        weights = LossWeights(adv=options.adv_weight, cycle=options.cycle_weight, recon=options.recon_weight)
        self.latent = latent_settings(options)
        self.step = TrainStep(self.nets, *make_optimizers(self.nets, options.lr), weights, options.amp, device,
                              grad_sync, LatentCodes(self.latent))
        self.log_fields = ("d_loss", "g_loss", "g_adv", "g_cycle", "g_recon") + (
            ("g_ms",) if self.latent.seeks_modes else ()) + (("g_latent",) if self.latent.regresses else ())

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        return self.nets.as_dict()

    def describe(self) -> str:
        return str(self.nets.config) + self.latent.describe()

    def settings(self) -> dict[str, Any]:
        return {"network": self.nets.config.to_dict(), "adam": {"betas": ADAM_BETAS, "weight_decay": WEIGHT_DECAY},
                "latent": asdict(self.latent)}

    def checkpoint(self, step: int, train_state: dict[str, Any]) -> dict[str, Any]:
        return checkpoint_dict(self.nets, self.step.g_optim, self.step.d_optim, step, train_state)

    def load_checkpoint(self, ckpt: dict[str, Any], schedule: IterationSchedule, options: TrainOptions) -> int:
        for name, module in self.networks.items():
            module.load_state_dict(ckpt[name])
        for key, optimizer in (("G_optimizer", self.step.g_optim), ("D_optimizer", self.step.d_optim)):
            if ckpt.get(key):
                optimizer.load_state_dict(ckpt[key])
        return int(ckpt["start_iter"])

    def sample_grids(self, images: dict[str, torch.Tensor]) -> list[Sample]:
        n = self.nets
        latents = sample_latents(self.latent.dim, images["A"].device)
        return [(name, *translation_columns(src_dis, to_tgt, tgt_dis, to_src, images[domain], latents))
                for name, domain, (src_dis, to_tgt, tgt_dis, to_src) in (
                    ("A2B", "A", (n.disA, n.gen2B, n.disB, n.gen2A)),
                    ("B2A", "B", (n.disB, n.gen2A, n.disA, n.gen2B)))]

    def warm_start(self, options: TrainOptions) -> WarmStart | None:
        return IdentityInit(self.step, options.identity_init) if options.identity_init > 0 else None


class NiceGAN(Architecture):
    name = "nicegan"
    title = "NICE-GAN"
    own_options = ("ch", "n_res", "n_dis", "light", "residual", "adv_weight", "cycle_weight", "recon_weight",
                   "identity_init", "latent_regression", "latent_dim", "ms_weight")

    def resolve_options(self, options: TrainOptions) -> TrainOptions:
        """n_dis chosen from img_size when it was not given (0), the official lr, then every option checked."""
        given = options.n_dis != 0
        options = replace(options, n_dis=options.n_dis or default_n_dis(options.img_size),
                          lr=options.lr or OFFICIAL_LR)
        check_options(options, n_dis_given=given)
        return options

    def data_settings(self, options: TrainOptions) -> DataSettings:
        return DataSettings(load_size=options.load_size or options.img_size + CROP_MARGIN,
                            resample=Image.Resampling.BILINEAR)

    def schedule(self, options: TrainOptions, iters_per_epoch: int) -> IterationSchedule:
        return IterationSchedule(options.iters or OFFICIAL_ITERS, options.lr)

    def build(self, options: TrainOptions, device: torch.device, grad_sync: GradSync | None) -> NiceGANModel:
        return NiceGANModel(options, device, grad_sync)

    def accept(self, path: Path, content: dict[str, Any] | None) -> dict[str, Any] | None:
        return without_profiler_keys(content) if content is not None and is_nice_checkpoint(content) else None

    def checkpoint_options(self, ckpt: dict[str, Any], options: TrainOptions, explicit: set[str]) -> TrainOptions:
        """The checkpoint's architecture; a light model may change --img-size (any size fits it)."""
        arch = infer_config(ckpt, options.img_size).to_dict()
        if arch["light"] and "img_size" in explicit:
            arch["img_size"] = options.img_size
        return checkpoint_fixes(options, arch, ARCH_FIELDS, explicit)

    def translator(self, ckpt: dict[str, Any], path: Path, direction: str,
                   default_img_size: int) -> tuple[torch.nn.Module, ModelInfo]:
        nets = networks_from_checkpoint(ckpt, path, default_img_size)
        config = nets.config
        info = ModelInfo(arch=self.name, direction=direction, light=config.light, img_size=config.img_size,
                         io="float", precision="fp32", dynamic_hw=config.light, size_multiple=SIZE_MULTIPLE,
                         step=int(ckpt.get("start_iter", 0)),
                         averaged_steps=",".join(map(str, (ckpt.get("config") or {}).get("averaged_steps", []))),
                         latent_dim=config.latent_dim)
        return nice_translator(nets, direction), info


ARCHITECTURE = NiceGAN()
