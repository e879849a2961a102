"""`nicegan train`'s options: one dataclass for every architecture, the checks they share, and
how a resumed run's saved options combine with those given again.

Each architecture (nicegan.models) names the fields that it reads and others do not, and fills in
its own defaults (a 0 means "the architecture's default" for `iters`, `lr`, `load_size` and
`batch_size`); a field of another architecture that is set is refused, so that `--ch 32 --arch
cyclegan` cannot silently train something else than what was asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Iterable

from nicegan.errors import NiceganError
from nicegan.models import ARCHITECTURES, get_architecture

AMP_MODES = ("off", "bf16", "fp16")
# Where and how to run, never taken from a resumed run's saved options.
SESSION_FIELDS = ("data_root", "out", "resume", "epoch_count", "device", "workers", "threads", "stop_at", "progress")
LATEST = "latest"
# Options whose command-line name is not the field name with dashes.
FLAGS = {"net_g": "--netG"}


class TrainError(NiceganError, ValueError):
    """A training setup that cannot run; the message says what to change."""


@dataclass
class TrainOptions:
    data_root: str
    out: str
    arch: str = "nicegan"
    img_size: int = 256
    load_size: int = 0  # training images are resized to this before the crop; 0: the architecture's official
    # NICE-GAN (nicegan.models.nicegan)
    ch: int = 64
    n_res: int = 6
    n_dis: int = 0  # 0: the official 7, or the deepest discriminator that img_size fits (default_n_dis)
    light: bool = True
    residual: bool = False  # generators decode a change added to their source image (not official)
    adv_weight: float = 1.0
    cycle_weight: float = 10.0
    recon_weight: float = 10.0
    identity_init: int = 0  # autoencoder steps before step 1 (not in the official code; 0: official init)
    latent_regression: float = 0.0  # weight of the code's L1 regression from the translation (MSGAN/DRIT; 0: off)
    # CycleGAN (nicegan.models.cyclegan), under the official option names
    net_g: str = "resnet_9blocks"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    gan_mode: str = "lsgan"
    epochs: int = 0  # epochs at the full lr; 0: the official 100 (or from --iters)
    epochs_decay: int = 0  # epochs of linear decay; 0: the official 100 (or from --iters)
    epoch_count: int = 1  # the epoch that official *_net_*.pth files resumed with --resume DIR continue at
    save_epoch_freq: int = 5  # write the official {epoch}_net_*.pth every N epochs (0: never)
    # MSGAN (nicegan.models.latent), for NICE-GAN and CycleGAN
    latent_dim: int = 0  # a latent code of this size enters the generators (0: the official deterministic models)
    ms_weight: float = 1.0  # weight of the mode-seeking term of a latent model (MSGAN's 1; 0: off)
    # TUNIT (nicegan.models.tunit), under the official option names; --ch is its base width
    k: int = 10  # pseudo-domains (the official --output_k)
    sty_dim: int = 128  # style code size
    separated: int = 0  # iterations that train the guiding network alone; 0: the official 65/200 of --iters
    ema_start: int = 0  # the iteration from which G_EMA averages G; 0: the official 66/200 of --iters
    w_adv: float = 1.0
    w_rec: float = 0.1
    w_vec: float = 0.01  # the generator's style contrastive loss
    w_gp: float = 10.0  # R1 on real images
    color_jitter: bool = True  # of the guiding network's augmented view (the official two-domain sets: off)
    # schedule and run, for every architecture
    iters: int = 0  # total iterations; 0: the architecture's default
    batch_size: int = 0  # 0: the architecture's official (NICE-GAN and CycleGAN 1, TUNIT 32)
    lr: float = 0.0  # 0: the architecture's official
    seed: int = 0
    workers: int = 2
    amp: str = "off"
    channels_last: bool = False
    device: str = "auto"
    threads: int = 0
    sample_every: int = 1000
    save_every: int = 1000
    snapshot_every: int = 50_000
    log_every: int = 10
    n_samples: int = 4
    resume: str | None = None  # None, LATEST (RUN_DIR/latest.pt), a checkpoint path or a folder of official files
    stop_at: int = 0  # save latest.pt and stop at this step, to resume later (0: run to iters)
    progress: bool = True  # progress bars (off for logs and CI); log.csv and the messages stay


def flag(name: str) -> str:
    """The command-line spelling of a TrainOptions field."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _default(name: str) -> Any:
    return next(f.default for f in fields(TrainOptions) if f.name == name)


def check_shared_options(o: TrainOptions) -> None:
    """Refuse options that no architecture can train with, with the fix in the message."""
    if o.arch not in ARCHITECTURES:
        raise TrainError(f"--arch {o.arch}: choose one of {', '.join(ARCHITECTURES)}")
    for name in ("save_every", "sample_every", "log_every"):
        if getattr(o, name) < 1:
            raise TrainError(f"{flag(name)} must be >= 1 (got {getattr(o, name)})")
    for name in ("iters", "stop_at", "lr", "latent_dim", "ms_weight", "batch_size"):
        if getattr(o, name) < 0:
            raise TrainError(f"{flag(name)} must be >= 0 (got {getattr(o, name)})")
    if not o.latent_dim and o.ms_weight != _default("ms_weight"):
        raise TrainError(f"--ms-weight {o.ms_weight:g}: the mode-seeking term needs a latent code; add --latent-dim 8 "
                         "(MSGAN's size) or drop --ms-weight")
    if o.load_size and o.load_size < o.img_size:
        raise TrainError(f"--load-size {o.load_size}: must be at least --img-size {o.img_size} (or 0)")
    if o.amp not in AMP_MODES:
        raise TrainError(f"--amp must be one of {', '.join(AMP_MODES)} (got {o.amp!r})")
    own = get_architecture(o.arch).own_options
    for other in ARCHITECTURES:
        if other == o.arch:
            continue
        for name in get_architecture(other).own_options:
            if name not in own and getattr(o, name) != _default(name):
                raise TrainError(f"{flag(name)} is an option of --arch {other}; --arch {o.arch} does not use it: "
                                 f"drop it (or pass --arch {other})")


def resolve_options(options: TrainOptions) -> TrainOptions:
    """The shared checks, then the architecture's defaults and checks; data-independent (the
    schedule, which needs the image counts, is resolved by the trainer)."""
    check_shared_options(options)
    architecture = get_architecture(options.arch)
    options = replace(options, batch_size=options.batch_size or architecture.default_batch_size)
    return architecture.resolve_options(options)


def merge_resumed_options(options: TrainOptions, explicit: Iterable[str], saved: dict[str, Any]) -> TrainOptions:
    """Options of a resumed run: those saved with it, except the ones given on this command line."""
    explicit = set(explicit) | set(SESSION_FIELDS)
    known = {f.name for f in fields(TrainOptions)}
    restored = {k: v for k, v in saved.items() if k in known and k not in explicit}
    return replace(options, **restored)
