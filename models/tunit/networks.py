"""TUNIT's three networks (Baek et al., ICCV 2021, "Rethinking the Truly Unsupervised Image-to-Image
Translation"; clovaai/tunit).

- `GuidingNet` is transcribed from the official `models/guidingNet.py` (MIT licence, Copyright (c)
  2020-present NAVER Corp.): VGG11 with BatchNorm, a global average pool, the clustering head
  `disc` (K pseudo-domain logits, trained by IIC) and the style head `cont` (the style code,
  trained by MoCo), under the official module and parameter names.
- `Generator` and `Discriminator` are written from the architecture's description (the paper and
  this project's reference notes), not from the official files, which are CC BY-NC-SA: the
  generator is FUNIT's content encoder and AdaIN decoder driven by a style MLP, the discriminator
  StarGAN v2's pre-activation residual network with one logit per pseudo-domain. Their module names
  are this project's own, so official weights do not load into them.

`ch` is the base width of all three (the official 64). At 256 px and more the official generator
halves it, and so does this one. At the official widths the parameter counts are those of the
official networks: C 9.30 M, G 27.3 M (its style MLP ends in the 4,992 AdaIN means and stds of
128 px), D 70.9 M (tests/test_tunit_networks.py counts them).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

# The official cfg['vgg11']: conv widths, "M" a 2x2 max pool (five of them: 32 px reach 1x1).
VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
RESIDUAL_SCALE = 0.1   # the generator's residual blocks add 0.1 x their residual
MLP_WIDTH = 256
MIN_IMG_SIZE = 32


@dataclass(frozen=True)
class TunitConfig:
    img_size: int = 128     # the training size; the translator runs at any multiple of size_multiple
    ch: int = 64            # base width of the three networks
    sty_dim: int = 128
    k: int = 10             # pseudo-domains

    @property
    def generator_ch(self) -> int:
        """The official generator width: ch, halved from 256 px on (nf 32 there)."""
        return self.ch if self.img_size < 256 else self.ch // 2

    @property
    def n_downs(self) -> int:
        """Downsamplings of the content encoder: the content of the official sizes is 16 x 16."""
        return int(math.log2(self.img_size // 16))

    @property
    def size_multiple(self) -> int:
        return 2 ** self.n_downs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TunitConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --- the guiding network (official, MIT) --------------------------------------------------------


def make_layers(widths: tuple[int | str, ...]) -> nn.Sequential:
    """The official `make_layers(cfg, batch_norm=True)`: conv3 + BatchNorm + ReLU, or a 2x2 max pool."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in widths:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=False)]
            in_channels = v
    return nn.Sequential(*layers)


def vgg11_widths(ch: int) -> tuple[int | str, ...]:
    return tuple(v if v == "M" else v * ch // 64 for v in VGG11)


class GuidingNet(nn.Module):
    """x (N, 3, H, W) in [-1, 1] -> the style code `cont` (N, sty_dim) and the K pseudo-domain logits
    `disc`. `moco` and `iic` each run the backbone, as the official training code calls them."""

    def __init__(self, k: int = 10, sty_dim: int = 128, ch: int = 64):
        super().__init__()
        self.features = make_layers(vgg11_widths(ch))
        width = 8 * ch
        self.disc = nn.Linear(width, k)
        self.cont = nn.Linear(width, sty_dim)
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.features(x), (1, 1)).flatten(1)

    def moco(self, x: torch.Tensor) -> torch.Tensor:
        return self.cont(self.pooled(x))

    def iic(self, x: torch.Tensor) -> torch.Tensor:
        return self.disc(self.pooled(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(style code, pseudo-domain logits) from one backbone pass."""
        flat = self.pooled(x)
        return self.cont(flat), self.disc(flat)


# --- the generator (from the description) -------------------------------------------------------


def kaiming_init(module: nn.Module) -> nn.Module:
    """He-normal (fan_in) weights for every convolution and linear layer, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def padded_conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """A convolution whose input is reflection-padded to keep the size (divided by the stride: a
    4x4 kernel at stride 2 halves it)."""
    return nn.Sequential(nn.ReflectionPad2d((kernel - 1) // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class AdaIN(nn.Module):
    """Adaptive instance normalisation: per-(image, channel) normalisation with the biased variance
    and eps 1e-5, then the style's std and mean, from `params` (N or 1, 2C): the C means, then the
    C stds. The normalisation is an InstanceNorm2d, so exports keep it in FP32 (export.fp16)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.norm = nn.InstanceNorm2d(channels, eps=1e-5)

    @property
    def param_count(self) -> int:
        return 2 * self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        mean, std = params[:, :self.channels], params[:, self.channels:]
        return self.norm(x) * std[:, :, None, None] + mean[:, :, None, None]


class ResBlock(nn.Module):
    """x + 0.1 * (conv3, norm, ReLU, conv3, norm): instance norms in the content encoder, AdaIN in
    the decoder (whose `params` hold both AdaINs' in order)."""

    def __init__(self, channels: int, adaptive: bool = False):
        super().__init__()
        self.adaptive = adaptive
        self.conv1 = padded_conv(channels, channels, 3)
        self.conv2 = padded_conv(channels, channels, 3)
        self.norm1 = AdaIN(channels) if adaptive else nn.InstanceNorm2d(channels)
        self.norm2 = AdaIN(channels) if adaptive else nn.InstanceNorm2d(channels)

    @property
    def param_count(self) -> int:
        return self.norm1.param_count + self.norm2.param_count if self.adaptive else 0

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        if self.adaptive:
            first, second = params[:, :self.norm1.param_count], params[:, self.norm1.param_count:]
            residual = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x), first))), second)
        else:
            residual = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return x + RESIDUAL_SCALE * residual


class ContentEncoder(nn.Module):
    """Conv7 (IN, ReLU), n_downs x conv4 stride 2 (IN, ReLU) doubling the width, two residual blocks."""

    def __init__(self, ch: int, n_downs: int):
        super().__init__()
        layers: list[nn.Module] = [padded_conv(3, ch, 7), nn.InstanceNorm2d(ch), nn.ReLU()]
        for _ in range(n_downs):
            layers += [padded_conv(ch, 2 * ch, 4, stride=2), nn.InstanceNorm2d(2 * ch), nn.ReLU()]
            ch *= 2
        layers += [ResBlock(ch), ResBlock(ch)]
        self.layers = nn.Sequential(*layers)
        self.out_channels = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UpBlock(nn.Module):
    """Nearest x2 upsampling, conv5 halving the width, AdaIN, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = padded_conv(channels, channels // 2, 5)
        self.norm = AdaIN(channels // 2)

    @property
    def param_count(self) -> int:
        return self.norm.param_count

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest")), params))


class Decoder(nn.Module):
    """Two AdaIN residual blocks, n_downs up-blocks, conv7 to RGB and tanh."""

    def __init__(self, channels: int, n_downs: int):
        super().__init__()
        self.blocks = nn.ModuleList([ResBlock(channels, adaptive=True), ResBlock(channels, adaptive=True)])
        self.ups = nn.ModuleList([UpBlock(channels // 2 ** i) for i in range(n_downs)])
        self.to_rgb = padded_conv(channels // 2 ** n_downs, 3, 7)

    @property
    def styled(self) -> list[nn.Module]:
        return [*self.blocks, *self.ups]

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.styled)

    def forward(self, content: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        x, start = content, 0
        for layer in self.styled:
            x = layer(x, params[:, start:start + layer.param_count])
            start += layer.param_count
        return torch.tanh(self.to_rgb(x))


class Generator(nn.Module):
    """G(x, s): the content of x decoded with the AdaIN parameters that the style MLP makes of s.
    `cnt_encoder` and `decode` are the two halves the official training code calls."""

    def __init__(self, config: TunitConfig):
        super().__init__()
        self.cnt_encoder = ContentEncoder(config.generator_ch, config.n_downs)
        self.decoder = Decoder(self.cnt_encoder.out_channels, config.n_downs)
        self.mlp = nn.Sequential(nn.Linear(config.sty_dim, MLP_WIDTH), nn.ReLU(),
                                 nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU(),
                                 nn.Linear(MLP_WIDTH, self.decoder.param_count))
        kaiming_init(self)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """`style` (N or 1, sty_dim): one style for the whole batch when it has one row."""
        params = self.mlp(style)
        return self.decoder(content, params.expand(content.shape[0], -1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.decode(self.cnt_encoder(x), style)


# --- the discriminator (from the description) ---------------------------------------------------


class FRN(nn.Module):
    """Filter response normalisation with a thresholded linear unit (Singh & Krishnan, CVPR 2020):
    max(gamma * x / sqrt(mean_hw(x^2) + eps) + beta, tau)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.tau = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + self.eps)
        return torch.max(self.gamma * x + self.beta, self.tau)


class ActFirstResBlock(nn.Module):
    """Pre-activation residual block: (shortcut + residual) / sqrt(2), the residual FRN, LeakyReLU,
    conv3 (and a 2x2 average pool when it downsamples), FRN, LeakyReLU, conv3 to the output width;
    the shortcut a bias-free 1x1 conv when the width changes, pooled when the block downsamples."""

    def __init__(self, c_in: int, c_out: int, downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        self.norm1, self.norm2 = FRN(c_in), FRN(c_in)
        self.conv1 = nn.Conv2d(c_in, c_in, 3, padding=1)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self._pool(self.conv1(F.leaky_relu(self.norm1(x), 0.2)))
        residual = self.conv2(F.leaky_relu(self.norm2(residual), 0.2))
        shortcut = self._pool(x if self.shortcut is None else self.shortcut(x))
        return (shortcut + residual) / math.sqrt(2)


class Discriminator(nn.Module):
    """D(x, y): the logit of pseudo-domain y[i] for image i (a multi-task discriminator), and all K
    logits. Conv3 to ch, log2(img_size) - 2 stages of a residual block and a downsampling one (the
    width doubles, at most 16 ch), LeakyReLU, a valid conv4 over the 4x4 map, LeakyReLU, conv1 to K."""

    def __init__(self, config: TunitConfig):
        super().__init__()
        ch, widest = config.ch, 16 * config.ch
        blocks: list[nn.Module] = [nn.Conv2d(3, ch, 3, padding=1)]
        for _ in range(int(math.log2(config.img_size)) - 2):
            out = min(2 * ch, widest)
            blocks += [ActFirstResBlock(ch, ch), ActFirstResBlock(ch, out, downsample=True)]
            ch = out
        self.body = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 4), nn.LeakyReLU(0.2), nn.Conv2d(ch, config.k, 1))
        kaiming_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.body(x)).flatten(1)
        return logits[torch.arange(logits.shape[0], device=logits.device), y], logits
