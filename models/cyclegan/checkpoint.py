"""CycleGAN checkpoints, both ways.

- `latest.pt` (ours): the state_dicts `G_A`, `G_B`, `D_A`, `D_B`, `G_optimizer`, `D_optimizer`,
  `start_iter`, `config` and `train_state` (both image pools, the RNG states, the data streams'
  positions, the loss scalers), so that a resumed run continues bit for bit, which the official
  code cannot do.
- Beside it, the official files `{label}_net_{G_A,G_B,D_A,D_B}.pth` (`latest`, and the epoch
  numbers every --save-epoch-freq epochs): each a plain CPU state_dict in the official key
  layout, which the official networks load with strict=True (its test.py, --continue_train).
- A folder of official files (`--resume DIR`): `DIR/latest_net_*.pth`, the networks only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from nicegan.models.cyclegan.networks import (
    CycleGANConfig,
    CycleGANGenerator,
    NLayerDiscriminator,
    discriminator_layout,
    generator_blocks,
    infer_cyclegan_config,
    init_weights,
    normalize_cyclegan_keys,
)
from nicegan.models.cyclegan.step import CycleGANNetworks
from nicegan.trainer.checkpoint import CheckpointError, atomic_torch_save, load_tensors

NET_NAMES = ("G_A", "G_B", "D_A", "D_B")
LATEST = "latest"


@dataclass(frozen=True)
class CycleGANNetConfig:
    net_g: str = "resnet_9blocks"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    img_size: int = 256  # the training crop (the networks run at any multiple of 4)
    latent_dim: int = 0  # MSGAN's code, which scales and shifts the generators' residual blocks (not official)

    def generator(self) -> CycleGANConfig:
        return CycleGANConfig(ngf=self.ngf, n_blocks=generator_blocks(self.net_g), latent_dim=self.latent_dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CycleGANNetConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_networks(config: CycleGANNetConfig) -> CycleGANNetworks:
    """Both generators and discriminators, initialised as the official code does (N(0, 0.02))."""
    def generator() -> CycleGANGenerator:
        return init_weights(CycleGANGenerator(config.generator()))

    def discriminator() -> NLayerDiscriminator:
        return init_weights(NLayerDiscriminator(3, config.ndf, config.n_layers_d))

    return CycleGANNetworks(generator(), generator(), discriminator(), discriminator())


def infer_net_config(ckpt: dict[str, Any], img_size: int) -> CycleGANNetConfig:
    """The architecture of a checkpoint's networks, from their tensors (official files store no config)."""
    generator = infer_cyclegan_config(ckpt["G_A"])
    ndf, n_layers = discriminator_layout(ckpt["D_A"])
    return CycleGANNetConfig(net_g=f"resnet_{generator.n_blocks}blocks", ngf=generator.ngf, ndf=ndf,
                             n_layers_d=n_layers, img_size=img_size, latent_dim=generator.latent_dim)


def official_file(folder: Path, label: str, name: str) -> Path:
    return folder / f"{label}_net_{name}.pth"


def write_official_files(nets: CycleGANNetworks, folder: Path, label: str) -> None:
    """What the official `save_networks(label)` writes: one CPU state_dict per network."""
    for name, module in nets.as_dict().items():
        state = {key: value.detach().cpu() for key, value in module.state_dict().items()}
        atomic_torch_save(state, official_file(folder, label, name))


def read_official_folder(folder: Path) -> dict[str, Any]:
    """The networks of `folder/latest_net_*.pth` (DataParallel prefixes and the InstanceNorm
    statistics of pre-0.4 files stripped, as the official loader does)."""
    missing = [official_file(folder, LATEST, name).name for name in NET_NAMES
               if not official_file(folder, LATEST, name).is_file()]
    if missing:
        raise CheckpointError(f"{folder}: no {', '.join(missing)}; --resume takes a run's latest.pt, or a folder of "
                              "the official code's latest_net_G_A/G_B/D_A/D_B.pth (checkpoints/NAME/)")
    ckpt: dict[str, Any] = {name: normalize_cyclegan_keys(load_tensors(official_file(folder, LATEST, name)))
                            for name in NET_NAMES}
    ckpt["official_files"] = str(folder)
    return ckpt


def checkpoint_dict(nets: CycleGANNetworks, config: CycleGANNetConfig, g_optimizer: torch.optim.Optimizer,
                    d_optimizer: torch.optim.Optimizer, step: int, train_state: dict[str, Any]) -> dict[str, Any]:
    ckpt: dict[str, Any] = {name: module.state_dict() for name, module in nets.as_dict().items()}
    ckpt.update(G_optimizer=g_optimizer.state_dict(), D_optimizer=d_optimizer.state_dict(), start_iter=int(step),
                config=config.to_dict(), train_state=train_state)
    return ckpt


def is_run_checkpoint(content: dict[str, Any]) -> bool:
    return all(name in content for name in NET_NAMES)
