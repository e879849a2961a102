"""FP16 graphs whose normalisations stay FP32 islands.

ILN/adaILN reduce over up to ~1 M values per sample and square deviations: in FP16 (x - mean)^2
overflows once |x - mean| > 256, so the variance becomes inf and the output NaN. Each norm is
wrapped so that it casts its inputs to float32 and its result back; in ONNX these are explicit
Cast nodes, which TensorRT 10+/11 strongly typed builds keep in FP32. The same wrapper is applied
to FP32 graphs, where it emits no Cast but gives every norm node a scope containing
`/fp32/`, so a weakly typed TensorRT 8.x build can pin those layers to FP32 by name.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from trainer.networks import ILN, adaILN

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


def _wrap_norms(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, NORM_TYPES):
            setattr(module, name, Float32Island(child))
        else:
            _wrap_norms(child)


def with_fp32_islands(module: nn.Module) -> nn.Module:
    """A copy of `module` with every normalisation layer wrapped in a Float32Island."""
    marked = copy.deepcopy(module).eval()
    _wrap_norms(marked)
    return marked


class HalfCompute(nn.Module):
    """float32 in -> FP16 body (norms in FP32) -> float32 out: the graph I/O stays float32."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.body = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.half()).float()


def to_half_with_fp32_norms(marked: nn.Module) -> HalfCompute:
    """Half weights everywhere except inside the Float32Islands; converts `marked` in place
    (it is already a copy) so the full model's 1 GB generator is not duplicated again."""
    half = marked.half()
    for island in half.modules():
        if isinstance(island, Float32Island):
            getattr(island, ISLAND_SCOPE).float()
    return HalfCompute(half).eval()


def count_islands(module: nn.Module) -> int:
    return sum(isinstance(m, Float32Island) for m in module.modules())
