"""TUNIT's deployed path, the official inference (clovaai/tunit `validation/validation.py`): the
style s = C_EMA(x_ref, sty=True) of a reference, or a pseudo-domain's mean style, then
G.decode(G.cnt_encoder(x_src), s) with G_EMA (G before its average starts).

Two modules, two graphs when exported: the translator takes the frames and the style code (one code
for the whole batch, so a video keeps one style), the style encoder takes one reference. The
generator's AdaINs are instance norms scaled and shifted by the style MLP's output, exact and
without the training-mode BatchNorm that the official layer runs.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nicegan.models.tunit.networks import Generator, GuidingNet


class StyledTranslator(nn.Module):
    """(x (N, 3, H, W) in [-1, 1], style (1 or N, sty_dim)) -> the translation in [-1, 1]."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.gen = generator
        self.eval()   # the wrapper too: an exporter restores the mode it found, recursively

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.gen.decode(self.gen.cnt_encoder(x), style)


class StyleEncoder(nn.Module):
    """A reference (1, 3, S, S) in [-1, 1], resized to the training size -> its style code (1, sty_dim):
    the guiding network's backbone and style head, its BatchNorms in eval mode."""

    def __init__(self, guiding: GuidingNet):
        super().__init__()
        self.guiding = guiding
        self.eval()   # the wrapper too: torch.onnx.export restores the mode it found, recursively, and a
        # train-mode wrapper would put the BatchNorms back on batch statistics

    def forward(self, reference: torch.Tensor) -> torch.Tensor:
        return self.guiding.moco(reference)
