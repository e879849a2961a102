"""FP16 graphs whose normalisations stay FP32 islands.

ILN/adaILN reduce over up to ~1 M values per sample and square deviations: in FP16 (x - mean)^2
overflows once |x - mean| > 256, so the variance becomes inf and the output NaN. Each norm is
wrapped so that it casts its inputs to float32 and its result back; in ONNX these are explicit
Cast nodes, which TensorRT 10+/11 strongly typed builds keep in FP32. The same wrapper is applied
to FP32 graphs, where it emits no Cast but gives every norm node a scope containing
`/fp32/`, so a weakly typed TensorRT 8.x build can pin those layers to FP32 by name.
The light generator's gamma/beta MLP and the global average pool feeding it run in FP32 too.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from nicegan.export.stable_norms import staged
from nicegan.models.nicegan.networks import ILN, ResnetGenerator, adaILN

ISLAND_SCOPE = "fp32"   # attribute name of the wrapped norm: ONNX node names contain "/fp32/"
NORM_TYPES = (ILN, adaILN, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


class Float32Island(nn.Module):
    """Runs a normalisation (and its runtime gamma/beta) in float32, returns the caller's dtype."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        setattr(self, ISLAND_SCOPE, norm.float())

    def forward(self, x: torch.Tensor, *affine: torch.Tensor) -> torch.Tensor:
        norm = getattr(self, ISLAND_SCOPE)
        return norm(x.float(), *(t.float() for t in affine)).to(x.dtype)


class Fp32StyleGenerator(ResnetGenerator):
    """A light generator whose pooled gamma/beta MLP runs in FP32: at 1080p the global average
    pool sums ~130 k values per channel, more than FP16 accumulates safely. The MLP is tiny."""

    def style(self, x: torch.Tensor, latent: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        gamma, beta = super().style(x.float(), None if latent is None else latent.float())
        return gamma.to(x.dtype), beta.to(x.dtype)

    def style_layers(self) -> tuple[nn.Module, ...]:
        return self.FC, self.gamma, self.beta


def _wrap_norms(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, NORM_TYPES):
            setattr(module, name, Float32Island(staged(child)))
        else:
            _wrap_norms(child)


def with_fp32_islands(module: nn.Module) -> nn.Module:
    """A copy of `module` with every normalisation layer in its staged export form
    (export.stable_norms) wrapped in a Float32Island."""
    marked = copy.deepcopy(module).eval()
    _wrap_norms(marked)
    for sub in marked.modules():
        if type(sub) is ResnetGenerator and sub.light:
            # Same parameters and forward, only `style` changes; the full model's flattened MLP
            # (268 M weights) stays FP16, where TensorRT's GEMMs accumulate in FP32 anyway.
            sub.__class__ = Fp32StyleGenerator
    return marked


class HalfCompute(nn.Module):
    """float32 in -> FP16 body (norms in FP32) -> float32 out: the graph I/O (a latent code too) stays float32."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.body = module

    def forward(self, x: torch.Tensor, *latent: torch.Tensor) -> torch.Tensor:
        return self.body(x.half(), *(code.half() for code in latent)).float()


def to_half_with_fp32_norms(marked: nn.Module) -> HalfCompute:
    """Half weights everywhere except inside the Float32Islands; converts `marked` in place
    (it is already a copy) so the full model's 1 GB generator is not duplicated again."""
    half = marked.half()
    for sub in half.modules():
        if isinstance(sub, Float32Island):
            getattr(sub, ISLAND_SCOPE).float()
        elif isinstance(sub, Fp32StyleGenerator):
            for layer in sub.style_layers():
                layer.float()
    return HalfCompute(half).eval()


def count_islands(module: nn.Module) -> int:
    return sum(isinstance(m, Float32Island) for m in module.modules())
