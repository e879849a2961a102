"""CycleGAN ResNet generators (junyanz/pytorch-CycleGAN-and-pix2pix layout and vintagify's variant).

Users of the most common unpaired model can deploy it with the same export and runtime. The
module reproduces junyanz's `ResnetGenerator` key layout (`model.N...`, residual blocks at
`model.10...` with `conv_block`); vintagify names the block `block` and uses affine
InstanceNorm, both detected from the state_dict.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class CycleGANConfig:
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    n_blocks: int = 9
    affine_norm: bool = False
    use_dropout: bool = False


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, affine_norm: bool, use_dropout: bool):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True),
            nn.InstanceNorm2d(dim, affine=affine_norm), nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True),
                   nn.InstanceNorm2d(dim, affine=affine_norm)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class CycleGANGenerator(nn.Module):
    """RGB in [-1, 1] -> RGB in [-1, 1]; H and W should be multiples of 4."""

    def __init__(self, config: CycleGANConfig = CycleGANConfig()):
        super().__init__()
        self.config = config
        ngf, affine = config.ngf, config.affine_norm
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(config.input_nc, ngf, 7, padding=0, bias=True),
            nn.InstanceNorm2d(ngf, affine=affine), nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * mult * 2, affine=affine), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, affine, config.use_dropout) for _ in range(config.n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * mult // 2, affine=affine), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, config.output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


_BLOCK_KEY = re.compile(r"^model\.(\d+)\.(?:conv_block|block)\.")


def is_cyclegan_state_dict(state: dict) -> bool:
    return "model.1.weight" in state and any(_BLOCK_KEY.match(k) for k in state)


def normalize_cyclegan_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map vintagify's `block` to `conv_block`, strip DataParallel `module.` prefixes and the
    InstanceNorm running stats that pre-0.4 PyTorch saved (junyanz patches them out the same way)."""
    out = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key  # DataParallel
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        out[re.sub(r"\.block\.", ".conv_block.", key)] = value
    return out


def infer_cyclegan_config(state: dict[str, torch.Tensor]) -> CycleGANConfig:
    first = state["model.1.weight"]
    last_key = max((k for k in state if re.match(r"^model\.\d+\.weight$", k)),
                   key=lambda k: int(k.split(".")[1]))
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))}
    return CycleGANConfig(
        input_nc=first.shape[1], output_nc=state[last_key].shape[0], ngf=first.shape[0],
        n_blocks=len(blocks), affine_norm="model.2.weight" in state,
        # conv_block.6 is the second conv with dropout, but the affine norm's weight without it.
        use_dropout=any(k.endswith("conv_block.6.weight") and v.ndim == 4 for k, v in state.items()),
    )


def load_cyclegan_generator(state: dict[str, torch.Tensor]) -> CycleGANGenerator:
    """Build a generator from a junyanz or vintagify state_dict (strict loading)."""
    state = normalize_cyclegan_keys(state)
    net = CycleGANGenerator(infer_cyclegan_config(state))
    net.load_state_dict(state, strict=True)
    return net.eval()
