"""The export of a style model (TUNIT): its style baked into a one-input graph, or its style encoder
as a graph of its own beside the translator, whose second input then takes the style.

- `--reference REF`: the style of REF, computed by the checkpoint's encoder from the reference as
  the runtime reads it (runtime.styles.read_reference), baked as a constant;
- `--domain K`: pseudo-domain K's mean style, baked likewise;
- neither: `NAME.onnx` takes the frames and the style `z` (1, sty_dim); `NAME_style.onnx` takes a
  reference (1, 3, S, S) RGB in [-1, 1] and gives its style. The runtime runs it with OpenCV's DNN
  module, so its parity is checked there, against PyTorch.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn

from nicegan.common import AtomicOutput
from nicegan.export.metadata import INPUT_NAME, STYLE_NAME, ModelInfo
from nicegan.export.translator import FixedCode, load_style_encoder
from nicegan.runtime.styles import StyleGraph, domain_style, prepare_reference, read_reference

STYLE_TOLERANCE = 1e-4   # max |OpenCV - PyTorch| of a style code, relative to its largest value (at least 1)


def reference_label(reference: str) -> str:
    digest = hashlib.sha256(Path(reference).read_bytes()).hexdigest()[:12]
    return f"reference {Path(reference).name} (sha256 {digest})"


def baked_style(source: Path, info: ModelInfo, reference: str | None, domain: int | None) -> tuple[torch.Tensor, str]:
    """(style code (1, D), what it is) of --reference or --domain."""
    if reference is not None:
        encoder, size = load_style_encoder(source)
        with torch.no_grad():
            return encoder(torch.from_numpy(read_reference(reference, size))), reference_label(reference)
    return torch.from_numpy(domain_style(info, domain)), f"domain {domain} (its mean style)"


def bake(module: nn.Module, info: ModelInfo, source: Path, reference: str | None,
         domain: int | None) -> tuple[nn.Module, ModelInfo]:
    """A one-input translator with the chosen style, and what it says of itself."""
    code, label = baked_style(source, info, reference, domain)
    return FixedCode(module, code).eval(), replace(info, latent_dim=0, style=label, domain_styles="",
                                                   domain_counts="")


def parity_references(size: int) -> list[tuple[str, np.ndarray]]:
    """(name, reference) pairs: uniform noise and, with scikit-image, its photos as the runtime reads them."""
    rng = np.random.default_rng(0)
    sets = [("random reference", rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32))]
    try:
        from skimage import data
    except ImportError:
        return sets
    return sets + [(f"{name} reference", prepare_reference(getattr(data, name)(), size)) for name in ("coffee", "chelsea")]


def export_style_encoder(source: Path, output: Path, info: ModelInfo, opset: int, log: Callable[[str], None]) -> list:
    """Write the style encoder graph, checked by OpenCV's DNN module against PyTorch; the checks."""
    from nicegan.export.to_onnx import ParityCheck, _simplify, _torchscript_choice

    encoder, size = load_style_encoder(source)
    graph_info = replace(info, role="style-encoder", dynamic_hw=False, img_size=size, domain_styles="",
                         domain_counts="", style_encoder="")
    with AtomicOutput(output, fsync=True) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(encoder, (torch.zeros(1, 3, size, size),), str(tmp), opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[STYLE_NAME], do_constant_folding=True,
                              **_torchscript_choice())
        model, _ = _simplify(onnx.load(str(tmp)), log)
        onnx.helper.set_model_props(model, graph_info.to_metadata())
        model.doc_string = "nicegan TUNIT style encoder: input 'input' (1, 3, S, S) RGB [-1, 1], output 'style'"
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        graph = StyleGraph(Path(tmp))
        checks = []
        for name, reference in parity_references(size):
            with torch.no_grad():
                want = encoder(torch.from_numpy(reference)).numpy()
            diff = np.abs(graph(reference) - want)
            tolerance = STYLE_TOLERANCE * max(1.0, float(np.abs(want).max()))
            checks.append(ParityCheck(f"{name} (OpenCV DNN)", reference.shape, float(diff.max()), float(diff.mean()),
                                      tolerance))
            log(checks[-1].line())
        if not all(c.passed for c in checks):
            from nicegan.export.to_onnx import ExportError
            raise ExportError(f"{source}: the style encoder's OpenCV parity is out of tolerance; nothing written "
                              f"to {output}")
    log(f"wrote {output}: the style encoder ({size}x{size} references -> {info.latent_dim}-d styles)")
    return checks
