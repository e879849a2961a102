"""CycleGAN's networks in the junyanz/pytorch-CycleGAN-and-pix2pix layout: the Johnson-style ResNet
generator (also vintagify's variant) and the PatchGAN discriminator, with the official
initialisation.

The modules reproduce junyanz's key layout (`model.N...`, residual blocks at `model.10...` with
`conv_block`), so the official `*_net_G_A.pth` files load with strict=True and ours load into the
official code; vintagify names the block `block` and uses affine InstanceNorm, both detected from
the state_dict. Normalisation is the official default, InstanceNorm without affine parameters or
running statistics, so every convolution has a bias and no file has norm keys.

A latent generator (MSGAN, `latent_dim` > 0, not official) has its code scale and shift the output
of every residual block's last InstanceNorm (`model.N.latent_style`, a bias-free Linear: the zero
code leaves the block as it is). The code cannot enter as input channels tiled over the image, as
BicycleGAN's U-Net takes it: here every convolution is followed by an InstanceNorm, a constant
channel convolved with reflection padding adds a constant to each output channel, and the norm
subtracts it again, so the output would not depend on the code at all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn as nn

from nicegan.models.latent import latent_or_zeros


@dataclass(frozen=True)
class CycleGANConfig:
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    n_blocks: int = 9
    affine_norm: bool = False
    use_dropout: bool = False
    latent_dim: int = 0


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, affine_norm: bool, use_dropout: bool, latent_dim: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True),
            nn.InstanceNorm2d(dim, affine=affine_norm), nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True),
                   nn.InstanceNorm2d(dim, affine=affine_norm)]
        self.conv_block = nn.Sequential(*layers)
        if latent_dim:
            self.latent_style = nn.Linear(latent_dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv_block(x)
        if self.latent_dim:
            scale, shift = self.latent_style(latent_or_zeros(latent, out, self.latent_dim)).chunk(2, dim=1)
            out = out * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return x + out


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
        layers += [ResnetBlock(ngf * 4, affine, config.use_dropout, config.latent_dim) for _ in range(config.n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * mult // 2, affine=affine), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, config.output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        """A latent generator's `latent` is (1 or B, latent_dim); none: the zero code."""
        if not self.config.latent_dim:
            return self.model(x)
        for layer in self.model:
            x = layer(x, latent) if isinstance(layer, ResnetBlock) else layer(x)
        return x


# --netG: the official names; the number is the residual blocks (the paper: 6 at 128 px, 9 at 256).
GENERATORS = ("resnet_9blocks", "resnet_6blocks")


def generator_blocks(net_g: str) -> int:
    return int(re.fullmatch(r"resnet_(\d+)blocks", net_g).group(1))


class NLayerDiscriminator(nn.Module):
    """The official PatchGAN (`--netD basic` is n_layers 3: each output sees a 70x70 patch): 4x4
    convolutions, stride 2 except the last two, InstanceNorm after all but the first and the last,
    LeakyReLU 0.2, no sigmoid (the GAN loss takes logits). 30x30 outputs at 256 px."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1, bias=True),
                       nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def smallest_patch_input(n_layers: int) -> int:
    """The smallest input a PatchGAN of `n_layers` maps to at least one output (24 px for 3)."""
    return 3 * 2 ** n_layers


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The official `init_weights(net, 'normal', 0.02)`: convolution (and linear) weights from
    N(0, gain), biases 0; the affine-free InstanceNorms have no parameters."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def discriminator_layout(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(ndf, n_layers) of a PatchGAN state_dict: its first conv's width, and its convs but two."""
    convs = [k for k, v in state.items() if re.fullmatch(r"model\.\d+\.weight", k) and v.ndim == 4]
    return int(state["model.0.weight"].shape[0]), len(convs) - 2


_BLOCK_KEY = re.compile(r"^model\.(\d+)\.(?:conv_block|block)\.")
_LATENT_KEY = re.compile(r"^model\.\d+\.latent_style\.weight$")


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
    styles = [v for k, v in state.items() if _LATENT_KEY.match(k)]
    return CycleGANConfig(
        input_nc=first.shape[1], output_nc=state[last_key].shape[0], ngf=first.shape[0],
        n_blocks=len(blocks), affine_norm="model.2.weight" in state,
        # conv_block.6 is the second conv with dropout, but the affine norm's weight without it.
        use_dropout=any(k.endswith("conv_block.6.weight") and v.ndim == 4 for k, v in state.items()),
        latent_dim=int(styles[0].shape[1]) if styles else 0,
    )


def load_cyclegan_generator(state: dict[str, torch.Tensor]) -> CycleGANGenerator:
    """Build a generator from a junyanz or vintagify state_dict, or a latent one of ours (strict loading)."""
    state = normalize_cyclegan_keys(state)
    net = CycleGANGenerator(infer_cyclegan_config(state))
    net.load_state_dict(state, strict=True)
    return net.eval()
