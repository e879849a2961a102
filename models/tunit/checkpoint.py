"""TUNIT checkpoints (`latest.pt`): the five networks under the official names (C, C_EMA, G, G_EMA,
D), the three optimizers, the step, the configuration, and what the official checkpoint leaves out:
the MoCo queue and the RNG states (in `train_state`, so a resumed run continues bit for bit) and
each pseudo-domain's mean style over the test images (for `--domain K`).

The official `model_{epoch}.ckpt` is not written: the generator and discriminator here are not
the official modules (their licence keeps them out, nicegan.models.tunit.networks), so their
weights would not load into the official code anyway.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nicegan.models.tunit.networks import Discriminator, Generator, GuidingNet, TunitConfig
from nicegan.models.tunit.step import TunitNetworks
from nicegan.trainer.checkpoint import CheckpointError

NET_NAMES = ("C", "C_EMA", "G", "G_EMA", "D")
OPTIMIZER_KEYS = ("C_optimizer", "G_optimizer", "D_optimizer")


def build_networks(config: TunitConfig) -> TunitNetworks:
    """C_EMA starts as a copy of C (officially), G_EMA as a generator of its own (copied from G when
    its average starts)."""
    guiding = GuidingNet(config.k, config.sty_dim, config.ch)
    guiding_ema = GuidingNet(config.k, config.sty_dim, config.ch)
    guiding_ema.load_state_dict(guiding.state_dict())
    return TunitNetworks(guiding, guiding_ema, Generator(config), Generator(config), Discriminator(config))


def checkpoint_dict(nets: TunitNetworks, config: TunitConfig, optimizers: tuple[torch.optim.Optimizer, ...],
                    step: int, train_state: dict[str, Any], deployed: str,
                    domain_styles: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, Any]:
    """`deployed`: the generator that translates (G_EMA once it averages, G before)."""
    ckpt: dict[str, Any] = {name: module.state_dict() for name, module in nets.as_dict().items()}
    ckpt.update({key: optimizer.state_dict() for key, optimizer in zip(OPTIMIZER_KEYS, optimizers)})
    ckpt.update(start_iter=int(step), config={"arch": "tunit", **config.to_dict()}, train_state=train_state,
                deployed_generator=deployed)
    if domain_styles is not None:
        ckpt["domain_styles"], ckpt["domain_counts"] = (t.detach().cpu() for t in domain_styles)
    return ckpt


def is_tunit_checkpoint(content: dict[str, Any]) -> bool:
    return all(name in content for name in NET_NAMES)


def checkpoint_config(ckpt: dict[str, Any]) -> TunitConfig:
    """The networks' configuration: the recorded one, its sizes checked against the tensors."""
    config = TunitConfig.from_dict(ckpt.get("config") or {})
    guiding = ckpt["C"]
    return TunitConfig(img_size=config.img_size, ch=int(guiding["features.0.weight"].shape[0]),
                       sty_dim=int(guiding["cont.weight"].shape[0]), k=int(guiding["disc.weight"].shape[0]))


def load_networks(ckpt: dict[str, Any], path: Path, names: tuple[str, ...] = NET_NAMES) -> dict[str, torch.nn.Module]:
    """The checkpoint's networks (strict loading), eval mode; CheckpointError when they do not load."""
    config = checkpoint_config(ckpt)
    makers = {"C": lambda: GuidingNet(config.k, config.sty_dim, config.ch), "D": lambda: Discriminator(config),
              "G": lambda: Generator(config)}
    modules = {}
    for name in names:
        module = makers[name.replace("_EMA", "")]()
        try:
            module.load_state_dict(ckpt[name])
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(f"{path}: its {name} does not load into a TUNIT network of {config} "
                                  f"({str(exc).splitlines()[0][:160]}); pass a latest.pt of `nicegan train --arch "
                                  "tunit`") from None
        modules[name] = module.eval()
    return modules
