"""CycleGAN (Zhu et al., ICCV 2017) as the trainer and the exporter see it, with the defaults of
junyanz/pytorch-CycleGAN-and-pix2pix: the ResNet generator (`--netG resnet_9blocks`), the 70x70
PatchGAN, LSGAN, pools of the last 50 fakes, the identity loss at 0.5, Adam 2e-4 (beta1 0.5), 100
epochs at the full rate then 100 of linear decay, images resized to 286 (bicubic) and cropped to
256, trainB drawn with replacement."""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from nicegan.export.metadata import ModelInfo
from nicegan.export.translator import SIZE_MULTIPLE, TranslatorError
from nicegan.models.architecture import Architecture, DataSettings, Sample, TrainingModel, checkpoint_fixes
from nicegan.models.cyclegan.checkpoint import (
    CycleGANNetConfig,
    build_networks,
    checkpoint_dict,
    infer_net_config,
    is_run_checkpoint,
    read_official_folder,
    write_official_files,
)
from nicegan.models.cyclegan.networks import (
    GENERATORS,
    is_cyclegan_state_dict,
    load_cyclegan_generator,
    normalize_cyclegan_keys,
    smallest_patch_input,
)
from nicegan.models.cyclegan.step import (
    ADAM_BETAS,
    GAN_MODES,
    CycleGANStep,
    CycleWeights,
    EpochSchedule,
    epoch_schedule,
    make_optimizers,
)
from nicegan.models.latent import LatentCodes, latent_settings, sample_latents, translate_with
from nicegan.trainer.options import TrainError, TrainOptions, flag
from nicegan.trainer.samples import LuminanceCheck, luminance_check, tile_columns
from nicegan.trainer.step import GradSync

OFFICIAL_LR = 2e-4
OFFICIAL_LOAD_SIZE = 286
# The options a checkpoint's networks fix.
ARCH_FIELDS = ("net_g", "ngf", "ndf", "n_layers_d", "latent_dim")
DIRECTION_NETWORKS = {"a2b": "G_A", "b2a": "G_B"}


def net_config(o: TrainOptions) -> CycleGANNetConfig:
    return CycleGANNetConfig(net_g=o.net_g, ngf=o.ngf, ndf=o.ndf, n_layers_d=o.n_layers_d, img_size=o.img_size,
                             latent_dim=o.latent_dim)


def check_options(o: TrainOptions) -> None:
    """Refuse CycleGAN options that cannot train, with the fix in the message."""
    if o.net_g not in GENERATORS:
        raise TrainError(f"--netG {o.net_g}: choose one of {', '.join(GENERATORS)}")
    if o.gan_mode not in GAN_MODES:
        raise TrainError(f"--gan-mode {o.gan_mode}: choose one of {', '.join(GAN_MODES)}")
    for name in ("ngf", "ndf", "n_layers_d", "epoch_count"):
        if getattr(o, name) < 1:
            raise TrainError(f"{flag(name)} must be >= 1 (got {getattr(o, name)})")
    for name in ("lambda_a", "lambda_b", "lambda_identity", "pool_size", "epochs", "epochs_decay",
                 "save_epoch_freq"):
        if getattr(o, name) < 0:
            raise TrainError(f"{flag(name)} must be >= 0 (got {getattr(o, name)})")
    if o.iters and (o.epochs or o.epochs_decay):
        raise TrainError(f"--iters {o.iters} and --epochs/--epochs-decay both give the run's length; pass one of them")
    smallest = smallest_patch_input(o.n_layers_d)
    if o.img_size % 4 or o.img_size < smallest:
        raise TrainError(f"--img-size {o.img_size}: the generator needs a multiple of 4 and a PatchGAN of "
                         f"--n-layers-d {o.n_layers_d} at least {smallest} px; use a multiple of 4 of at least {smallest}")
    if not o.load_size and o.img_size > OFFICIAL_LOAD_SIZE:
        raise TrainError(f"--img-size {o.img_size}: larger than the official --load-size {OFFICIAL_LOAD_SIZE} that "
                         f"images are resized to first; pass --load-size (e.g. {o.img_size + 30})")
    if o.epoch_count != 1 and o.resume is None:
        raise TrainError("--epoch-count: the epoch that the official files of --resume DIR continue at; "
                         "without --resume drop it")


@torch.no_grad()
def cycle_columns(to_target: torch.nn.Module, to_source: torch.nn.Module, images: torch.Tensor,
                  identity: bool, latents: Sequence[torch.Tensor | None] = (None,)) -> tuple[np.ndarray, LuminanceCheck]:
    """One direction's grid, the official visuals per image: input, translation (a latent model: one
    per sample code), cycle of the first and, when the identity loss is on, the other generator on
    the input (idt_B for A2B); its brightness check."""
    translations = [translate_with(to_target, latent, images) for latent in latents]
    translated = translations[0]
    tiles = [images, *translations, to_source(translated)] + ([to_source(images)] if identity else [])
    columns = [[tile[i] for tile in tiles] for i in range(images.shape[0])]
    return tile_columns(columns), luminance_check(images, translated)


class CycleGANModel(TrainingModel):
    def __init__(self, options: TrainOptions, device: torch.device, grad_sync: GradSync | None):
        self.config = net_config(options)
        self.nets = build_networks(self.config)
        self.weights = CycleWeights(options.lambda_a, options.lambda_b, options.lambda_identity, options.gan_mode)
        self.latent = latent_settings(options)
        self.step = CycleGANStep(self.nets, *make_optimizers(self.nets, options.lr), self.weights,
                                 options.pool_size, options.amp, device, grad_sync, LatentCodes(self.latent))
        self.device = device
        self.log_fields = ("d_loss", "g_loss", "D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B") + (
            ("ms_A", "ms_B") if self.latent.seeks_modes else ())

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        return self.nets.as_dict()

    def describe(self) -> str:
        c, w = self.config, self.weights
        return (f"{c.net_g} ngf {c.ngf}, PatchGAN n_layers_D {c.n_layers_d} ndf {c.ndf}, {w.gan_mode}, pool "
                f"{self.step.pool_a.size}, lambda A {w.lambda_a:g} B {w.lambda_b:g} identity {w.lambda_identity:g}"
                + self.latent.describe())

    def settings(self) -> dict[str, Any]:
        return {"network": self.config.to_dict(), "losses": {**asdict(self.weights), "pool_size": self.step.pool_a.size},
                "adam": {"betas": ADAM_BETAS, "weight_decay": 0}, "latent": asdict(self.latent)}

    def checkpoint(self, step: int, train_state: dict[str, Any]) -> dict[str, Any]:
        return checkpoint_dict(self.nets, self.config, self.step.g_optim, self.step.d_optim, step, train_state)

    def load_checkpoint(self, ckpt: dict[str, Any], schedule: EpochSchedule, options: TrainOptions) -> int:
        for name, module in self.networks.items():
            module.load_state_dict(ckpt[name])
        if "official_files" in ckpt:
            step = (options.epoch_count - 1) * schedule.iters_per_epoch
            tqdm.write(f"warning: {ckpt['official_files']} holds the official code's networks only: Adam restarts "
                       f"from empty moments and the image pools from empty, as with the official --continue_train, "
                       f"and the run starts at epoch {options.epoch_count} (step {step}; set it with --epoch-count); "
                       "from here on latest.pt keeps them all")
            return step
        if options.epoch_count != 1:
            raise TrainError("--epoch-count applies to --resume DIR of official files; a latest.pt knows its step: "
                             "drop --epoch-count")
        self.step.g_optim.load_state_dict(ckpt["G_optimizer"])
        self.step.d_optim.load_state_dict(ckpt["D_optimizer"])
        return int(ckpt["start_iter"])

    def training_state(self) -> dict[str, Any]:
        pools = {"A": self.step.pool_a.state_dict(), "B": self.step.pool_b.state_dict()}
        return {**self.step.scaler_state(), "pools": pools}

    def load_training_state(self, train_state: dict[str, Any]) -> None:
        self.step.load_scaler_state(train_state)
        pools = train_state.get("pools", {})  # none in official files: the pools start empty
        for domain, pool in (("A", self.step.pool_a), ("B", self.step.pool_b)):
            if domain in pools:
                pool.load_state_dict(pools[domain], self.device)

    def write_official_files(self, run_dir: Path, label: str) -> None:
        write_official_files(self.nets, run_dir, label)

    def sample_grids(self, images: dict[str, torch.Tensor]) -> list[Sample]:
        n, identity = self.nets, self.weights.lambda_identity > 0
        latents = sample_latents(self.latent.dim, images["A"].device)
        return [("A2B", *cycle_columns(n.G_A, n.G_B, images["A"], identity, latents)),
                ("B2A", *cycle_columns(n.G_B, n.G_A, images["B"], identity, latents))]


class CycleGAN(Architecture):
    name = "cyclegan"
    title = "CycleGAN"
    own_options = ("net_g", "ngf", "ndf", "n_layers_d", "lambda_a", "lambda_b", "lambda_identity", "pool_size",
                   "gan_mode", "epochs", "epochs_decay", "epoch_count", "save_epoch_freq", "latent_dim", "ms_weight")

    def resolve_options(self, options: TrainOptions) -> TrainOptions:
        options = replace(options, lr=options.lr or OFFICIAL_LR)
        check_options(options)
        return options

    def data_settings(self, options: TrainOptions) -> DataSettings:
        return DataSettings(load_size=options.load_size or OFFICIAL_LOAD_SIZE, resample=Image.Resampling.BICUBIC,
                            with_replacement=("B",))

    def schedule(self, options: TrainOptions, iters_per_epoch: int) -> EpochSchedule:
        return epoch_schedule(options.lr, iters_per_epoch, options.iters, options.epochs, options.epochs_decay,
                              options.save_epoch_freq)

    def build(self, options: TrainOptions, device: torch.device, grad_sync: GradSync | None) -> CycleGANModel:
        return CycleGANModel(options, device, grad_sync)

    def accept(self, path: Path, content: dict[str, Any] | None) -> dict[str, Any] | None:
        """Our latest.pt, a folder of official files, or one generator's state_dict (export only)."""
        if content is None:
            return read_official_folder(path)
        if is_run_checkpoint(content):
            return content
        if is_cyclegan_state_dict(content):
            return {"generator": normalize_cyclegan_keys(content)}
        return None

    def checkpoint_options(self, ckpt: dict[str, Any], options: TrainOptions, explicit: set[str]) -> TrainOptions:
        if "generator" in ckpt:
            raise TrainError(f"{options.resume}: one generator's state_dict; --resume takes a run's latest.pt or a "
                             "folder of the official latest_net_G_A/G_B/D_A/D_B.pth")
        arch = infer_net_config(ckpt, options.img_size).to_dict()
        return checkpoint_fixes(options, arch, ARCH_FIELDS, explicit)

    def translator(self, ckpt: dict[str, Any], path: Path, direction: str,
                   default_img_size: int) -> tuple[torch.nn.Module, ModelInfo]:
        if "generator" in ckpt and direction != "a2b":
            raise TranslatorError(f"{path}: a CycleGAN generator file holds one direction; export it with --direction "
                                  "a2b (for B->A export the other generator file, e.g. latest_net_G_B.pth)")
        state = ckpt.get("generator") or normalize_cyclegan_keys(ckpt[DIRECTION_NETWORKS[direction]])
        try:
            generator = load_cyclegan_generator(state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise TranslatorError(f"{path}: looks like a CycleGAN generator but does not load "
                                  f"({str(exc).splitlines()[0][:200]})") from exc
        img_size = int((ckpt.get("config") or {}).get("img_size", default_img_size))
        info = ModelInfo(arch=self.name, direction=direction, light=True, img_size=img_size, io="float",
                         precision="fp32", dynamic_hw=True, size_multiple=SIZE_MULTIPLE,
                         step=int(ckpt.get("start_iter", 0)), latent_dim=generator.config.latent_dim)
        return generator, info


ARCHITECTURE = CycleGAN()

