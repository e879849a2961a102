"""NICE-GAN networks with the official module and parameter names.

Every attribute name, registration order and tensor shape matches alpc91/NICE-GAN-pytorch
(`networks.py`), so official checkpoints load unchanged and ours load into the official code.
The maths is the official one, including its quirks that a trained model depends on:
unbiased variance in ILN/adaILN, softmax-parameterised rho, and the CAM attention using the
*raw* spectral-norm weight `fc.weight_orig`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from nicegan.models.latent import latent_or_zeros

NORM_EPS = 1e-5


def mix_instance_layer_norm(x: torch.Tensor, rho: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """The ILN/adaILN core: softmax(rho)-weighted mix of instance and layer normalisation.

    Variances are unbiased (N-1), as `torch.var` defaults to in the official code; trained
    weights depend on that, so a biased norm would not reproduce official outputs.
    """
    in_var, in_mean = torch.var_mean(x, dim=[2, 3], keepdim=True)
    ln_var, ln_mean = torch.var_mean(x, dim=[1, 2, 3], keepdim=True)
    out_in = (x - in_mean) / torch.sqrt(in_var + eps)
    out_ln = (x - ln_mean) / torch.sqrt(ln_var + eps)
    weights = torch.softmax(rho, dim=2)
    w_in = weights[:, :, 0].unsqueeze(2).unsqueeze(3)
    w_ln = weights[:, :, 1].unsqueeze(2).unsqueeze(3)
    return w_in * out_in + w_ln * out_ln


class adaILN(nn.Module):  # noqa: N801 - official class name
    """Adaptive ILN: gamma and beta come from the generator's MLP at run time."""

    def __init__(self, num_features: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.num_features = num_features
        self.rho = nn.Parameter(torch.empty(1, num_features, 2))
        with torch.no_grad():
            self.rho[:, :, 0].fill_(3.2)
            self.rho[:, :, 1].fill_(1.0)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = mix_instance_layer_norm(x, self.rho, self.eps)
        return out * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3)


class ILN(nn.Module):
    """Instance-Layer Normalisation with its own affine parameters."""

    def __init__(self, num_features: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.num_features = num_features
        self.rho = nn.Parameter(torch.empty(1, num_features, 2))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        with torch.no_grad():
            self.rho[:, :, 0].fill_(1.0)
            self.rho[:, :, 1].fill_(3.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mix_instance_layer_norm(x, self.rho, self.eps) * self.gamma + self.beta


class ResnetAdaILNBlock(nn.Module):
    def __init__(self, dim: int, use_bias: bool = False):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias)
        self.norm1 = adaILN(dim)
        self.relu1 = nn.ReLU(True)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=use_bias)
        self.norm2 = adaILN(dim)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return out + x


def _upsample_stage(channels: int) -> list[nn.Module]:
    """One x2 sub-pixel stage of UpBlock2: C -> C/2 channels at twice the resolution."""
    half = channels // 2
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(channels, half, kernel_size=3, stride=1, padding=0, bias=False),
        ILN(half),
        nn.ReLU(True),
        nn.Conv2d(half, half * 4, kernel_size=1, stride=1, bias=True),
        nn.PixelShuffle(2),
        ILN(half),
        nn.ReLU(True),
    ]


class ResnetGenerator(nn.Module):
    """NICE-GAN generator: decodes the encoder's z (B, 2*ngf, H/4, W/4) to an image in [-1, 1].

    `light` pools the feature map before the gamma/beta MLP (any input size); the full model
    flattens it, which ties the generator to `img_size`.

    `residual` (not in the official code, no extra parameters) adds the decoded image to the
    source image the encoder saw, clamped to [-1, 1]: the generator then decodes only the change,
    and the source's fine detail, which the encoder's 1/4-resolution z cannot carry, passes through.
    Its last conv starts at zero, so every residual path starts as the identity.

    `latent_dim` > 0 (MSGAN, not in the official code): a latent code enters the MLP that makes
    every adaILN's gamma and beta, as extra columns of `FC.0` (same keys, a wider weight, so the
    official code cannot load it). The code is global, like gamma and beta: it changes the look,
    not the layout. The columns keep PyTorch's default initialisation: zero columns would make
    every code give the same image, and the mode-seeking term 1 / (lz + 1e-5) start at 1e5.
    A latent generator also has `latent_regressor`, which reads the code back from the target
    domain's encoding of its output (`regress_latent`; trained by `--latent-regression` only).
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 6,
                 img_size: int = 256, light: bool = False, residual: bool = False, latent_dim: int = 0):
        super().__init__()
        self.input_nc = input_nc
        self.output_nc = output_nc
        self.ngf = ngf
        self.n_blocks = n_blocks
        self.img_size = img_size
        self.light = light
        self.residual = residual
        self.latent_dim = latent_dim
        width = ngf * 4
        fc_in = (width if light else (img_size // 4) * (img_size // 4) * width) + latent_dim
        # Registration order mirrors the official code so state_dict() lists keys identically.
        self.relu = nn.ReLU(True)
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(width, use_bias=False))
        self.FC = nn.Sequential(
            nn.Linear(fc_in, width, bias=False), nn.ReLU(True),
            nn.Linear(width, width, bias=False), nn.ReLU(True),
        )
        self.UpBlock0 = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width // 2, width, kernel_size=3, stride=1, padding=0, bias=True),
            ILN(width),
            nn.ReLU(True),
        )
        self.UpBlock2 = nn.Sequential(
            *_upsample_stage(width), *_upsample_stage(width // 2),
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, output_nc, kernel_size=7, stride=1, padding=0, bias=False),
            nn.Tanh(),
        )
        if residual:
            nn.init.zeros_(self.UpBlock2[-2].weight)
        if latent_dim:
            self.latent_regressor = nn.Linear(width // 2, latent_dim)

    def regress_latent(self, code: torch.Tensor) -> torch.Tensor:
        """The latent code read back from an encoder's code (B, 2*ngf, h, w) of this generator's output."""
        return self.latent_regressor(code.float().mean(dim=(2, 3)))

    def style(self, x: torch.Tensor, latent: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma, beta shared by every adaILN, from the UpBlock0 feature map (and the latent code)."""
        if self.light:
            pooled = F.adaptive_avg_pool2d(x, 1)
            features = pooled.view(pooled.shape[0], -1)
        else:
            features = x.reshape(x.shape[0], -1)
        if self.latent_dim:
            features = torch.cat([features, latent_or_zeros(latent, features, self.latent_dim)], 1)
        hidden = self.FC(features)
        return self.gamma(hidden), self.beta(hidden)

    def forward(self, z: torch.Tensor, source: torch.Tensor | None = None,
                latent: torch.Tensor | None = None) -> torch.Tensor:
        """The image for the encoder's code z; a residual generator needs the `source` image that z
        encodes; a latent generator takes its `latent` code ((1 or B, latent_dim); none: zeros)."""
        x = self.UpBlock0(z)
        gamma, beta = self.style(x, latent)
        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        decoded = self.UpBlock2(x)
        if not self.residual:
            return decoded
        if source is None:
            raise ValueError("a residual generator adds its output to the source image: pass source=")
        return torch.clamp(source + decoded, -1.0, 1.0)


def _sn_conv(in_ch: int, out_ch: int, stride: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=stride, padding=0, bias=bias))


def _down_block(in_ch: int, out_ch: int, stride: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), _sn_conv(in_ch, out_ch, stride), nn.LeakyReLU(0.2, True)]


class Discriminator(nn.Module):
    """NICE-GAN discriminator; its first part (`model` + CAM) is the domain's encoder.

    `forward` returns (local logit, global logit, cam logit, heatmap, z) like the official one.
    Spectral norm uses the legacy hook API so the state_dict keys are `weight_orig/_u/_v`.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 7):
        super().__init__()
        if n_layers < 6:
            raise ValueError(f"n_dis must be >= 6 (got {n_layers}): smaller heads do not fit the encoder")
        self.n_layers = n_layers
        self.lamda = nn.Parameter(torch.zeros(1))
        self.fc = spectral_norm(nn.Linear(ndf * 4, 1, bias=False))
        self.conv1x1 = nn.Conv2d(ndf * 4, ndf * 2, kernel_size=1, stride=1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        local_mult = 2 ** (n_layers - 5)
        self.conv0 = _sn_conv(ndf * local_mult * 2, 1, stride=1, bias=False)
        global_mult = 2 ** (n_layers - 3)
        self.conv1 = _sn_conv(ndf * global_mult * 2, 1, stride=1, bias=False)
        self.pad = nn.ReflectionPad2d(1)
        self.model = nn.Sequential(*_down_block(input_nc, ndf, 2), *_down_block(ndf, ndf * 2, 2))
        self.Dis0_0 = nn.Sequential(*[
            layer for i in range(2, n_layers - 4)
            for layer in _down_block(ndf * 2 ** (i - 1), ndf * 2 ** i, 2)
        ])
        self.Dis0_1 = nn.Sequential(*_down_block(ndf * local_mult, ndf * local_mult * 2, 1))
        self.Dis1_0 = nn.Sequential(*[
            layer for i in range(n_layers - 4, n_layers - 2)
            for layer in _down_block(ndf * 2 ** (i - 1), ndf * 2 ** i, 2)
        ])
        self.Dis1_1 = nn.Sequential(*_down_block(ndf * global_mult, ndf * global_mult * 2, 1))

    def cam_weight(self) -> torch.Tensor:
        """The CAM attention weight: the raw `fc.weight_orig`, never the normalised weight."""
        return self.fc.weight_orig

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder part only: returns (z, cam_logit, heatmap)."""
        x0 = self.model(x)
        gap = F.adaptive_avg_pool2d(x0, 1)
        gmp = F.adaptive_max_pool2d(x0, 1)
        cam_logit = self.fc(torch.cat([gap, gmp], 1).view(x0.shape[0], -1))
        attended = torch.cat([x0, x0], 1) * self.cam_weight().unsqueeze(2).unsqueeze(3)
        z = self.leaky_relu(self.lamda * self.conv1x1(attended) + x0)
        heatmap = torch.sum(z, dim=1, keepdim=True)
        return z, cam_logit, heatmap

    def forward(self, x: torch.Tensor):
        z, cam_logit, heatmap = self.encode(x)
        local = self.Dis0_0(z)
        glob = self.Dis1_1(self.Dis1_0(local))
        local = self.Dis0_1(local)
        out0 = self.conv0(self.pad(local))
        out1 = self.conv1(self.pad(glob))
        return out0, out1, cam_logit, heatmap, z
