"""`nicegan info MODEL`: what a model file says about itself and what would run it."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from nicegan.errors import require
from nicegan.export.metadata import ModelInfo, model_info_from_onnx
from nicegan.runtime.backends import BackendError, choose_backend


def describe_model(model_path: str | os.PathLike, backend: str = "auto", device: str | None = None) -> list[str]:
    """Lines for the user: backend and device that would run it, metadata, I/O, size policy."""
    path = Path(model_path)
    kind, why = choose_backend(path, backend, device)
    info, io_lines, device = _DESCRIBERS[kind](path, device)
    lines = [f"model: {path} ({path.stat().st_size / 1e6:.1f} MB)",
             f"backend: {kind} ({why}), device: {device}",
             "metadata:"]
    lines += [f"  {key}: {_shown(key, value, info)}" for key, value in asdict(info).items() if value != ""]
    lines.append("I/O:")
    lines += [f"  {line}" for line in io_lines]
    lines.append("sizes: " + (f"any H, W (padded by reflection to a multiple of {info.size_multiple})"
                              if info.dynamic_hw else f"fixed {info.img_size}x{info.img_size}; frames resized to it and back"))
    lines.append(_code_line(info))
    return lines


def _shown(key: str, value: object, info: ModelInfo) -> object:
    """A metadata value as `nicegan info` prints it: the mean styles by their shape, not their bytes."""
    return f"{info.domains} x {info.latent_dim} float32" if key == "domain_styles" else value


def _code_line(info: ModelInfo) -> str:
    """What the model's second input is, and how a job chooses it."""
    if info.role == "style-encoder":
        return f"style encoder: a {info.img_size}x{info.img_size} reference -> its {info.latent_dim}-d style"
    if info.latent_dim and info.code == "style":
        return (f"style: {info.latent_dim}-d code, one per job: translate --reference IMG (encoder "
                f"{info.style_encoder or 'in the checkpoint'}) or --domain 0..{info.domains - 1}")
    if info.latent_dim:
        return f"latent: {info.latent_dim}-d code, one look per seed (translate --seed S, --samples K)"
    if info.style:
        return f"style: baked in, {info.style}"
    return "latent: none (one translation per image)"


def model_info(model_path: str | os.PathLike, backend: str = "auto", device: str | None = None) -> ModelInfo:
    """What a model file says about itself, without opening a backend for it."""
    path = Path(model_path)
    kind, _ = choose_backend(path, backend, device)
    return _DESCRIBERS[kind](path, device)[0]


def _onnx(path: Path) -> tuple[ModelInfo, list[str]]:
    onnx = require("onnx", f"reading {path}", "install it with `pip install onnx`")
    try:
        model = onnx.load(str(path), load_external_data=False)
        graph_input = model.graph.input[0]
    except Exception as exc:  # protobuf's DecodeError, or a model without inputs
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"{path}: not a readable ONNX model ({first}); re-export it with "
                           "`nicegan export onnx`") from None
    dims = [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    uint8 = graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    height, width = dims[1:3] if uint8 else dims[2:4]
    info = model_info_from_onnx({p.key: p.value for p in model.metadata_props}, uint8, height, width)
    io_lines = [f"{direction} {value.name}: {_onnx_type(value)}"
                for direction, values in (("input", model.graph.input), ("output", model.graph.output))
                for value in values]
    io_lines.append(f"opset {model.opset_import[0].version}, IR {model.ir_version}, producer {model.producer_name}")
    return info, io_lines


def _openvino_ir(path: Path) -> tuple[ModelInfo, list[str]]:
    from nicegan.runtime.backends.openvino_backend import read_model_info
    info, model = read_model_info(path)
    io_lines = [f"{kind} {port.get_any_name()}: {port.get_element_type().get_type_name()} {port.get_partial_shape()}"
                for kind, ports in (("input", model.inputs), ("output", model.outputs)) for port in ports]
    return info, io_lines


def _openvino_device(device: str | None) -> str:
    from nicegan.runtime.backends.openvino_backend import describe_device
    return describe_device(device)


def _onnxruntime_device() -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "none: ONNX Runtime is not installed (pip install onnxruntime)"
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    return "CUDA (ONNX Runtime CUDA provider)" if cuda else f"CPU ({os.cpu_count()} cores)"


def _onnx_type(value) -> str:
    import onnx
    tensor = value.type.tensor_type
    dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    return f"{onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)} [{', '.join(dims)}]"


def _torch(path: Path, device: str | None) -> tuple[ModelInfo, list[str], str]:
    torch = require("torch", f"reading the checkpoint {path}", "install it with `pip install torch`")
    from nicegan.export.translator import load_translator
    module, info = load_translator(path)
    params = sum(p.numel() for p in module.parameters())
    code = f" and a {info.code} code (1, {info.latent_dim})" if info.latent_dim else ""
    # A style model has one generator for every pseudo-domain, so no direction to name.
    shown = "" if info.code == "style" and info.latent_dim else " (direction a2b shown)"
    io_lines = [f"checkpoint: float32 NCHW RGB in [-1, 1]{code}, {params / 1e6:.2f} M parameters{shown}",
                "the runtime feeds uint8 NHWC BGR frames through the same casts as the exported uint8 graph"]
    device = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else \
        f"CPU ({torch.get_num_threads()} threads)"
    return info, io_lines, device


def _tensorrt(path: Path, device: str | None) -> tuple[ModelInfo, list[str], str]:
    from nicegan.export.to_tensorrt import model_info_from_sidecar, read_sidecar
    sidecar = read_sidecar(path)
    built = sidecar["tensorrt"]
    io_lines = [f"{key}: {value}" for key, value in built.items()]
    return model_info_from_sidecar(sidecar), io_lines, f"GPU 0 (engine built for {built.get('gpu', '?')})"


def _onnxruntime(path: Path, device: str | None) -> tuple[ModelInfo, list[str], str]:
    return (*_onnx(path), _onnxruntime_device())


def _openvino(path: Path, device: str | None) -> tuple[ModelInfo, list[str], str]:
    return (*(_openvino_ir(path) if path.suffix.lower() == ".xml" else _onnx(path)), _openvino_device(device))


_DESCRIBERS = {"onnxruntime": _onnxruntime, "openvino": _openvino, "torch": _torch, "tensorrt": _tensorrt}
