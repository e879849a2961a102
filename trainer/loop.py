"""The training loop every architecture shares (`nicegan train`): device and multi-process set-up,
the data streams, the learning-rate schedule, AMP, Ctrl-C and SIGTERM, resume, atomic checkpoints,
samples and logs. What differs between architectures (options' defaults, networks, step, checkpoint format,
sample tiles) comes from nicegan.models: an `Architecture` and the `TrainingModel` it builds.
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from nicegan.common import (StopSignals, cpu_threads, ignore_stop_signals, remove_leftover_temporaries,
                            remove_leftover_temporaries_in, write_image, write_text_atomic)
from nicegan.models import get_architecture
from nicegan.models.architecture import Architecture, WarmStart, read_any_checkpoint
from nicegan.trainer import distributed as ddp
from nicegan.trainer.checkpoint import atomic_torch_save
from nicegan.trainer.data import ImageFolderDataset, InfiniteBatches, check_layout, fixed_test_images, train_transform
from nicegan.trainer.options import LATEST, TrainError, TrainOptions, merge_resumed_options, resolve_options
from nicegan.trainer.runlog import RunLog
from nicegan.trainer.samples import inversion_warning
from nicegan.trainer.step import set_learning_rate
from nicegan.trainer.threads import cpu_has_native_bf16


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False
    exit_status: int = 0  # the shell's status for a run stopped by a signal: 130 (Ctrl-C), 143 (SIGTERM)
    paused: bool = False  # stopped at --stop-at, before the schedule's end
    checkpoint: Path | None = None
    samples: list[Path] = field(default_factory=list)


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
    """The checkpoint to resume: RUN_DIR/latest.pt, a file, or a folder (its latest.pt when it is a
    run folder, else the official files it holds)."""
    if options.resume is None:
        return None
    path = Path(options.out) / "latest.pt" if options.resume == LATEST else Path(options.resume)
    if path.is_dir() and (path / "latest.pt").is_file():
        path = path / "latest.pt"
    if not path.exists():
        raise TrainError(f"{path}: no checkpoint to resume from; run without --resume to start a new run")
    return path


def resumed_architecture(architecture: Architecture, ckpt: dict[str, Any], options: TrainOptions,
                         explicit: set[str], path: Path) -> TrainOptions:
    """The options of a run resumed from `ckpt`: its architecture, and the options its networks fix."""
    if options.arch != architecture.name:
        if "arch" in explicit:
            raise TrainError(f"--arch {options.arch}: {path} holds a {architecture.title} checkpoint; drop --arch "
                             f"(or pass --arch {architecture.name})")
        options = replace(options, arch=architecture.name)
    return architecture.checkpoint_options(ckpt, options, explicit)


def iters_per_epoch(datasets: dict[str, ImageFolderDataset], batch_size: int, world_size: int) -> int:
    """An epoch as the official CycleGAN loader counts it: max(|A|, |B|) images (the largest stream's),
    in batches of all ranks."""
    return math.ceil(max(len(d) for d in datasets.values()) / (batch_size * world_size))


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


class StopRequest(StopSignals):
    """The first Ctrl-C or SIGTERM (SLURM's time limit, a Kubernetes eviction) asks the loop to stop
    after the current step (a consistent checkpoint); a second one interrupts at once."""

    def __init__(self) -> None:
        super().__init__(self._request)
        self.requested = False

    def _request(self, name: str) -> None:
        self.requested = True
        tqdm.write(f"{name}: stopping after this step and saving latest.pt (a second Ctrl-C or SIGTERM aborts at once)")


def _ignore_stop_signals_in_worker(_: int) -> None:
    ignore_stop_signals()   # the main process stops the workers once it has saved


class Trainer:
    """Owns the model, data streams and outputs of one run directory."""

    def __init__(self, options: TrainOptions, explicit: Iterable[str] = ()):
        explicit = set(explicit)
        self.device = use_local_device(resolve_device(options.device))
        self.context = ddp.init_from_env(self.device)
        self.replica_checks = 0
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(options.threads))
        self.run_dir = Path(options.out)
        resume_path = resolve_resume_path(options)
        if resume_path is None and (self.run_dir / "latest.pt").exists():
            raise TrainError(f"{self.run_dir}: already holds a run (latest.pt); add --resume to continue it "
                             "or choose another --out")
        ckpt, train_state = None, {}
        if resume_path is not None:
            architecture, ckpt = read_any_checkpoint(resume_path)
            train_state = ckpt.get("train_state") or {}
            options = merge_resumed_options(options, explicit, train_state.get("options", {}))
            options = resumed_architecture(architecture, ckpt, options, explicit, resume_path)
        self.options = o = resolve_options(options)
        self.architecture = get_architecture(o.arch)
        self._warn_about_emulated_bf16()
        self.data_settings = settings = self.architecture.data_settings(o)
        folders = check_layout(o.data_root, settings.layout)
        transform = settings.transform or train_transform(o.img_size, settings.load_size, settings.resample)
        self.datasets = {stream: ImageFolderDataset(folders[folder], transform, settings.layout.hint)
                         for stream, folder in settings.layout.train.items()}
        self.schedule = self.architecture.schedule(o, iters_per_epoch(self.datasets, o.batch_size,
                                                                      self.context.world_size))
        seed_everything(o.seed)
        self.model = self.architecture.build(o, self.device, self._average_gradients if self.context.enabled else None)
        self.memory_format = torch.channels_last if o.channels_last else torch.preserve_format
        self.model.to(self.device, self.memory_format)
        self.step = 0
        if ckpt is not None:
            self.step = self.model.load_checkpoint(ckpt, self.schedule, o)
            self.model.load_training_state(train_state)
            if "rng" in train_state:
                restore_rng_state(train_state["rng"])
        # A run past step 0 (ours or official) is initialised; one saved at step 0 only if it says so.
        self.warm_start_done = self.step > 0 or bool(train_state.get("warm_start_done"))
        if self.context.enabled:
            ddp.broadcast_state(self.model.networks.values())
            if self.context.rank > 0:  # distinct random streams per rank (CycleGAN's image pools draw from them)
                seed_everything(o.seed + 7919 * self.context.rank + self.step)
        self._make_data(folders, train_state)

    def _warn_about_emulated_bf16(self) -> None:
        o = self.options
        if o.amp == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            tqdm.write("warning: --amp bf16 on a CPU without AVX-512 BF16 or AMX is emulated and several "
                       "times slower than --amp off; use --amp off here")

    def _average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        ddp.average_gradients(params, self.context.world_size)

    def _make_data(self, folders: dict[str, Path], train_state: dict[str, Any]) -> None:
        o, c, settings = self.options, self.context, self.data_settings
        passes, positions = train_state.get("data_passes", {}), train_state.get("data_positions", {})
        self.batches = {
            domain: InfiniteBatches(self.datasets[domain], o.batch_size, o.workers, o.seed, c.rank, c.world_size,
                                    self.device.type == "cuda", passes.get(domain, 0), positions.get(domain, 0),
                                    worker_init_fn=_ignore_stop_signals_in_worker, stream=stream,
                                    replacement=domain in settings.with_replacement)
            for stream, domain in enumerate(settings.layout.train)}
        self.sample_images = {}
        count = max(o.n_samples, settings.test_count)
        if c.is_main and count > 0:
            self.sample_images = {stream: fixed_test_images(folders[folder], o.img_size, count, settings.resample,
                                                            settings.layout.hint, settings.spread_test).to(self.device)
                                  for stream, folder in settings.layout.test.items()}
            self.model.attach_test_images(self.sample_images)

    # --- outputs (rank 0 only) ---

    def train_state(self) -> dict[str, Any]:
        return {"step": self.step, "rng": rng_state(), "options": asdict(self.options),
                "data_passes": {d: b.passes for d, b in self.batches.items()},
                "data_positions": {d: b.position for d, b in self.batches.items()},
                "warm_start_done": self.warm_start_done or self.step > 0, **self.model.training_state()}

    def save(self, path: Path) -> Path:
        atomic_torch_save(self.model.checkpoint(self.step, self.train_state()), path)
        return path

    def save_latest(self) -> Path:
        """latest.pt, and the official code's latest files where the architecture has its own."""
        self.model.write_official_files(self.run_dir, LATEST)
        return self.save(self.run_dir / "latest.pt")

    def write_samples(self) -> list[Path]:
        self.model.set_train(False)
        images = {d: x.to(memory_format=self.memory_format) for d, x in self.sample_images.items()}
        paths = []
        for name, grid, brightness in self.model.sample_grids(images):
            path = self.run_dir / "samples" / f"{name}_{self.step:07d}.png"
            write_image(path, grid)
            paths.append(path)
            warning = inversion_warning(name, brightness, self.step)
            if warning:
                tqdm.write(warning)
        self.model.set_train(True)
        return paths

    def remove_leftovers_of_a_killed_run(self) -> None:
        """A run SIGKILLed mid-save (OOM, a job past its grace period) left hidden temporary files,
        latest.pt's as large as the checkpoint. Rank 0 is the run folder's one writer; the files of
        others there (an export of latest.pt running meanwhile) are not touched."""
        remove_leftover_temporaries(self.run_dir / name for name in ("latest.pt", "config.json", "log.csv"))
        for folder in ("checkpoints", "samples"):
            remove_leftover_temporaries_in(self.run_dir / folder)

    def write_config(self) -> None:
        config = {"options": asdict(self.options), **self.model.settings(), "schedule": self.schedule.to_dict(),
                  "world_size": self.context.world_size, "device": str(self.device),
                  "torch": torch.__version__, "python": sys.version.split()[0]}
        write_text_atomic(self.run_dir / "config.json", json.dumps(config, indent=2) + "\n")

    def _check_finite(self, row: dict[str, float]) -> None:
        """Stop a diverged run instead of training NaNs for hours (fp16 is exempt: its loss scaler
        skips overflowing steps by design)."""
        fields = self.model.progress_fields
        if self.options.amp == "fp16" or all(math.isfinite(row[k]) for k in fields):
            return
        values = ", ".join(f"{k}={row[k]}" for k in fields)
        raise TrainError(f"step {self.step}: training diverged ({values}); {self.run_dir / 'latest.pt'} holds the "
                         "last saved state: resume from it with a lower --lr, or --amp off")

    def _check_replicas(self) -> None:
        """At every save (all ranks take part): stop a multi-process run whose replicas no longer
        hold the same weights, the sign that gradients are not synchronised."""
        o = self.options
        if not self.context.enabled or (self.step % o.save_every and self.step != self.schedule.iters):
            return
        if not ddp.replicas_agree(self.model.networks.values(), self.device):
            raise TrainError(f"step {self.step}: the {self.context.world_size} processes no longer hold the same "
                             "weights (gradients were not synchronised); the last latest.pt is intact")
        self.replica_checks += 1

    def _write_periodic_outputs(self, result: TrainResult) -> None:
        o, last = self.options, self.step == self.schedule.iters
        if self.sample_images and (self.step % o.sample_every == 0 or last):
            result.samples = self.write_samples()
        if self.step % o.save_every == 0 or last:
            result.checkpoint = self.save_latest()
        if o.snapshot_every > 0 and self.step % o.snapshot_every == 0:
            self.save(self.run_dir / "checkpoints" / f"params_{self.step:07d}.pt")
        epoch = self.schedule.snapshot_epoch(self.step)
        if epoch is not None:
            self.model.write_official_files(self.run_dir, str(epoch))

    # --- the loop ---

    def run_warm_start(self, warm: WarmStart, stop: StopRequest) -> None:
        """The architecture's warm start (NICE-GAN's --identity-init), then samples and latest.pt at
        step 0, so that a resumed run skips it. Ctrl-C leaves it unfinished: the loop saves latest.pt
        at step 0 and --resume runs the warm start again from there."""
        o, main = self.options, self.context.is_main
        values: list[float] = []
        with tqdm(total=warm.steps, disable=not (main and o.progress), unit="it", dynamic_ncols=True, desc=warm.name) as bar:
            for index in range(1, warm.steps + 1):
                if self.context.enabled:
                    stop.requested = ddp.any_rank(stop.requested, self.device)
                if stop.requested:
                    return
                values.append(warm.step(self._next_batch(), index))
                bar.update(1)
                bar.set_postfix({warm.metric: f"{np.mean(values[-o.log_every:]):.4f}"})
        summary = warm.finish(values)
        self.warm_start_done = True
        if main:
            tqdm.write(f"{warm.name}: {warm.steps} steps, {summary}")
            if self.sample_images:
                self.write_samples()
            self.save_latest()

    def _next_batch(self) -> dict[str, torch.Tensor]:
        return {domain: next(batches).to(self.device, non_blocking=True, memory_format=self.memory_format)
                for domain, batches in self.batches.items()}

    def _announce(self) -> None:
        o, iters = self.options, self.schedule.iters
        tqdm.write(f"nicegan train: {self.architecture.title} {self.model.describe()} | "
                   f"{self.model.parameter_count() / 1e6:.2f} M params | device {self.device} x "
                   f"{self.context.world_size} ({torch.get_num_threads()} threads) | amp {o.amp} | "
                   f"steps {self.step + 1}..{iters} ({self.schedule.describe()}) | out {self.run_dir}")
        if self.step >= iters:
            tqdm.write(f"nothing to do: the run is at step {self.step} of {iters}; "
                       "pass a larger --iters to train further")

    def run(self) -> TrainResult:
        o, main, iters = self.options, self.context.is_main, self.schedule.iters
        result = TrainResult(self.run_dir, self.step)
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.remove_leftovers_of_a_killed_run()
            self.write_config()
            log = RunLog(self.run_dir, self.step, self.model.log_fields)
            self._announce()
        bar = tqdm(total=iters, initial=self.step, disable=not (main and o.progress), unit="it", dynamic_ncols=True, desc="train")
        sums: dict[str, torch.Tensor] = {}
        interval_start, interval_steps, started = time.perf_counter(), 0, time.perf_counter()
        try:
            with StopRequest() as stop:
                warm = self.model.warm_start(o)
                if warm is not None and not self.warm_start_done:
                    self.run_warm_start(warm, stop)
                    interval_start = time.perf_counter()  # it/s of the first logged steps, not of the warm start
                end = min(iters, o.stop_at) if o.stop_at else iters
                while self.step < end:
                    if self.context.enabled:
                        stop.requested = ddp.any_rank(stop.requested, self.device)
                    if stop.requested:
                        result.interrupted, result.exit_status = True, stop.exit_status
                        break
                    batch = self._next_batch()
                    lr = self.schedule.lr(self.step + 1)
                    set_learning_rate(self.model.step.optimizers, lr)
                    losses = self.model.train_step(batch)
                    self.step += 1
                    interval_steps += 1
                    bar.update(1)
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    self._check_replicas()
                    if not main:
                        continue
                    if self.step % o.log_every == 0 or self.step == iters:
                        now = time.perf_counter()
                        row = {k: float(v) / interval_steps for k, v in sums.items()}
                        row.update(step=self.step, lr=lr, it_per_s=interval_steps / (now - interval_start),
                                   elapsed_s=now - started)
                        log.write(row)
                        self._check_finite(row)
                        bar.set_postfix({k: f"{row[k]:.4f}" for k in self.model.progress_fields})
                        sums, interval_start, interval_steps = {}, now, 0
                    self._write_periodic_outputs(result)
                result.paused = not result.interrupted and self.step < iters and bool(o.stop_at)
                if (result.interrupted or result.paused) and main:
                    result.checkpoint = self.save_latest()
        finally:
            bar.close()
            if main:
                log.close()
        result.step = self.step
        if main and self.replica_checks:
            tqdm.write(f"replicas: the {self.context.world_size} processes held the same weights at each of "
                       f"{self.replica_checks} checks")
        return result


def train(options: TrainOptions, explicit: Iterable[str] = ()) -> TrainResult:
    """Train (or resume) a run; `explicit` names the options given on the command line, which
    override the saved ones when resuming."""
    try:
        result = Trainer(options, explicit).run()
        ddp.wait_for_all_ranks()   # not on an error: a rank that died would hold the others at the barrier
        return result
    finally:
        ddp.shutdown()
