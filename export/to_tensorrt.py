"""Build an FP16 TensorRT engine from an exported ONNX model, on the machine that will run it.

Two FP16 recipes, chosen by what the installed TensorRT offers (detected by name, never by enum
numbers or version strings alone):
- strongly typed (TensorRT 10+, the only mode in 11): precision follows the ONNX, so it needs the
  FP16 graph of `nicegan export onnx --fp16`, whose normalisations are explicit FP32 islands;
- weakly typed (TensorRT 8.x, optionally 10.0-10.11): the FP16 builder flag, with the layers that
  compute normalisation statistics pinned to FP32 and OBEY_PRECISION_CONSTRAINTS.

Every TensorRT name this module and the TensorRT backend touch is declared in REQUIRED_API /
OPTIONAL_API; tests check those tables against the real bindings of 8.6, 10.x and 11.x.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import onnx

from nicegan.common import file_sha256, write_bytes_atomic, write_text_atomic
from nicegan.errors import NiceganError
from nicegan.export.metadata import LATENT_NAME, ModelInfo

INSTALL_HINT = ("install it with `pip install 'nicegan[tensorrt]'` (x86_64/SBSA), or on Jetson use JetPack's "
                "`sudo apt install python3-libnvinfer` in a venv created with --system-site-packages")
PYCUDA_HINT = ("install it with `pip install pycuda` (it builds from source: the CUDA toolkit's nvcc must be on "
               "PATH, e.g. PATH=/usr/local/cuda/bin:$PATH on Jetson); see docs/DEPLOY.md")

# Names touched on every supported version: "module" is the tensorrt package itself.
REQUIRED_API: dict[str, tuple[str, ...]] = {
    "module": ("__version__", "Logger", "Builder", "OnnxParser", "Runtime", "init_libnvinfer_plugins", "nptype",
               "NetworkDefinitionCreationFlag", "BuilderFlag", "MemoryPoolType", "DeviceType", "DataType",
               "ProfilingVerbosity",
               "LayerType", "TensorIOMode", "IBuilderConfig", "ILayer", "ITensor", "INetworkDefinition",
               "IOptimizationProfile", "ITimingCache", "ICudaEngine", "IExecutionContext"),
    "Logger": ("WARNING",),
    "Builder": ("create_network", "create_builder_config", "create_optimization_profile",
                "build_serialized_network", "num_DLA_cores"),
    "INetworkDefinition": ("num_layers", "get_layer", "num_inputs", "get_input", "num_outputs", "get_output"),
    "ILayer": ("name", "type", "num_inputs", "get_input", "num_outputs", "get_output"),
    "ITensor": ("name", "dtype", "shape"),
    "OnnxParser": ("parse_from_file", "num_errors", "get_error"),
    "IBuilderConfig": ("set_memory_pool_limit", "add_optimization_profile", "create_timing_cache",
                       "set_timing_cache", "get_timing_cache", "set_flag", "default_device_type", "DLA_core",
                       "profiling_verbosity"),
    "IOptimizationProfile": ("set_shape",),
    "ITimingCache": ("serialize",),
    "MemoryPoolType": ("WORKSPACE",),
    "BuilderFlag": ("GPU_FALLBACK",),
    "DeviceType": ("DLA",),
    "ProfilingVerbosity": ("DETAILED",),
    "DataType": ("FLOAT", "HALF", "UINT8"),
    "LayerType": ("ELEMENTWISE", "REDUCE", "UNARY", "SOFTMAX", "NORMALIZATION"),
    "TensorIOMode": ("INPUT", "OUTPUT"),
    "Runtime": ("deserialize_cuda_engine",),
    "ICudaEngine": ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype",
                    "get_tensor_shape", "get_tensor_profile_shape", "create_execution_context"),
    "IExecutionContext": ("set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3"),
}

# Names whose presence decides a code path (feature detection); absent on some versions.
OPTIONAL_API: dict[str, tuple[str, ...]] = {
    "NetworkDefinitionCreationFlag": ("EXPLICIT_BATCH", "STRONGLY_TYPED"),
    "BuilderFlag": ("FP16", "OBEY_PRECISION_CONSTRAINTS"),
    "ILayer": ("precision", "set_output_type"),
    "Builder": ("max_batch_size",),
    "IBuilderConfig": ("builder_optimization_level",),
}

# Normalisation layers are found by name: `nicegan export onnx` wraps every norm in a module named
# `fp32`, so TensorRT layer names (= ONNX node names) contain `/fp32/`; the legacy exporter alone
# would name an ILN inside nn.Sequential only by its index (`/UpBlock2/UpBlock2.3/...`). For ONNX
# files without such names (other exporters), the layer types that compute norm statistics
# (means, squared deviations, sqrt, divisions) are pinned instead.
FP32_SCOPE = re.compile(r"(^|/)(fp32|norm\d*|ILN|adaILN)(/|$)|InstanceNormalization|LayerNormalization")
FP32_LAYER_TYPES = ("REDUCE", "NORMALIZATION", "ELEMENTWISE", "UNARY", "SOFTMAX")

STRONG, WEAK = "strongly-typed", "weakly-typed"


class TensorRTError(NiceganError, RuntimeError):
    """A TensorRT build or load problem; the message says what to do."""


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:  # also raised when only the bindings, not the native libraries, exist
        raise TensorRTError(f"TensorRT is not available ({exc}); {INSTALL_HINT}") from None
    return trt


# --- feature detection ---------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    version: str
    implicit_batch_exists: bool      # 8.x: ONNX parsing needs EXPLICIT_BATCH
    strongly_typed: bool             # 10.0+
    weak_fp16: bool                  # FP16 flag + per-layer precision + OBEY (gone in 11)
    optimization_level: bool         # 8.6+


def _has_member(enum: Any, name: str) -> bool:
    return name in getattr(enum, "__members__", {})


def detect_capabilities(trt: Any) -> Capabilities:
    return Capabilities(
        version=str(trt.__version__),
        implicit_batch_exists=hasattr(trt.Builder, "max_batch_size")
        and _has_member(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"),
        strongly_typed=_has_member(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
        weak_fp16=_has_member(trt.BuilderFlag, "FP16") and _has_member(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS")
        and hasattr(trt.ILayer, "precision") and hasattr(trt.ILayer, "set_output_type"),
        optimization_level=hasattr(trt.IBuilderConfig, "builder_optimization_level"),
    )


def choose_recipe(caps: Capabilities, onnx_path: str | os.PathLike, onnx_is_fp16: bool, requested: str = "auto") -> str:
    """STRONG wherever TensorRT has strong typing (10+, 11), WEAK on 8.x or when asked for on 10.0-10.11."""
    if requested == "weak" or (requested == "auto" and not caps.strongly_typed):
        if not caps.weak_fp16:
            raise TensorRTError(f"TensorRT {caps.version} has no weakly typed FP16 (removed in 11): "
                                f"use --recipe strong with an FP16 ONNX (`nicegan export onnx --fp16`)")
        return WEAK
    if not caps.strongly_typed:
        raise TensorRTError(f"TensorRT {caps.version} has no strongly typed networks (10.0+): use --recipe weak")
    if not onnx_is_fp16:
        alternative = " or build with --recipe weak (deprecated since 10.12)" if caps.weak_fp16 else ""
        raise TensorRTError(
            f"{onnx_path} is an FP32 ONNX: a strongly typed TensorRT {caps.version} build keeps the ONNX's "
            f"precision and would give an FP32 engine; export it with `nicegan export onnx --fp16`{alternative}")
    return STRONG


def network_flags(trt: Any, caps: Capabilities, recipe: str) -> int:
    """Creation flags from the enum by name: STRONGLY_TYPED is 1 in 10.x and 0 in 11.x."""
    members = trt.NetworkDefinitionCreationFlag.__members__
    flags = 0
    if caps.implicit_batch_exists:
        flags |= 1 << int(members["EXPLICIT_BATCH"])
    if recipe == STRONG:
        flags |= 1 << int(members["STRONGLY_TYPED"])
    return flags


# --- optimisation profile ------------------------------------------------------------------


@dataclass(frozen=True)
class DimRange:
    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str | int) -> "DimRange":
        """'256' (static) or 'MIN:OPT:MAX'."""
        try:
            values = [int(p) for p in str(text).split(":")]
        except ValueError:
            raise TensorRTError(f"bad range {text!r}: use N or MIN:OPT:MAX") from None
        if len(values) == 1:
            values *= 3
        if len(values) != 3 or not 0 < values[0] <= values[1] <= values[2]:
            raise TensorRTError(f"bad range {text!r}: need 0 < MIN <= OPT <= MAX")
        return cls(*values)

    @property
    def static(self) -> bool:
        return self.min == self.max

    def __str__(self) -> str:
        return str(self.min) if self.static else f"{self.min}:{self.opt}:{self.max}"


# Batch 1..4 (opt 2) with H/W up to 1088x1920 covers image folders and 1080p video from one engine;
# TensorRT sizes the context's memory for the max shape, so a wider batch range at 1080p would
# cost gigabytes on 8 GB Jetsons. Static ranges (--batch 16 --height 256 --width 256) are fastest.
DEFAULT_BATCH = DimRange(1, 2, 4)
DEFAULT_MAX_HEIGHT, DEFAULT_MAX_WIDTH, MIN_SIDE = 1088, 1920, 64


def profile_shapes(info: ModelInfo, batch: DimRange, height: DimRange | None,
                   width: DimRange | None) -> dict[str, tuple[int, ...]]:
    """min/opt/max input shapes in the graph's layout (uint8: NHWC, float: NCHW)."""
    if info.dynamic_hw:
        height = height or DimRange(MIN_SIDE, info.img_size, max(DEFAULT_MAX_HEIGHT, info.img_size))
        width = width or DimRange(MIN_SIDE, info.img_size, max(DEFAULT_MAX_WIDTH, info.img_size))
        for axis, rng in (("height", height), ("width", width)):
            if any(v % info.size_multiple for v in (rng.min, rng.opt, rng.max)):
                raise TensorRTError(f"--{axis} {rng}: every value must be a multiple of {info.size_multiple}")
    else:
        fixed = DimRange(info.img_size, info.img_size, info.img_size)
        for axis, rng in (("height", height), ("width", width)):
            if rng is not None and rng != fixed:
                raise TensorRTError(f"--{axis} {rng}: this full (non-light) model only runs at "
                                    f"{info.img_size}x{info.img_size}; leave --height/--width out")
        height = width = fixed
    shapes = {}
    for key in ("min", "opt", "max"):
        n, h, w = getattr(batch, key), getattr(height, key), getattr(width, key)
        shapes[key] = (n, h, w, 3) if info.io == "uint8" else (n, 3, h, w)
    return shapes


def latent_profile(info: ModelInfo) -> dict[str, dict[str, tuple[int, ...]]]:
    """A latent model's code input: one (1, latent_dim) code for the whole batch, so min = opt = max."""
    if not info.latent_dim:
        return {}
    shape = (1, info.latent_dim)
    return {LATENT_NAME: {"min": shape, "opt": shape, "max": shape}}


def frames_input(network: Any, info: ModelInfo, onnx_path: Path) -> Any:
    """The network input that takes the frames; checks that a latent model's code input is there."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    frames = [t for t in inputs if t.name != LATENT_NAME]
    if len(frames) != 1 or (LATENT_NAME in {t.name for t in inputs}) != bool(info.latent_dim):
        raise TensorRTError(f"{onnx_path}: inputs {[t.name for t in inputs]} do not match its metadata "
                            f"(latent_dim {info.latent_dim}); re-export it with `nicegan export onnx`")
    return frames[0]


def fit_to_network(shapes: dict[str, tuple[int, ...]], network_shape: tuple[int, ...],
                   explicit_axes: set[int]) -> dict[str, tuple[int, ...]]:
    """Fixed dims of the ONNX input (a static export) replace default ranges; ranges the user gave
    for such a dim must equal it (TensorRT's rule: fixed dims are equal in min/opt/max)."""
    fitted = {key: list(shape) for key, shape in shapes.items()}
    for axis, dim in enumerate(network_shape):
        if dim < 0:
            continue
        if axis in explicit_axes and any(shape[axis] != dim for shape in shapes.values()):
            raise TensorRTError(f"the ONNX input has a fixed dimension {axis} = {dim} but the profile asks "
                                f"{[s[axis] for s in shapes.values()]}: leave that option out or match it")
        for shape in fitted.values():
            shape[axis] = dim
    return {key: tuple(shape) for key, shape in fitted.items()}


def _explicit_axes(info: ModelInfo, options: "BuildOptions") -> set[int]:
    height_axis, width_axis = (1, 2) if info.io == "uint8" else (2, 3)
    return ({0} if options.batch != DEFAULT_BATCH else set()) | \
        ({height_axis} if options.height else set()) | ({width_axis} if options.width else set())


# --- precision pinning (weak recipe) -------------------------------------------------------


def _float_only(layer: Any, floats: set) -> bool:
    """Layers on integer tensors (shape arithmetic, e.g. the Bessel factor's element count) keep their types."""
    inputs = [layer.get_input(k) for k in range(layer.num_inputs)]
    outputs = [layer.get_output(k) for k in range(layer.num_outputs)]
    return all(t.dtype in floats for t in inputs + outputs if t is not None)


def normalisation_layers(trt: Any, network: Any) -> list[Any]:
    """The float layers of the norm scopes, or, in a graph without such names, of FP32_LAYER_TYPES."""
    floats = {trt.DataType.FLOAT, trt.DataType.HALF}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    layers = [layer for layer in layers if _float_only(layer, floats)]
    named = [layer for layer in layers if FP32_SCOPE.search(layer.name)]
    if named:
        return named
    types = {trt.LayerType.__members__[n] for n in FP32_LAYER_TYPES}
    return [layer for layer in layers if layer.type in types]


def pin_normalisation_fp32(trt: Any, network: Any) -> list[str]:
    """Weak typing: compute and output the normalisation layers in FP32; returns their names."""
    pinned = []
    for layer in normalisation_layers(trt, network):
        layer.precision = trt.DataType.FLOAT
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.DataType.FLOAT)
        pinned.append(layer.name)
    return pinned


# --- GPU identity and timing cache ---------------------------------------------------------


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str   # "8.7"

    def __str__(self) -> str:
        return f"{self.name} (sm_{self.compute_capability.replace('.', '')})"


def gpu_identity(device: int = 0) -> GpuIdentity:
    """The CUDA device's name and compute capability, via pycuda (the runtime's dependency) or torch."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        cuda = None
    if cuda is not None:
        try:
            cuda.init()
            dev = cuda.Device(device)
            major, minor = dev.compute_capability()
            return GpuIdentity(dev.name(), f"{major}.{minor}")
        except cuda.Error as exc:
            raise TensorRTError(f"no usable CUDA device {device} ({exc})") from None
    try:
        import torch
    except ImportError:
        raise TensorRTError(f"pycuda is not installed (nor torch, which could name the GPU); {PYCUDA_HINT}") from None
    if not torch.cuda.is_available():
        raise TensorRTError(f"no CUDA device visible and pycuda is not installed; {PYCUDA_HINT}")
    major, minor = torch.cuda.get_device_capability(device)
    return GpuIdentity(torch.cuda.get_device_name(device), f"{major}.{minor}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def default_timing_cache(trt_version: str, gpu: GpuIdentity) -> Path:
    """One cache per (TensorRT version, GPU): timings are not portable across either."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nicegan" / "tensorrt"
    return root / f"timing-trt{trt_version}-{_slug(gpu.name)}-sm{gpu.compute_capability.replace('.', '')}.cache"


# --- sidecar --------------------------------------------------------------------------------


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    return Path(str(engine_path) + ".json")


def read_sidecar(engine_path: str | os.PathLike) -> dict[str, Any]:
    path = sidecar_path(engine_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        missing = [k for k in ("version", "compute_capability") if k not in data["tensorrt"]] + \
            ([] if isinstance(data.get("model"), dict) else ["model"])
        if missing:
            raise KeyError(", ".join(missing))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TensorRTError(f"{path}: missing or unreadable engine sidecar ({exc}); rebuild the engine with "
                            f"`nicegan export trt MODEL.onnx -o {engine_path}`") from None
    return data


def model_info_from_sidecar(sidecar: dict[str, Any]) -> ModelInfo:
    known = {k: v for k, v in sidecar["model"].items() if k in ModelInfo.__dataclass_fields__}
    return ModelInfo(**known)


def engine_mismatch(sidecar: dict[str, Any], trt_version: str, gpu: GpuIdentity) -> str | None:
    """Why this engine cannot run here, or None. Plans are tied to the TensorRT release and the SM."""
    built = sidecar["tensorrt"]
    if built["version"].split(".")[:3] != trt_version.split(".")[:3]:
        return f"it was built with TensorRT {built['version']}, this is TensorRT {trt_version}"
    if built["compute_capability"] != gpu.compute_capability:
        return (f"it was built for compute capability {built['compute_capability']} ({built.get('gpu', '?')}), "
                f"this GPU is {gpu}")
    return None


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "name", str(dtype))


def _describe_io(network: Any) -> list[dict[str, Any]]:
    io = []
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            tensor = get(i)
            io.append({"name": tensor.name, "mode": mode, "dtype": _dtype_name(tensor.dtype),
                       "shape": [int(d) for d in tensor.shape]})
    return io


# --- build ---------------------------------------------------------------------------------


@dataclass
class BuildOptions:
    batch: DimRange = DEFAULT_BATCH
    height: DimRange | None = None
    width: DimRange | None = None
    workspace_mib: int = 1024
    timing_cache: Path | None = None      # None: default_timing_cache()
    dla_core: int | None = None
    optimization_level: int | None = None
    recipe: str = "auto"                  # auto | strong | weak


def read_onnx_info(onnx_path: str | os.PathLike) -> tuple[ModelInfo, bool]:
    """ModelInfo from the ONNX metadata, and whether the graph is FP16."""
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf DecodeError, OSError, ...
        raise TensorRTError(f"{onnx_path}: not a readable ONNX model ({exc})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if not any(k.startswith("nicegan.") for k in props):
        raise TensorRTError(f"{onnx_path}: no nicegan metadata; export it with `nicegan export onnx`")
    info = ModelInfo.from_metadata(props)
    fp16 = info.precision == "fp16" or any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    return info, fp16


def _parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path, flags: int) -> tuple[Any, Any]:
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"{onnx_path}: TensorRT {trt.__version__} cannot parse it: {errors or 'unknown error'}. "
                            f"For TensorRT 8.x export with `nicegan export onnx --target trt8` (opset 17)")
    return network, parser  # the parser owns weights the network refers to: keep it alive


def _configure(trt: Any, caps: Capabilities, builder: Any, config: Any, options: BuildOptions, recipe: str,
               profiles: dict[str, dict[str, tuple[int, ...]]], cache_bytes: bytes) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    # layer names and precisions in the plan, so the engine inspector / trtexec can show the FP32 norms
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if recipe == WEAK:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    profile = builder.create_optimization_profile()
    for name, shapes in profiles.items():
        profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    if options.optimization_level is not None and caps.optimization_level:
        config.builder_optimization_level = options.optimization_level
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)


def _check_dla(builder: Any, options: BuildOptions, shapes: dict[str, tuple[int, ...]]) -> None:
    if options.dla_core is None:
        return
    if shapes["min"] != shapes["max"]:
        raise TensorRTError("DLA engines need static shapes: pass single values, e.g. "
                            "--batch 1 --height 256 --width 256, with --dla-core")
    cores = builder.num_DLA_cores
    if not 0 <= options.dla_core < cores:
        raise TensorRTError(f"--dla-core {options.dla_core}: this device has {cores} DLA core(s) "
                            f"(Xavier, Orin NX and AGX Orin have 1-2; Orin Nano has none)")


def _notes(caps: Capabilities, recipe: str, onnx_fp16: bool, options: BuildOptions) -> list[str]:
    notes = []
    if options.optimization_level is not None and not caps.optimization_level:
        notes.append(f"TensorRT {caps.version} has no builder optimisation level; --opt-level ignored")
    if recipe == WEAK and onnx_fp16:
        notes.append("weakly typed builds are meant for the FP32 export (`nicegan export onnx --target trt8`); "
                     "this FP16 ONNX is built as it is")
    return notes


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, options: BuildOptions | None = None,
                 *, trt: Any = None, gpu: GpuIdentity | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build OUT.engine and OUT.engine.json from ONNX; returns the sidecar."""
    options = options or BuildOptions()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if engine_path.resolve() == onnx_path.resolve():
        raise TensorRTError(f"{engine_path}: the engine would overwrite its ONNX input; choose another -o")
    info, onnx_fp16 = read_onnx_info(onnx_path)
    if info.role == "style-encoder":
        raise TensorRTError(f"{onnx_path}: a TUNIT style encoder, which the runtime runs once per job on the CPU "
                            "(OpenCV); build the engine from the translator graph beside it")
    trt = trt or import_tensorrt()
    gpu = gpu or gpu_identity()
    caps = detect_capabilities(trt)
    recipe = choose_recipe(caps, onnx_path, onnx_fp16, options.recipe)
    for note in _notes(caps, recipe, onnx_fp16, options):
        log(f"note: {note}")
    shapes = profile_shapes(info, options.batch, options.height, options.width)

    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, onnx_path, network_flags(trt, caps, recipe))
    input_tensor = frames_input(network, info, onnx_path)
    shapes = fit_to_network(shapes, tuple(int(d) for d in input_tensor.shape), _explicit_axes(info, options))
    profiles = {input_tensor.name: shapes, **latent_profile(info)}
    _check_dla(builder, options, shapes)
    pinned = pin_normalisation_fp32(trt, network) if recipe == WEAK else []

    cache_path = options.timing_cache or default_timing_cache(caps.version, gpu)
    cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
    config = builder.create_builder_config()
    _configure(trt, caps, builder, config, options, recipe, profiles, cache_bytes)
    log(f"building {recipe} FP16 engine with TensorRT {caps.version} on {gpu}: profile "
        f"{shapes['min']} .. {shapes['opt']} .. {shapes['max']}, {len(pinned)} layers pinned to FP32, "
        f"timing cache {cache_path}{' (reused)' if cache_bytes else ''}")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TensorRTError(f"TensorRT {caps.version} could not build {onnx_path} (see the TensorRT log above); "
                            f"try a larger --workspace or narrower --batch/--height/--width ranges")
    write_bytes_atomic(cache_path, config.get_timing_cache().serialize())

    sidecar = {
        "model": asdict(replace(info, precision="fp16")),   # the ONNX's metadata; the engine computes FP16
        "tensorrt": {
            "version": caps.version, "gpu": gpu.name, "compute_capability": gpu.compute_capability,
            "recipe": recipe, "precision": "fp16", "fp32_pinned_layers": len(pinned),
            "profiles": [{name: {k: list(v) for k, v in shape.items()} for name, shape in profiles.items()}],
            "io": _describe_io(network), "dla_core": options.dla_core,
            "workspace_mib": options.workspace_mib, "optimization_level": options.optimization_level,
        },
        "onnx_sha256": file_sha256(onnx_path),
    }
    write_bytes_atomic(engine_path, memoryview(plan), fsync=True)
    sidecar["engine_sha256"] = file_sha256(engine_path)
    write_text_atomic(sidecar_path(engine_path), json.dumps(sidecar, indent=2), fsync=True)
    log(f"wrote {engine_path} and {sidecar_path(engine_path).name}")
    return sidecar

