"""Checkpoint -> ONNX: export, checker, simplification, metadata, parity against PyTorch.

The opset follows the TensorRT target. TensorRT 8.5/8.6 (JetPack 5 / 6.0) parse opsets <= 17 and
read ReduceMean's axes only as an attribute, so an opset-18 graph would silently average over all
axes there; TensorRT 10+ takes opset 18-20. Both targets use the TorchScript exporter: it is the
only one in torch 2.13 that still writes opset 17, it needs no onnxscript, it exports in well
under a second, and its scope-based node names (`/translator/gen/UpBlock1_1/norm1/fp32/...`)
let a weakly typed TensorRT build find the normalisation layers to pin to FP32.
"""
from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx
import torch
import torch.nn as nn

from nicegan.common import AtomicOutput
from nicegan.errors import NiceganError
from nicegan.export.fp16 import count_islands, to_half_with_fp32_norms, with_fp32_islands
from nicegan.export.metadata import INPUT_NAME, LATENT_NAME, OUTPUT_NAME, ModelInfo
from nicegan.export.translator import SIZE_MULTIPLE, UInt8IO, load_translator

TARGET_OPSETS = {"trt8": (17, 13, 17), "trt10": (18, 17, 20)}   # default, min, max
IO_MODES = ("uint8", "float")
FP32_TOLERANCE = 1e-4          # max |diff| on [-1, 1] outputs, ONNX Runtime vs PyTorch fp32
FP16_TOLERANCE = 2e-2          # max |diff| of the FP16 graph vs the FP32 PyTorch reference
UINT8_LEVELS = {"fp32": 1, "fp16": 3}   # 2e-2 on [-1, 1] is 2.55 levels before rounding
MIN_SIZE = 16
TRACE_SIZE = 32
PROTOBUF_LIMIT = 2 ** 31 - 2 ** 26   # a single .onnx is one protobuf (< 2 GiB), keep headroom for the graph


class ExportError(NiceganError, ValueError):
    """An export that cannot be done or failed its checks; one line naming the fix."""


@dataclass(frozen=True)
class ParityCheck:
    """One input set run through ONNX Runtime and PyTorch."""
    name: str
    shape: tuple[int, ...]
    max_abs: float         # float io: on [-1, 1]; uint8 io: in pixel levels
    mean_abs: float
    tolerance: float
    nonfinite: int = 0
    unit: str = ""

    @property
    def passed(self) -> bool:
        return self.nonfinite == 0 and self.max_abs <= self.tolerance

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        extra = f", {self.nonfinite} NaN/Inf" if self.nonfinite else ""
        return (f"  {self.name:<26} {'x'.join(map(str, self.shape)):<14} max {self.max_abs:.3g}{self.unit} "
                f"mean {self.mean_abs:.3g}{self.unit} (tol {self.tolerance:g}{self.unit}{extra}) {verdict}")


@dataclass
class ExportReport:
    output: Path
    info: ModelInfo
    target: str
    opset: int
    exporter: str
    simplified: bool
    nodes: int
    islands: int
    checks: list[ParityCheck] = field(default_factory=list)
    norm_input_peak: float | None = None   # max |activation| entering a normalisation, PyTorch fp32

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        shape = "dynamic HxW" if self.info.dynamic_hw else f"{self.info.img_size}x{self.info.img_size}"
        # Only an FP16 graph has FP32 islands (its normalisations); in an FP32 graph everything is FP32.
        islands = f"{self.islands} FP32 norm islands, " if self.info.precision == "fp16" else ""
        return (f"{self.output}: {self.info.arch} {self.info.direction} {'light' if self.info.light else 'full'}, "
                f"io {self.info.io}, {self.info.precision}, {shape}, opset {self.opset} ({self.exporter}, "
                f"target {self.target}), {self.nodes} nodes, {islands}"
                f"{'simplified' if self.simplified else 'not simplified'}")


@dataclass(frozen=True)
class _Shapes:
    batch: int | None      # None: dynamic
    height: int | None
    width: int | None

    def trace_input(self) -> tuple[int, int, int]:
        """Batch, H, W the exporter traces with; small when dynamic, since torch's CPU FP16
        convolutions are slow (seconds per 64 px image for a 256-channel generator)."""
        return self.batch or 1, self.height or TRACE_SIZE, self.width or TRACE_SIZE

    def parity_size(self, info: ModelInfo) -> tuple[int, int]:
        return self.height or info.img_size, self.width or info.img_size


def _resolve_opset(target: str, opset: int | None) -> int:
    if target not in TARGET_OPSETS:
        raise ExportError(f"--target must be one of {', '.join(TARGET_OPSETS)}, got {target!r}")
    default, low, high = TARGET_OPSETS[target]
    opset = default if opset is None else opset
    if not low <= opset <= high:
        raise ExportError(f"--opset {opset} does not suit --target {target}: use {low}..{high} "
                          f"(TensorRT 8.5/8.6 parse opsets <= 17; TensorRT 10 takes 17..20)")
    return opset


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (value < MIN_SIZE or value % SIZE_MULTIPLE):
        raise ExportError(f"--{name} {value} is not a multiple of {SIZE_MULTIPLE} >= {MIN_SIZE}; "
                          f"pick e.g. {max(MIN_SIZE, value - value % SIZE_MULTIPLE)}")


def _check_options(batch: int | None, height: int | None, width: int | None, img_size: int) -> None:
    """Checks that need no checkpoint, so a typo fails before a 1 GB file is read."""
    if batch is not None and batch < 1:
        raise ExportError(f"--batch must be >= 1, got {batch}")
    for name, value in (("height", height), ("width", width), ("img-size", img_size)):
        _check_size(name, value)
    if (height is None) != (width is None):
        raise ExportError("give both --height and --width for a fixed size, or neither for dynamic H/W")
    if height != width:
        raise ExportError(f"fixed sizes must be square (got {height}x{width}); export with dynamic H/W "
                          "(the default) and fix the size in the TensorRT profile instead")


def _resolve_shapes(info: ModelInfo, source: Path, batch: int | None, height: int | None) -> tuple[_Shapes, ModelInfo]:
    """Full models are fixed at their training size; light ones are dynamic unless a size is given."""
    if not info.dynamic_hw:
        if height is not None and height != info.img_size:
            raise ExportError(f"{source}: a full (non-light) model only runs at its training size "
                              f"{info.img_size}x{info.img_size}; drop --height/--width or pass {info.img_size}")
        return _Shapes(batch, info.img_size, info.img_size), info
    if height is None:
        return _Shapes(batch, None, None), info
    return _Shapes(batch, height, height), replace(info, img_size=height, dynamic_hw=False)


def default_output_path(source: str | os.PathLike, label: str, io: str, fp16: bool, target: str) -> Path:
    """<checkpoint stem>_<label>[_float][_fp16][_trt8].onnx next to the checkpoint; the label is the
    direction, or a TUNIT model's style (export.styles.output_label)."""
    source = Path(source)
    parts = [source.stem, label]
    parts += ["float"] if io == "float" else []
    parts += ["fp16"] if fp16 else []
    parts += ["trt8"] if target == "trt8" else []
    return source.with_name("_".join(parts) + ".onnx")


def _check_fits_protobuf(module: nn.Module, source: Path, fp16: bool) -> None:
    size = sum(p.numel() for p in module.parameters()) * (2 if fp16 else 4)
    if size > PROTOBUF_LIMIT:
        hint = "" if fp16 else "export with --fp16, or "
        raise ExportError(f"{source}: {size / 2 ** 30:.1f} GiB of weights do not fit one ONNX file (2 GiB); "
                          f"{hint}train the light model (its MLP does not grow with img_size)")


def _export_module(module: nn.Module, io: str, fp16: bool) -> nn.Module:
    marked = with_fp32_islands(module)
    body = to_half_with_fp32_norms(marked) if fp16 else marked
    return (UInt8IO(body) if io == "uint8" else body).eval()


def _dynamic_axes(io: str, shapes: _Shapes) -> dict[str, dict[int, str]]:
    h_axis, w_axis = (1, 2) if io == "uint8" else (2, 3)
    axes = {} if shapes.batch is not None else {0: "batch"}
    if shapes.height is None:
        axes.update({h_axis: "height", w_axis: "width"})
    return {INPUT_NAME: axes, OUTPUT_NAME: dict(axes)}


def _example_inputs(io: str, latent_dim: int, batch: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """The frames, and a latent model's code: one (1, latent_dim) code for the whole batch, so every
    frame of a job gets the same look and a TensorRT profile needs no range for it."""
    frames = (torch.zeros(batch, height, width, 3, dtype=torch.uint8) if io == "uint8"
              else torch.zeros(batch, 3, height, width))
    return (frames, torch.zeros(1, latent_dim)) if latent_dim else (frames,)


def input_names(info: ModelInfo) -> list[str]:
    return [INPUT_NAME, LATENT_NAME] if info.latent_dim else [INPUT_NAME]


def _torchscript_choice() -> dict[str, bool]:
    """`dynamo=False` where torch has the argument; older torch (JetPack 5's 2.0/2.1) has only TorchScript."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _torchscript_export(module: nn.Module, examples: tuple[torch.Tensor, ...], names: list[str], path: Path,
                        opset: int, axes: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and its shape-inference details on every call.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(module, examples, str(path), opset_version=opset, input_names=names,
                              output_names=[OUTPUT_NAME], dynamic_axes=axes, do_constant_folding=True,
                              **_torchscript_choice())


def _simplify(model: onnx.ModelProto, log: Callable[[str], None]) -> tuple[onnx.ModelProto, bool]:
    try:
        import onnxsim
        # Keep the staged statistics staged (export.stable_norms): fusing the consecutive
        # ReduceMeans back into one long reduction is what costs the precision.
        simplified, ok = onnxsim.simplify(model, skipped_optimizers=["fuse_consecutive_reduce"])
    except Exception as exc:  # onnxsim raises many types (protobuf limits, shape inference, ORT)
        log(f"warning: onnxsim failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "keeping the unsimplified graph")
        return model, False
    if not ok:
        log("warning: onnxsim could not validate the simplified graph; keeping the unsimplified graph")
        return model, False
    return simplified, True


def _set_metadata(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Only the nicegan.* keys: onnxsim's own bookkeeping props run to kilobytes of node lists."""
    onnx.helper.set_model_props(model, info.to_metadata())
    model.doc_string = "nicegan translator: input 'input', output 'output'; see metadata nicegan.*"


def export_onnx(source: str | os.PathLike, output: str | os.PathLike | None = None, *, direction: str = "a2b",
                io: str = "uint8", target: str = "trt10", opset: int | None = None, fp16: bool = False,
                batch: int | None = None, height: int | None = None, width: int | None = None,
                simplify: bool = True, parity: bool = True, real_images: Sequence[str | os.PathLike] | None = None,
                default_img_size: int = 256, scale: int = 1, reference: str | None = None, domain: int | None = None,
                log: Callable[[str], None] = print) -> ExportReport:
    """Export a checkpoint's translator to ONNX; raises ExportError when a check fails.
    `scale` > 1 puts the bilinear enlargement and the area reduction around the network into the
    graph (export.translator.Rescaled), so every backend runs the network at that scale. A latent
    model's graph has a second input, LATENT_NAME (float32, 1 x latent_dim): its code, chosen at run
    time (`translate --seed`). A style model's (TUNIT's) takes its style there, and its style
    encoder goes to a graph of its own beside it; `reference` or `domain` bake one style instead
    (export.styles).

    The .onnx is written atomically, and only once onnx.checker and the parity checks passed.
    """
    from nicegan.export.parity import measure_parity  # ORT and image helpers load only when needed

    if io not in IO_MODES:
        raise ExportError(f"--io must be one of {', '.join(IO_MODES)}, got {io!r}")
    opset = _resolve_opset(target, opset)
    _check_options(batch, height, width, default_img_size)
    source = Path(source)
    module, info = load_translator(source, direction, default_img_size, scale)
    label = direction
    if reference is not None or domain is not None:
        module, info, label = _baked(module, info, source, reference, domain)
    shapes, info = _resolve_shapes(info, source, batch, height)
    info = replace(info, io=io, precision="fp16" if fp16 else "fp32")
    output = Path(output) if output is not None else default_output_path(
        source, "tunit" if info.code == "style" and label == direction else label, io, fp16, target)
    styled = info.code == "style" and info.latent_dim > 0
    if styled:
        info = replace(info, style_encoder=_style_graph_name(output))
    if output.resolve() == source.resolve():
        raise ExportError(f"{output}: the output would overwrite the checkpoint; pass another -o path")
    output.parent.mkdir(parents=True, exist_ok=True)

    _check_fits_protobuf(module, source, fp16)
    graph_module = _export_module(module, io, fp16)
    with AtomicOutput(output, fsync=True) as tmp:
        _torchscript_export(graph_module, _example_inputs(io, info.latent_dim, *shapes.trace_input()),
                            input_names(info), tmp, opset, _dynamic_axes(io, shapes))
        model = onnx.load(str(tmp))
        simplified = False
        if simplify:
            model, simplified = _simplify(model, log)
        _set_metadata(model, info)
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        report = ExportReport(output=output, info=info, target=target, opset=opset, exporter="torchscript",
                              simplified=simplified, nodes=len(model.graph.node),
                              islands=count_islands(graph_module))
        del model
        log(report.summary())
        if parity:
            measure_parity(report, tmp, module, shapes, real_images, log)
            if not report.passed:
                failed = [c.name for c in report.checks if not c.passed]
                raise ExportError(f"{source}: ONNX parity out of tolerance on {', '.join(failed)}; "
                                  f"nothing written to {output}")
        if styled:
            from nicegan.export.styles import export_style_encoder
            report.checks += export_style_encoder(source, output.with_name(info.style_encoder), info, opset, log)
    return report


def _style_graph_name(output: Path) -> str:
    return f"{output.stem}_style.onnx"


def _baked(module: nn.Module, info: ModelInfo, source: Path, reference: str | None,
           domain: int | None) -> tuple[nn.Module, ModelInfo, str]:
    """The translator with --reference's or --domain's style baked in, and the output name's label."""
    from nicegan.export.styles import bake
    from nicegan.runtime.backends.base import BackendError
    from nicegan.runtime.styles import refuse_style_options
    if reference is not None and domain is not None:
        raise ExportError("--reference and --domain each choose the baked style; pass one of them")
    try:
        refuse_style_options(info, reference, domain)
        module, info = bake(module, info, source, reference, domain)
    except BackendError as exc:
        raise ExportError(f"{source}: {exc}") from None
    return module, info, f"ref-{Path(reference).stem}" if reference is not None else f"domain{domain}"
