"""NICE-GAN training: the official D step and G step (alpc91/NICE-GAN-pytorch `NICE.py`),
without its wasted work, resumable, with AMP and multi-process data parallelism.

Same maths as the official loop:
- decoupled training: the encoders live inside disA/disB and only the D optimizer updates them;
- every discriminator forward of the official step is kept, in train mode, because each one
  runs a spectral-norm power iteration that the next step depends on;
- Adam (lr 1e-4, betas (0.5, 0.999), L2 weight decay 1e-4), constant lr then linear decay to 0.
Less work: the generator forward of the D step and the real-image encodings of the G step run
without autograd (nothing differentiates through them), and D parameters are frozen during the
G step so its backward computes no discriminator gradients.

Three additions, all off by default: `residual` generators (see ResnetGenerator), `identity_init`
steps of autoencoder training before step 1 (`IdentityInit`), so that every translation starts as
the identity mapping, and `load_size`, the size training images are resized to before the random
crop (official: img_size + 30).
"""
from __future__ import annotations

import json
import math
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.nn.utils.spectral_norm import SpectralNorm
from tqdm import tqdm

from nicegan.common import cpu_threads, write_image, write_text_atomic
from nicegan.errors import NiceganError
from nicegan.models.nicegan.checkpoint import (
    NiceConfig,
    NiceNetworks,
    build_networks,
    checkpoint_dict,
    infer_config,
    read_checkpoint,
)
from nicegan.models.nicegan.losses import LossWeights, discriminator_domain_loss, generator_adversarial_loss, l1
from nicegan.trainer import distributed as ddp
from nicegan.trainer.checkpoint import atomic_torch_save
from nicegan.trainer.data import ImageFolderDataset, InfiniteBatches, check_layout, fixed_test_images, train_transform
from nicegan.trainer.runlog import RunLog
from nicegan.trainer.samples import inversion_warning, translation_columns
from nicegan.trainer.threads import cpu_has_native_bf16

ADAM_BETAS = (0.5, 0.999)
WEIGHT_DECAY = 1e-4
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
ARCH_FIELDS = ("img_size", "ch", "n_res", "n_dis", "light", "residual")
# Where and how to run, never taken from a resumed run's saved options.
SESSION_FIELDS = ("data_root", "out", "resume", "device", "workers", "threads", "stop_at")
LATEST = "latest"


class TrainError(NiceganError, ValueError):
    """A training setup that cannot run; the message says what to change."""


@dataclass
class TrainOptions:
    data_root: str
    out: str
    img_size: int = 256
    load_size: int = 0  # training images are resized to this before the crop; 0: img_size + 30 (official)
    ch: int = 64
    n_res: int = 6
    n_dis: int = 0  # 0: the official 7, or the deepest discriminator that img_size fits (default_n_dis)
    light: bool = True
    residual: bool = False  # generators decode a change added to their source image (not official)
    iters: int = 300_000
    batch_size: int = 1
    lr: float = 1e-4
    adv_weight: float = 1.0
    cycle_weight: float = 10.0
    recon_weight: float = 10.0
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
    identity_init: int = 0  # autoencoder steps before step 1 (not in the official code; 0: official init)
    resume: str | None = None  # None, LATEST (RUN_DIR/latest.pt) or a checkpoint path
    stop_at: int = 0  # save latest.pt and stop at this step, to resume later (0: run to iters)

    def config(self) -> NiceConfig:
        return NiceConfig(img_size=self.img_size, ch=self.ch, n_res=self.n_res, n_dis=self.n_dis, light=self.light,
                          residual=self.residual)

    def loss_weights(self) -> LossWeights:
        return LossWeights(adv=self.adv_weight, cycle=self.cycle_weight, recon=self.recon_weight)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False
    paused: bool = False  # stopped at --stop-at, before --iters
    checkpoint: Path | None = None
    samples: list[Path] = field(default_factory=list)


# --- options --------------------------------------------------------------------------------

OFFICIAL_N_DIS, MIN_N_DIS = 7, 6


def smallest_crop(n_dis: int) -> int:
    """The smallest training crop for a discriminator of depth n_dis: its global head needs a 1x1 output."""
    return 3 * 2 ** (n_dis - 2)


def default_n_dis(img_size: int) -> int:
    """The official depth (7), or the deepest one whose global head fits `img_size` (6 from 48 px)."""
    fitting = [n for n in range(MIN_N_DIS, OFFICIAL_N_DIS + 1) if smallest_crop(n) <= img_size]
    return max(fitting, default=MIN_N_DIS)


def check_options(o: TrainOptions, n_dis_given: bool = True) -> None:
    """Refuse options that cannot train, with the fix in the message (n_dis already resolved)."""
    smallest = smallest_crop(o.n_dis)
    if o.img_size % 4 or o.img_size < smallest:
        if o.img_size % 4 == 0 and o.img_size >= smallest_crop(MIN_N_DIS) and n_dis_given:
            fix = f"use --n-dis {default_n_dis(o.img_size)}, or leave --n-dis out to have it chosen from --img-size"
        else:
            fix = f"use a multiple of 4 of at least {smallest_crop(MIN_N_DIS)}"
        raise TrainError(f"--img-size {o.img_size}: a discriminator of depth {o.n_dis} needs crops that are a "
                         f"multiple of 4 and at least {smallest} px; {fix}")
    for name in ("iters", "batch_size", "save_every", "sample_every", "log_every"):
        if getattr(o, name) < 1:
            raise TrainError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(o, name)})")
    if o.load_size and o.load_size < o.img_size:
        raise TrainError(f"--load-size {o.load_size}: must be at least --img-size {o.img_size} (or 0)")
    if o.stop_at < 0:
        raise TrainError(f"--stop-at must be >= 0 (got {o.stop_at})")
    if o.identity_init < 0:
        raise TrainError(f"--identity-init must be >= 0 (got {o.identity_init})")
    if o.identity_init and o.residual:
        raise TrainError("--identity-init with --residual: residual generators start as the identity "
                         "already; drop --identity-init")
    if o.amp not in AMP_DTYPES:
        raise TrainError(f"--amp must be one of {', '.join(AMP_DTYPES)} (got {o.amp!r})")


def resolve_options(options: TrainOptions) -> TrainOptions:
    """n_dis chosen from img_size when it was not given (0), then every option checked."""
    given = options.n_dis != 0
    if not given:
        options = replace(options, n_dis=default_n_dis(options.img_size))
    check_options(options, n_dis_given=given)
    return options


# --- the maths ------------------------------------------------------------------------------


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


def set_learning_rate(optimizers: Iterable[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr


@contextmanager
def frozen(params: list[torch.nn.Parameter]) -> Iterator[None]:
    """Parameters excluded from autograd: gradients flow through the modules but not into them."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


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


class TrainStep:
    """One NICE-GAN iteration: D step then G step, each followed by its optimizer step.

    `grad_sync(params)` (multi-process) runs between backward and optimizer step.
    """

    def __init__(self, nets: NiceNetworks, g_optim: torch.optim.Optimizer, d_optim: torch.optim.Optimizer,
                 weights: LossWeights = LossWeights(), amp: str = "off", device: torch.device | str = "cpu",
                 grad_sync: Callable[[list[torch.nn.Parameter]], None] | None = None):
        if amp not in AMP_DTYPES:
            raise TrainError(f"--amp must be one of {', '.join(AMP_DTYPES)} (got {amp!r})")
        self.nets, self.g_optim, self.d_optim, self.weights = nets, g_optim, d_optim, weights
        self.device = torch.device(device)
        self.amp_dtype = AMP_DTYPES[amp]
        if self.amp_dtype is not None:
            for dis in (nets.disA, nets.disB):
                keep_spectral_norm_fp32(dis, self.device.type)
        # fp16 needs loss scaling; one scaler per optimizer because the two losses are independent.
        self.d_scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.g_scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.grad_sync = grad_sync
        self.d_params = list(chain(nets.disA.parameters(), nets.disB.parameters()))
        self.g_params = list(chain(nets.gen2B.parameters(), nets.gen2A.parameters()))

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def apply_loss(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: list[torch.nn.Parameter]) -> None:
        scaler.scale(loss).backward()  # a disabled scaler returns the loss unchanged
        if self.grad_sync is not None:
            self.grad_sync(params)
        scaler.step(optimizer)
        scaler.update()

    def discriminator_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        n, w = self.nets, self.weights
        self.d_optim.zero_grad(set_to_none=True)
        with self.autocast():
            real_a_out = n.disA(real_a)
            real_b_out = n.disB(real_b)
            with torch.no_grad():  # the official code detaches these fakes: no graph needed at all
                fake_a2b = n.gen2B(real_a_out[4].detach(), real_a)
                fake_b2a = n.gen2A(real_b_out[4].detach(), real_b)
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
            fake_a2b = n.gen2B(real_a_z, real_a)
            fake_b2a = n.gen2A(real_b_z, real_b)
            fake_a_out = n.disA(fake_b2a)
            fake_b_out = n.disB(fake_a2b)
            fake_b2a2b = n.gen2B(fake_a_out[4], fake_b2a)  # cycle through the target domain's encoder
            fake_a2b2a = n.gen2A(fake_b_out[4], fake_a2b)
            fake_a2a = n.gen2A(real_a_z, real_a)  # recon: source encoder, other generator
            fake_b2b = n.gen2B(real_b_z, real_b)
            adv_a, adv_b = generator_adversarial_loss(fake_a_out), generator_adversarial_loss(fake_b_out)
            cycle_a, cycle_b = l1(fake_a2b2a, real_a), l1(fake_b2a2b, real_b)
            recon_a, recon_b = l1(fake_a2a, real_a), l1(fake_b2b, real_b)
            g_loss_a = w.adv * adv_a + w.cycle * cycle_a + w.recon * recon_a
            g_loss_b = w.adv * adv_b + w.cycle * cycle_b + w.recon * recon_b
            g_loss = g_loss_a + g_loss_b
            self.apply_loss(g_loss, self.g_optim, self.g_scaler, self.g_params)
        return {"g_loss": g_loss.detach(), "g_adv": (adv_a + adv_b).detach(),
                "g_cycle": (cycle_a + cycle_b).detach(), "g_recon": (recon_a + recon_b).detach()}

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

    def __init__(self, train_step: TrainStep):
        self.train_step = train_step
        nets = train_step.nets
        # Only the encoder part of disA receives gradients; Adam skips the heads' grad-less params.
        self.params = list(chain(nets.disA.parameters(), nets.gen2A.parameters()))
        self.optim = torch.optim.Adam(self.params, lr=self.LR)
        self.scaler = torch.amp.GradScaler(train_step.device.type, enabled=train_step.d_scaler.is_enabled())

    def step(self, real_a: torch.Tensor, real_b: torch.Tensor, lr: float) -> torch.Tensor:
        n, ts = self.train_step.nets, self.train_step
        set_learning_rate([self.optim], lr)
        n.disA.train()
        n.gen2A.train()
        self.optim.zero_grad(set_to_none=True)
        with ts.autocast():
            loss = sum(l1(n.gen2A(n.disA.encode(real)[0], real), real) for real in (real_a, real_b))
        ts.apply_loss(loss, self.optim, self.scaler, self.params)
        return loss.detach()

    def finish(self) -> None:
        n = self.train_step.nets
        n.disB.load_state_dict(n.disA.state_dict())
        n.gen2B.load_state_dict(n.gen2A.state_dict())


# --- state that survives a restart ---------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """torch, numpy, python (and CUDA) RNG states as tensors/tuples that weights_only loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_resume_path(options: TrainOptions) -> Path | None:
    if options.resume is None:
        return None
    path = Path(options.out) / "latest.pt" if options.resume == LATEST else Path(options.resume)
    if not path.is_file():
        raise TrainError(f"{path}: no checkpoint to resume from; run without --resume to start a new run")
    return path


def merge_resumed_options(options: TrainOptions, explicit: Iterable[str], saved: dict[str, Any]) -> TrainOptions:
    """Options of a resumed run: those saved with it, except the ones given on this command line."""
    explicit = set(explicit) | set(SESSION_FIELDS)
    known = {f.name for f in fields(TrainOptions)}
    restored = {k: v for k, v in saved.items() if k in known and k not in explicit}
    return replace(options, **restored)


def checkpoint_architecture(ckpt: dict[str, Any], options: TrainOptions, explicit: set[str]) -> dict[str, Any]:
    """The resumed checkpoint's architecture; a light model may change --img-size (any size fits it)."""
    arch = infer_config(ckpt, options.img_size).to_dict()
    if arch["light"] and "img_size" in explicit:
        arch["img_size"] = options.img_size
    ignored = [f"--{k.replace('_', '-')} {getattr(options, k)}" for k in ARCH_FIELDS
               if k in explicit and getattr(options, k) != arch[k]]
    if ignored:
        tqdm.write(f"note: {', '.join(ignored)} ignored: the resumed checkpoint's architecture is "
                   + ", ".join(f"{k}={arch[k]}" for k in ARCH_FIELDS))
    return {k: arch[k] for k in ARCH_FIELDS}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def use_local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK (set before NCCL starts)."""
    if device.type != "cuda":
        return device
    if ddp.launched_by_torchrun():
        device = torch.device("cuda", ddp.local_rank())
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    return device


# --- the run -------------------------------------------------------------------------------


class StopRequest:
    """First Ctrl-C asks the loop to stop after the current step (a consistent checkpoint);
    a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("Ctrl-C: stopping after this step and saving latest.pt (press again to abort at once)")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _ignore_sigint_in_worker(_: int) -> None:
    # Ctrl-C reaches the whole process group; workers keep serving so the main process can save.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Trainer:
    """Owns the networks, optimizers, data streams and outputs of one run directory."""

    def __init__(self, options: TrainOptions, explicit: Iterable[str] = ()):
        self.device = use_local_device(resolve_device(options.device))
        self.context = ddp.init_from_env(self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(options.threads))
        self.run_dir = Path(options.out)
        resume_path = resolve_resume_path(options)
        if resume_path is None and (self.run_dir / "latest.pt").exists():
            raise TrainError(f"{self.run_dir}: already holds a run (latest.pt); add --resume to continue it "
                             "or choose another --out")
        ckpt = read_checkpoint(resume_path) if resume_path else None
        train_state = (ckpt or {}).get("train_state") or {}
        if ckpt is not None:
            options = merge_resumed_options(options, explicit, train_state.get("options", {}))
            options = replace(options, **checkpoint_architecture(ckpt, options, set(explicit)))
        self.options = resolve_options(options)
        self._warn_about_emulated_bf16()
        self.step = int(ckpt["start_iter"]) if ckpt else 0
        # A run past step 0 (ours or official) is initialised; one saved at step 0 only if it says so.
        self.identity_init_done = self.step > 0 or bool(train_state.get("identity_init_done"))
        seed_everything(options.seed)
        self.nets = build_networks(options.config())
        self.memory_format = torch.channels_last if options.channels_last else torch.preserve_format
        for module in self.nets.as_dict().values():
            module.to(self.device, memory_format=self.memory_format)
        self.g_optim, self.d_optim = make_optimizers(self.nets, options.lr)
        self.train_step = TrainStep(self.nets, self.g_optim, self.d_optim, options.loss_weights(), options.amp,
                                    self.device, self._average_gradients if self.context.enabled else None)
        if ckpt is not None:
            self._load(ckpt, train_state)
        if self.context.enabled:
            ddp.broadcast_state(self.nets.as_dict().values())
            if self.context.rank > 0:  # distinct augmentation streams per rank
                torch.manual_seed(options.seed + 7919 * self.context.rank + self.step)
        self._make_data(train_state.get("data_passes", {}))

    def _warn_about_emulated_bf16(self) -> None:
        o = self.options
        if o.amp == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            tqdm.write("warning: --amp bf16 on a CPU without AVX-512 BF16 or AMX is emulated and several "
                       "times slower than --amp off; use --amp off here")

    def _average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        ddp.average_gradients(params, self.context.world_size)

    def _load(self, ckpt: dict[str, Any], train_state: dict[str, Any]) -> None:
        for name, module in self.nets.as_dict().items():
            module.load_state_dict(ckpt[name])
        for key, optimizer in (("G_optimizer", self.g_optim), ("D_optimizer", self.d_optim)):
            if ckpt.get(key):
                optimizer.load_state_dict(ckpt[key])
        if "rng" in train_state:
            restore_rng_state(train_state["rng"])
        for key, scaler in (("d_scaler", self.train_step.d_scaler), ("g_scaler", self.train_step.g_scaler)):
            if train_state.get(key) and scaler.is_enabled():
                scaler.load_state_dict(train_state[key])

    def _make_data(self, passes: dict[str, int]) -> None:
        o, c = self.options, self.context
        folders = check_layout(o.data_root)
        transform = train_transform(o.img_size, o.load_size)
        self.batches = {
            domain: InfiniteBatches(ImageFolderDataset(folders[f"train{domain}"], transform), o.batch_size,
                                    o.workers, o.seed, c.rank, c.world_size, self.device.type == "cuda",
                                    passes.get(domain, 0), worker_init_fn=_ignore_sigint_in_worker)
            for domain in ("A", "B")}
        self.sample_images = {}
        if c.is_main and o.n_samples > 0:
            self.sample_images = {domain: fixed_test_images(folders[f"test{domain}"], o.img_size, o.n_samples)
                                  .to(self.device) for domain in ("A", "B")}

    # --- outputs (rank 0 only) ---

    def train_state(self) -> dict[str, Any]:
        state = {"step": self.step, "rng": rng_state(), "options": asdict(self.options),
                 "data_passes": {d: b.passes for d, b in self.batches.items()},
                 "identity_init_done": self.identity_init_done}
        for key, scaler in (("d_scaler", self.train_step.d_scaler), ("g_scaler", self.train_step.g_scaler)):
            if scaler.is_enabled():
                state[key] = scaler.state_dict()
        return state

    def save(self, path: Path) -> Path:
        atomic_torch_save(checkpoint_dict(self.nets, self.g_optim, self.d_optim, self.step, self.train_state()), path)
        return path

    def write_samples(self) -> list[Path]:
        n = self.nets
        for module in n.as_dict().values():
            module.eval()
        paths = []
        for name, (src_dis, to_tgt, tgt_dis, to_src), images in (
                ("A2B", (n.disA, n.gen2B, n.disB, n.gen2A), self.sample_images["A"]),
                ("B2A", (n.disB, n.gen2A, n.disA, n.gen2B), self.sample_images["B"])):
            path = self.run_dir / "samples" / f"{name}_{self.step:07d}.png"
            grid, brightness = translation_columns(src_dis, to_tgt, tgt_dis, to_src,
                                                    images.to(memory_format=self.memory_format))
            write_image(path, grid)
            paths.append(path)
            warning = inversion_warning(name, brightness, self.step)
            if warning:
                tqdm.write(warning)
        for module in n.as_dict().values():
            module.train()
        return paths

    def write_config(self) -> None:
        config = {"options": asdict(self.options), "network": self.options.config().to_dict(),
                  "world_size": self.context.world_size, "device": str(self.device),
                  "torch": torch.__version__, "python": sys.version.split()[0],
                  "adam": {"betas": ADAM_BETAS, "weight_decay": WEIGHT_DECAY}}
        write_text_atomic(self.run_dir / "config.json", json.dumps(config, indent=2) + "\n")

    def _check_finite(self, row: dict[str, float]) -> None:
        """Stop a diverged run instead of training NaNs for hours (fp16 is exempt: its loss scaler
        skips overflowing steps by design)."""
        if self.options.amp == "fp16" or all(math.isfinite(row[k]) for k in ("d_loss", "g_loss")):
            return
        raise TrainError(f"step {self.step}: training diverged (d_loss={row['d_loss']}, g_loss={row['g_loss']}); "
                         f"{self.run_dir / 'latest.pt'} holds the last saved state: resume from it with a lower "
                         "--lr, or --amp off")

    def _write_periodic_outputs(self, result: TrainResult) -> None:
        o, last = self.options, self.step == self.options.iters
        if self.sample_images and (self.step % o.sample_every == 0 or last):
            result.samples = self.write_samples()
        if self.step % o.save_every == 0 or last:
            result.checkpoint = self.save(self.run_dir / "latest.pt")
        if o.snapshot_every > 0 and self.step % o.snapshot_every == 0:
            self.save(self.run_dir / "checkpoints" / f"params_{self.step:07d}.pt")

    # --- the loop ---

    def run_identity_init(self, stop: StopRequest) -> None:
        """The `identity_init` warm start (IdentityInit), then samples and latest.pt at step 0, so
        that a resumed run skips it. Ctrl-C leaves it unfinished: the loop saves latest.pt at step 0
        and --resume runs the warm start again from there."""
        o, main = self.options, self.context.is_main
        init = IdentityInit(self.train_step)
        losses = []
        with tqdm(total=o.identity_init, disable=not main, unit="it", dynamic_ncols=True,
                  desc="identity init") as bar:
            for i in range(1, o.identity_init + 1):
                if self.context.enabled:
                    stop.requested = ddp.any_rank(stop.requested, self.device)
                if stop.requested:
                    return
                lr = learning_rate(i, o.identity_init, init.LR)
                losses.append(float(init.step(self._next_batch("A"), self._next_batch("B"), lr)) / 2)
                bar.update(1)
                bar.set_postfix(recon_l1=f"{np.mean(losses[-o.log_every:]):.4f}")
        init.finish()
        self.identity_init_done = True
        if main:
            last = losses[-100:]
            tqdm.write(f"identity init: {o.identity_init} steps, reconstruction L1 {np.mean(last):.4f} over the last "
                       f"{len(last)} (images in [-1, 1]); disA/gen2A copied to disB/gen2B")
            if self.sample_images:
                self.write_samples()
            self.save(self.run_dir / "latest.pt")

    def _next_batch(self, domain: str) -> torch.Tensor:
        return next(self.batches[domain]).to(self.device, non_blocking=True, memory_format=self.memory_format)

    def run(self) -> TrainResult:
        o, main = self.options, self.context.is_main
        result = TrainResult(self.run_dir, self.step)
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.write_config()
            log = RunLog(self.run_dir, self.step)
            params = sum(p.numel() for m in self.nets.as_dict().values() for p in m.parameters())
            tqdm.write(f"nicegan train: {o.config()} | {params / 1e6:.2f} M params | device {self.device} x "
                       f"{self.context.world_size} ({torch.get_num_threads()} threads) | amp {o.amp} | "
                       f"steps {self.step + 1}..{o.iters} | out {self.run_dir}")
            if self.step >= o.iters:
                tqdm.write(f"nothing to do: the run is at step {self.step} of --iters {o.iters}; "
                           "pass a larger --iters to train further")
        bar = tqdm(total=o.iters, initial=self.step, disable=not main, unit="it", dynamic_ncols=True,
                   desc="train")
        sums: dict[str, torch.Tensor] = {}
        interval_start, interval_steps, started = time.perf_counter(), 0, time.perf_counter()
        try:
            with StopRequest() as stop:
                if o.identity_init > 0 and not self.identity_init_done:
                    self.run_identity_init(stop)
                    interval_start = time.perf_counter()  # it/s of the first logged steps, not of the warm start
                end = min(o.iters, o.stop_at) if o.stop_at else o.iters
                while self.step < end:
                    if self.context.enabled:
                        stop.requested = ddp.any_rank(stop.requested, self.device)
                    if stop.requested:
                        result.interrupted = True
                        break
                    real_a, real_b = self._next_batch("A"), self._next_batch("B")
                    lr = learning_rate(self.step + 1, o.iters, o.lr)
                    set_learning_rate((self.g_optim, self.d_optim), lr)
                    losses = self.train_step(real_a, real_b)
                    self.step += 1
                    interval_steps += 1
                    bar.update(1)
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    if not main:
                        continue
                    if self.step % o.log_every == 0 or self.step == o.iters:
                        now = time.perf_counter()
                        row = {k: float(v) / interval_steps for k, v in sums.items()}
                        row.update(step=self.step, lr=lr, it_per_s=interval_steps / (now - interval_start),
                                   elapsed_s=now - started)
                        log.write(row)
                        self._check_finite(row)
                        bar.set_postfix(d_loss=f"{row['d_loss']:.4f}", g_loss=f"{row['g_loss']:.4f}")
                        sums, interval_start, interval_steps = {}, now, 0
                    self._write_periodic_outputs(result)
                result.paused = not result.interrupted and self.step < o.iters and bool(o.stop_at)
                if (result.interrupted or result.paused) and main:
                    result.checkpoint = self.save(self.run_dir / "latest.pt")
        finally:
            bar.close()
            if main:
                log.close()
        result.step = self.step
        return result


def train(options: TrainOptions, explicit: Iterable[str] = ()) -> TrainResult:
    """Train (or resume) a run; `explicit` names the options given on the command line, which
    override the saved ones when resuming."""
    try:
        return Trainer(options, explicit).run()
    finally:
        ddp.shutdown()
