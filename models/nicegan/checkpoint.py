"""Checkpoints in the official NICE-GAN layout.

A checkpoint is a plain dict: `gen2B`, `gen2A`, `disA`, `disB` (state_dicts), `G_optimizer`,
`D_optimizer` (optimizer state_dicts) and `start_iter` (int), exactly as the official
`NICE.py` writes `*_params_latest.pt`. Ours add `config` (plain dict) and `train_state`
(schedule position, RNG state) and nothing else, so the official code loads them too.

Files are untrusted input: they are read with `torch.load(weights_only=True)`, which never
unpickles arbitrary objects (nicegan.trainer.checkpoint).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch

from nicegan.models.nicegan.networks import Discriminator, ResnetGenerator
from nicegan.trainer.checkpoint import CheckpointError, atomic_torch_save, read_checkpoint_file

NET_NAMES = ("gen2B", "gen2A", "disA", "disB")
# thop's profile() leaves these buffers behind; old official checkpoints carry them (NICE-GAN #4).
_PROFILER_KEYS = ("total_ops", "total_params")


@dataclass(frozen=True)
class NiceConfig:
    img_size: int = 256
    ch: int = 64
    n_res: int = 6
    n_dis: int = 7
    light: bool = True
    img_ch: int = 3
    residual: bool = False  # not in the official code (ResnetGenerator); official files store no config
    latent_dim: int = 0     # MSGAN's latent code (not in the official code either)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NiceConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class NiceNetworks:
    config: NiceConfig
    gen2B: ResnetGenerator
    gen2A: ResnetGenerator
    disA: Discriminator
    disB: Discriminator

    def as_dict(self) -> dict[str, torch.nn.Module]:
        return {name: getattr(self, name) for name in NET_NAMES}

    def encoder_and_generator(self, direction: str) -> tuple[Discriminator, ResnetGenerator]:
        """The deployed path: the source domain's discriminator-encoder and the generator."""
        if direction == "a2b":
            return self.disA, self.gen2B
        if direction == "b2a":
            return self.disB, self.gen2A
        raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")


def build_networks(config: NiceConfig) -> NiceNetworks:
    def generator() -> ResnetGenerator:
        return ResnetGenerator(config.img_ch, config.img_ch, config.ch, config.n_res, config.img_size, config.light,
                               config.residual, config.latent_dim)

    def discriminator() -> Discriminator:
        return Discriminator(config.img_ch, config.ch, config.n_dis)

    return NiceNetworks(config, generator(), generator(), discriminator(), discriminator())


def strip_profiler_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith(_PROFILER_KEYS)}


def infer_config(ckpt: dict[str, Any], default_img_size: int = 256) -> NiceConfig:
    """Recover the architecture from tensor shapes (official checkpoints store no config).

    A light generator's shapes do not depend on img_size; the stored `config` wins when
    present, else `default_img_size` (the official default, 256) is assumed. The latent size
    comes from the stored config (official files have none: 0).
    """
    gen, dis = ckpt["gen2B"], ckpt["disA"]
    last = gen["UpBlock2.17.weight"]
    img_ch, ch = int(last.shape[0]), int(last.shape[1])
    n_res = sum(1 for k in gen if k.startswith("UpBlock1_") and k.endswith(".conv1.weight"))
    global_out = int(dis["Dis1_1.1.weight_orig"].shape[0])
    n_dis = int(round(math.log2(global_out / ch))) + 2
    stored = ckpt.get("config") or {}
    latent_dim = int(stored.get("latent_dim", 0))
    fc_in = int(gen["FC.0.weight"].shape[1]) - latent_dim
    light = fc_in == ch * 4
    if light:
        img_size = int(stored.get("img_size", default_img_size))
    else:
        img_size = 4 * int(round(math.sqrt(fc_in / (ch * 4))))
    return NiceConfig(img_size=img_size, ch=ch, n_res=n_res, n_dis=n_dis, light=light, img_ch=img_ch,
                      residual=bool(stored.get("residual", False)), latent_dim=latent_dim)


def is_nice_checkpoint(ckpt: dict[str, Any]) -> bool:
    return all(name in ckpt for name in NET_NAMES)


def without_profiler_keys(ckpt: dict[str, Any]) -> dict[str, Any]:
    for name in NET_NAMES:
        ckpt[name] = strip_profiler_keys(ckpt[name])
    return ckpt


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict safely (weights_only) and check it has the official layout."""
    ckpt = read_checkpoint_file(path)
    missing = [n for n in NET_NAMES if n not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: not a NICE-GAN checkpoint (missing {', '.join(missing)}); "
            "expected the official *_params_latest.pt layout or one written by `nicegan train` (a CycleGAN "
            "run's networks alone are the latest_net_*.pth beside its latest.pt)")
    return without_profiler_keys(ckpt)


def networks_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike,
                             default_img_size: int = 256) -> NiceNetworks:
    """The checkpoint's networks (eval mode, CPU), the architecture inferred from its tensors."""
    config = infer_config(ckpt, default_img_size)
    nets = build_networks(config)
    for name, module in nets.as_dict().items():
        try:
            module.load_state_dict(ckpt[name], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: {name} does not match the inferred architecture {config}: "
                                  f"{str(exc).splitlines()[0][:300]}") from exc
        module.eval()
    return nets


def load_networks(path: str | os.PathLike, default_img_size: int = 256) -> tuple[NiceNetworks, dict[str, Any]]:
    """Networks (eval mode, CPU) and the raw checkpoint dict from an official or project file."""
    ckpt = read_checkpoint(path)
    return networks_from_checkpoint(ckpt, path, default_img_size), ckpt


def checkpoint_dict(nets: NiceNetworks, g_optimizer: torch.optim.Optimizer | None,
                    d_optimizer: torch.optim.Optimizer | None, step: int,
                    train_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The official layout plus `config` (and `train_state` when training)."""
    ckpt: dict[str, Any] = {name: module.state_dict() for name, module in nets.as_dict().items()}
    ckpt["G_optimizer"] = g_optimizer.state_dict() if g_optimizer is not None else {}
    ckpt["D_optimizer"] = d_optimizer.state_dict() if d_optimizer is not None else {}
    ckpt["start_iter"] = int(step)
    ckpt["config"] = nets.config.to_dict()
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def _refuse_overwrite(sources: Sequence[Path], output: Path) -> None:
    for source in sources:
        if output.resolve() == source.resolve():
            raise CheckpointError(f"{output}: is an input checkpoint; choose another output path")


def _write_slim(nets: NiceNetworks, step: int, output: Path, half: bool, extra_config: dict[str, Any]) -> Path:
    slim = checkpoint_dict(nets, None, None, step)
    slim["config"].update(extra_config)
    if half:
        for name in NET_NAMES:
            slim[name] = {key: value.half() if value.is_floating_point() else value
                          for key, value in slim[name].items()}
    atomic_torch_save(slim, output)
    return output


def slim_checkpoint(source: str | os.PathLike, output: str | os.PathLike, half: bool = True) -> Path:
    """The four networks of `source` without optimizer or training state, FP16 tensors if `half`
    (they load into FP32 networks unchanged: the official layout and `config` are kept)."""
    source, output = Path(source), Path(output)
    _refuse_overwrite([source], output)
    nets, ckpt = load_networks(source)
    return _write_slim(nets, int(ckpt.get("start_iter", 0)), output, half, {})


def reestimate_spectral_vectors(state: dict[str, torch.Tensor]) -> None:
    """Set every spectral-norm layer's `weight_u`/`weight_v` to the top singular pair of its
    `weight_orig`, what torch's one power-iteration step per training forward converges to, so that
    the eval-mode sigma = u.W.v is the weight's largest singular value. The sign follows the stored u."""
    for key in [k for k in state if k.endswith(".weight_orig")]:
        prefix = key[:-len("orig")]
        weight = state[key].double().reshape(state[key].shape[0], -1)
        left, _, right = torch.linalg.svd(weight, full_matrices=False)
        u, v = left[:, 0], right[0]
        if float(u @ state[prefix + "u"].double()) < 0:
            u, v = -u, -v
        state[prefix + "u"] = u.to(state[prefix + "u"].dtype)
        state[prefix + "v"] = v.to(state[prefix + "v"].dtype)


def average_checkpoints(sources: Sequence[str | os.PathLike], output: str | os.PathLike,
                        half: bool = True) -> tuple[Path, list[int]]:
    """One slim checkpoint whose weights are the mean of `sources` (snapshots of one run): Polyak
    averaging, which smooths out a GAN's step-to-step jitter. Returns the file and the averaged steps.

    Floating tensors are averaged one file at a time (a single file in memory besides the sum);
    integer buffers are the last file's; spectral-norm vectors are re-estimated for the mean weights.
    """
    sources, output = [Path(p) for p in sources], Path(output)
    if len(sources) < 2:
        raise CheckpointError("averaging needs at least two checkpoints (snapshots of one run); "
                              "for one file use `nicegan export pt` without averaging")
    _refuse_overwrite(sources, output)
    sums: dict[str, dict[str, torch.Tensor]] = {}
    steps, first = [], None
    for source in sources:
        nets, ckpt = load_networks(source)
        if first is None:
            first = (source, nets.config)
        elif nets.config != first[1]:
            raise CheckpointError(f"{source}: architecture {nets.config} differs from {first[0]}'s {first[1]}; "
                                  "average snapshots of one run only")
        steps.append(int(ckpt.get("start_iter", 0)))
        for name, module in nets.as_dict().items():
            total = sums.setdefault(name, {})
            for key, value in module.state_dict().items():
                if value.is_floating_point():
                    total[key] = total.get(key, 0) + value.double()
                else:
                    total[key] = value
    averaged = build_networks(first[1])
    for name, module in averaged.as_dict().items():
        state = {key: value / len(sources) if value.is_floating_point() else value
                 for key, value in sums[name].items()}
        reestimate_spectral_vectors(state)
        module.load_state_dict({key: value.to(torch.float32) if value.is_floating_point() else value
                                for key, value in state.items()})
        module.eval()
    return _write_slim(averaged, max(steps), output, half, {"averaged_steps": steps}), steps
