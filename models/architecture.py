"""The one interface between a model family and the trainer and exporter.

The trainer (nicegan.trainer.loop) owns what every family shares: the loop, the data streams,
AMP, multi-process runs, Ctrl-C, resume, sample files and logs. An `Architecture` brings the
rest: the defaults and checks of its options, its learning-rate schedule, its networks and
training step (a `TrainingModel`), its checkpoint format and its translator for export. A new
family is one more implementation of these two classes, not another copy of the loop.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from nicegan.models import ARCHITECTURES, get_architecture
from nicegan.trainer.checkpoint import CheckpointError, read_checkpoint_file
from nicegan.trainer.data import UNPAIRED, DataLayout
from nicegan.trainer.options import flag
from nicegan.trainer.samples import LuminanceCheck
from nicegan.trainer.step import GanStep, GradSync

if TYPE_CHECKING:
    from nicegan.export.metadata import ModelInfo
    from nicegan.trainer.options import TrainOptions


@dataclass(frozen=True)
class DataSettings:
    """How an architecture's official loader reads the training images."""
    load_size: int                  # the square resize before the random crop
    resample: Image.Resampling      # the filter of that resize (and of the sample images)
    with_replacement: tuple[str, ...] = ()  # the domains drawn with replacement, not in shuffled passes
    layout: DataLayout = UNPAIRED   # the folders under DATA_ROOT and the streams they feed
    # The training transform (PIL image, generator -> tensor); None: flip, resize to load_size, crop.
    transform: Callable[..., torch.Tensor] | None = None
    test_count: int = 0             # test images of each stream the model needs, if more than --n-samples
    spread_test: bool = False       # take them evenly spaced over the sorted test folder, not the first ones


class Schedule(Protocol):
    """The learning rate of each 1-based step, as a pure function of the step (a resumed run
    never decays twice)."""
    iters: int

    def lr(self, step: int) -> float: ...

    def snapshot_epoch(self, step: int) -> int | None:
        """The epoch that `step` completes when the official code saves numbered files after it."""

    def describe(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


Batch = dict[str, torch.Tensor]  # one batch of each stream, by the layout's stream names ("A", "B")


class WarmStart(Protocol):
    """Steps that run before step 1 (NICE-GAN's --identity-init)."""
    name: str
    metric: str
    steps: int

    def step(self, batch: Batch, index: int) -> float: ...

    def finish(self, values: list[float]) -> str: ...


Sample = tuple[str, np.ndarray, LuminanceCheck]  # (direction "A2B" or "B2A", BGR grid, its brightness check)


class TrainingModel(ABC):
    """One run's networks, optimizers and step. `networks` maps checkpoint names to modules;
    `train_step(batch)` runs one iteration and returns its losses (`log_fields`)."""

    step: GanStep
    log_fields: tuple[str, ...]
    progress_fields: tuple[str, ...] = ("d_loss", "g_loss")  # shown on the progress bar, checked for divergence

    @property
    @abstractmethod
    def networks(self) -> dict[str, torch.nn.Module]: ...

    @abstractmethod
    def describe(self) -> str:
        """The architecture in one line, for the run's first line."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """What config.json records of the networks and optimizers."""

    @abstractmethod
    def checkpoint(self, step: int, train_state: dict[str, Any]) -> dict[str, Any]:
        """latest.pt's content."""

    @abstractmethod
    def load_checkpoint(self, ckpt: dict[str, Any], schedule: Schedule, options: TrainOptions) -> int:
        """Load a checkpoint that `Architecture.accept` read; returns the step the run continues after."""

    def write_official_files(self, run_dir: Path, label: str) -> None:
        """Files in the official code's own layout beside latest.pt (none when latest.pt is one)."""

    @abstractmethod
    def sample_grids(self, images: dict[str, torch.Tensor]) -> list[Sample]:
        """One grid per direction from the fixed test images of each domain (eval mode is set)."""

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One iteration on a batch of each domain; an unpaired A/B family's step takes them in order."""
        return self.step(batch["A"], batch["B"])

    def warm_start(self, options: TrainOptions) -> WarmStart | None:
        return None

    def attach_test_images(self, images: dict[str, torch.Tensor]) -> None:
        """The fixed test images of each stream (main process), for a family whose checkpoint needs
        more of them than its sample grids (TUNIT's pseudo-domain styles)."""

    def training_state(self) -> dict[str, Any]:
        """What the step keeps between iterations besides the networks and optimizers."""
        return self.step.scaler_state()

    def load_training_state(self, train_state: dict[str, Any]) -> None:
        self.step.load_scaler_state(train_state)

    # --- shared ---

    def to(self, device: torch.device, memory_format: torch.memory_format) -> None:
        for module in self.networks.values():
            module.to(device, memory_format=memory_format)

    def set_train(self, mode: bool) -> None:
        for module in self.networks.values():
            module.train(mode)

    def parameter_count(self) -> int:
        return sum(p.numel() for m in self.networks.values() for p in m.parameters())


class Architecture(ABC):
    """A model family, by name (`--arch`). Implementations: nicegan.models.*.architecture."""

    name: str
    title: str
    own_options: tuple[str, ...]  # the TrainOptions fields this architecture reads and some others do not
    default_batch_size: int = 1   # the official batch size (--batch-size 0)

    @abstractmethod
    def resolve_options(self, options: TrainOptions) -> TrainOptions:
        """Its defaults filled in (a 0 means the official value) and its options checked."""

    @abstractmethod
    def data_settings(self, options: TrainOptions) -> DataSettings: ...

    @abstractmethod
    def schedule(self, options: TrainOptions, iters_per_epoch: int) -> Schedule:
        """`iters_per_epoch`: the largest training stream's images in batches of all processes."""

    @abstractmethod
    def build(self, options: TrainOptions, device: torch.device, grad_sync: GradSync | None) -> TrainingModel: ...

    @abstractmethod
    def accept(self, path: Path, content: dict[str, Any] | None) -> dict[str, Any] | None:
        """The checkpoint at `path` (`content`: the file's dict, None for a folder) in this
        architecture's form, or None when it is not one of its formats."""

    @abstractmethod
    def checkpoint_options(self, ckpt: dict[str, Any], options: TrainOptions, explicit: set[str]) -> TrainOptions:
        """The options a resumed checkpoint's networks fix (its architecture wins, with a note)."""

    @abstractmethod
    def translator(self, ckpt: dict[str, Any], path: Path, direction: str,
                   default_img_size: int) -> tuple[torch.nn.Module, ModelInfo]:
        """The eval-mode float translator (NCHW RGB in [-1, 1] in and out) of one direction, and
        what it says about itself (source hash and scale are filled in by the exporter)."""

    def style_encoder(self, ckpt: dict[str, Any], path: Path) -> tuple[torch.nn.Module, int] | None:
        """A style-conditioned family's reference encoder (NCHW RGB in [-1, 1], resized to the returned
        square size -> the style code its translator takes); None for the others."""
        return None


def checkpoint_fixes(options: TrainOptions, architecture: dict[str, Any], fields: tuple[str, ...],
                     explicit: set[str]) -> TrainOptions:
    """`options` with the `fields` a resumed checkpoint's networks fix; a note names the given
    options that they override."""
    ignored = [f"{flag(k)} {getattr(options, k)}" for k in fields
               if k in explicit and getattr(options, k) != architecture[k]]
    if ignored:
        tqdm.write(f"note: {', '.join(ignored)} ignored: the resumed checkpoint's architecture is "
                   + ", ".join(f"{k}={architecture[k]}" for k in fields))
    return replace(options, **{k: architecture[k] for k in fields})


ACCEPTED = ("a NICE-GAN checkpoint (gen2B, gen2A, disA, disB: the official *_params_latest.pt or one written by "
            "`nicegan train`), a CycleGAN run's latest.pt or folder of official *_net_*.pth files, a CycleGAN "
            "ResNet generator state_dict, or a TUNIT run's latest.pt")


def read_any_checkpoint(path: str | os.PathLike) -> tuple[Architecture, dict[str, Any]]:
    """The architecture that reads `path` (a file, or a folder of official files) and its checkpoint."""
    path = Path(path)
    content = None if path.is_dir() else read_checkpoint_file(path)
    for name in ARCHITECTURES:
        architecture = get_architecture(name)
        ckpt = architecture.accept(path, content)
        if ckpt is not None:
            return architecture, ckpt
    found = "a folder" if content is None else f"keys {', '.join(sorted(map(str, content))[:6])}"
    raise CheckpointError(f"{path}: not a NICE-GAN checkpoint ({found}); expected {ACCEPTED}")
