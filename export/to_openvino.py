"""ONNX -> OpenVINO IR (`.xml` + `.bin`): `nicegan export openvino`.

The runtime runs `.onnx` files with OpenVINO directly (compiled once, then cached), so IR is for
deployments that want OpenVINO's own format: it loads without the ONNX frontend, and
`--fp16-weights` halves the file (the CPU computes in the precision the runtime asks for either
way). The nicegan metadata travels in the IR's rt_info, where the runtime reads it for ONNX files
too. Both files are written atomically; the .bin lands before the .xml that names it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nicegan.common import AtomicOutput
from nicegan.errors import NiceganError, require


class OpenVINOExportError(NiceganError, ValueError):
    """An ONNX file that cannot become IR; the message names the file and the fix."""


@dataclass(frozen=True)
class IRExport:
    xml: Path
    bin: Path
    fp16_weights: bool


def default_ir_path(onnx_path: Path, fp16_weights: bool) -> Path:
    return onnx_path.with_name(f"{onnx_path.stem}{'_fp16w' if fp16_weights else ''}.xml")


def export_openvino(onnx_path: str | os.PathLike, output: str | os.PathLike | None = None, *,
                    fp16_weights: bool = False, log: Callable[[str], None] = print) -> IRExport:
    """Convert an exported ONNX model to OpenVINO IR beside it (or at `output`, a .xml path)."""
    ov = require("openvino", "nicegan export openvino", "install it with `pip install openvino`")
    source = Path(onnx_path)
    if not source.is_file():
        raise OpenVINOExportError(f"{source}: no such ONNX file; export one with `nicegan export onnx`")
    xml = Path(output) if output is not None else default_ir_path(source, fp16_weights)
    if xml.suffix.lower() != ".xml":
        raise OpenVINOExportError(f"{xml}: an IR model is a .xml file (its weights go to the .bin beside it)")
    from nicegan.runtime.backends.openvino_backend import shared_core
    try:
        model = shared_core().read_model(str(source))
    except RuntimeError as exc:
        raise OpenVINOExportError(f"{source}: OpenVINO cannot read it ({str(exc).strip().splitlines()[0][:160]}); "
                                  "re-export it with `nicegan export onnx`") from None
    if not model.has_rt_info(["framework", "nicegan.arch"]):
        log(f"note: {source} has no nicegan metadata; the runtime will infer the size policy from its input")
    weights = AtomicOutput(xml.with_suffix(".bin"), fsync=True)
    graph = AtomicOutput(xml, fsync=True)
    try:
        ov.save_model(model, str(graph.tmp), compress_to_fp16=fp16_weights)
        weights.adopt(graph.tmp.with_suffix(".bin"))
        weights.commit()
        graph.commit()
    except BaseException:
        graph.tmp.with_suffix(".bin").unlink(missing_ok=True)
        weights.discard()
        graph.discard()
        raise
    log(f"wrote {xml} and {xml.with_suffix('.bin').name} ({xml.with_suffix('.bin').stat().st_size / 2**20:.1f} MiB"
        f"{', FP16 weights' if fp16_weights else ''})")
    return IRExport(xml, xml.with_suffix(".bin"), fp16_weights)
