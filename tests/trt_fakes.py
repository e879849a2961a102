"""A recording stand-in for the `tensorrt` module (TensorRT cannot run without a GPU), per version.

Each fake class exposes only the names the real bindings of that version have (among those the
project declares in REQUIRED_API / OPTIONAL_API, from tests/data/trt_api_surface.json, which
test_tensorrt_api_surface checks against the real bindings): code touching anything else, or a
name removed in that version, fails with AttributeError. Enum values are the real ones.

The parser reads the real ONNX file (node names, op types, dtypes from ONNX shape inference); the
"engine" runs the same ONNX in ONNX Runtime, on bytes in a NumPy "device memory".
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

SURFACE = json.loads((Path(__file__).with_name("data") / "trt_api_surface.json").read_text())
VERSIONS = sorted(SURFACE, key=lambda v: tuple(int(p) for p in v.split(".")))

OP_LAYER_TYPES = {"ReduceMean": "REDUCE", "ReduceProd": "REDUCE", "ReduceSum": "REDUCE", "Sqrt": "UNARY",
                  "Sub": "ELEMENTWISE", "Mul": "ELEMENTWISE", "Add": "ELEMENTWISE", "Div": "ELEMENTWISE",
                  "Pow": "ELEMENTWISE", "Conv": "CONVOLUTION", "Cast": "CAST", "Shape": "SHAPE",
                  "Gather": "GATHER", "Constant": "CONSTANT", "Softmax": "SOFTMAX", "MatMul": "MATRIX_MULTIPLY",
                  "InstanceNormalization": "NORMALIZATION", "Relu": "ACTIVATION", "LeakyRelu": "ACTIVATION",
                  "Tanh": "ACTIVATION", "Pad": "SLICE", "Slice": "SLICE", "Concat": "CONCATENATION",
                  "Round": "UNARY", "Clip": "ACTIVATION", "Max": "ELEMENTWISE", "Min": "ELEMENTWISE"}
ONNX_TO_TRT = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.UINT8: "UINT8",
               onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT32: "INT32", onnx.TensorProto.BOOL: "BOOL"}
NP_OF = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64,
         "BOOL": np.bool_}


class EnumValue(int):
    def __new__(cls, value: int, name: str) -> "EnumValue":
        obj = int.__new__(cls, value)
        obj.name = name
        return obj

    def __repr__(self) -> str:
        return self.name


def make_enum(owner: str, members: dict[str, int]) -> type:
    values = {name: EnumValue(v, name) for name, v in members.items()}
    return type(owner, (), {**values, "__members__": values})


def strict(impl: type, allowed: set[str], trt: Any) -> type:
    """A copy of `impl` keeping only the public names this version has; instances see `_trt`."""
    def __setattr__(self, key, value):
        if not key.startswith("_") and key not in allowed:
            raise AttributeError(f"{impl.__name__}.{key} does not exist in this TensorRT version")
        object.__setattr__(self, key, value)
    inherited = {k: v for cls in reversed(impl.__mro__[:-1]) for k, v in vars(cls).items()}
    namespace = {k: v for k, v in inherited.items() if (k.startswith("_") and k != "__dict__") or k in allowed}
    return type(impl.__name__, (), {**namespace, "__setattr__": __setattr__, "_trt": trt})


# --- build side ------------------------------------------------------------------------------


class ITensor:
    def __init__(self, name, dtype, shape):
        self._name, self._dtype, self._shape = name, dtype, tuple(shape)

    name = property(lambda self: self._name)
    dtype = property(lambda self: self._dtype)
    shape = property(lambda self: self._shape)


class _InputsOutputs:
    """What ILayer and INetworkDefinition share: indexed input and output tensors."""

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, i):
        return self._inputs[i]

    def get_output(self, i):
        return self._outputs[i]


class ILayer(_InputsOutputs):
    def __init__(self, name, layer_type, inputs, outputs):
        self._name, self._type, self._inputs, self._outputs = name, layer_type, inputs, outputs
        self._precision, self._output_types = None, {}

    name = property(lambda self: self._name)
    type = property(lambda self: self._type)

    def _set_precision(self, dtype):
        self._trt.calls.append(("ILayer.precision", self._name, dtype.name))
        self._precision = dtype

    precision = property(lambda self: self._precision, _set_precision)

    def set_output_type(self, index, dtype):
        self._trt.calls.append(("ILayer.set_output_type", self._name, index, dtype.name))
        self._output_types[index] = dtype


class INetworkDefinition(_InputsOutputs):
    def __init__(self, flags):
        self._flags, self._layers, self._inputs, self._outputs = flags, [], [], []

    num_layers = property(lambda self: len(self._layers))

    def get_layer(self, i):
        return self._layers[i]


class OnnxParser:
    """Fills the network from the real ONNX file: one layer per node, named like the node."""

    def __init__(self, network, logger):
        self._network, self._errors = network, []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, i):
        return self._errors[i]

    def parse_from_file(self, path):
        self._trt.calls.append(("OnnxParser.parse_from_file", path))
        if self._trt.parser_errors:
            self._errors = list(self._trt.parser_errors)
            return False
        model = onnx.shape_inference.infer_shapes(onnx.load(path))
        graph, trt = model.graph, self._trt
        tensors: dict[str, ITensor] = {}

        def dtype_of(elem_type):
            name = ONNX_TO_TRT.get(elem_type, "FLOAT")
            return trt.DataType.__members__.get(name, trt.DataType.INT32)   # 8.6 has no INT64

        def tensor(name, elem_type, shape=()):
            if name not in tensors:
                tensors[name] = trt.ITensor(name, dtype_of(elem_type), shape)
            return tensors[name]

        def dims(value_info):
            return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]

        types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.output)}
        types.update({t.name: t.data_type for t in graph.initializer})
        initializers = {t.name for t in graph.initializer}
        net = self._network
        net._inputs = [tensor(v.name, v.type.tensor_type.elem_type, dims(v)) for v in graph.input
                       if v.name not in initializers]
        # integer initializers (axes, pads, shapes) become layer parameters, not layer inputs, in TensorRT
        parameters = {t.name for t in graph.initializer if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)}
        for node in graph.node:
            inputs = [tensor(n, types.get(n, onnx.TensorProto.FLOAT)) if n else None
                      for n in node.input if n not in parameters]
            outputs = [tensor(n, types.get(n, onnx.TensorProto.FLOAT)) for n in node.output]
            layer_type = trt.LayerType.__members__.get(OP_LAYER_TYPES.get(node.op_type, "SHUFFLE"))
            net._layers.append(trt.ILayer(node.name, layer_type, inputs, outputs))
        net._outputs = [trt.ITensor(v.name, dtype_of(v.type.tensor_type.elem_type), dims(v)) for v in graph.output]
        return True


class IOptimizationProfile:
    def __init__(self):
        self._shapes = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's keyword names
        self._trt.calls.append(("IOptimizationProfile.set_shape", name, tuple(min), tuple(opt), tuple(max)))
        self._shapes[name] = [tuple(min), tuple(opt), tuple(max)]


class ITimingCache:
    def __init__(self, data):
        self._data = bytes(data)

    def serialize(self):
        return self._data + b"+tuned"


class IBuilderConfig:
    def __init__(self):
        self._profiles, self._cache = [], None

    def _record(self, *call):
        self._trt.calls.append(call)

    def set_memory_pool_limit(self, pool, size):
        self._record("IBuilderConfig.set_memory_pool_limit", pool.name, size)

    def add_optimization_profile(self, profile):
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, data):
        self._record("IBuilderConfig.create_timing_cache", bytes(data))
        return ITimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache

    def set_flag(self, flag):
        self._record("IBuilderConfig.set_flag", flag.name)

    def _setter(key):
        return property(lambda self: getattr(self, "_" + key, None),
                        lambda self, value: (self._record(f"IBuilderConfig.{key}", value),
                                             object.__setattr__(self, "_" + key, value)))

    default_device_type = _setter("default_device_type")
    profiling_verbosity = _setter("profiling_verbosity")
    DLA_core = _setter("DLA_core")
    builder_optimization_level = _setter("builder_optimization_level")
    del _setter


class Builder:
    def __init__(self, logger):
        pass

    num_DLA_cores = property(lambda self: self._trt.dla_cores)
    max_batch_size = property(lambda self: 1)

    def create_network(self, flags):
        self._trt.calls.append(("Builder.create_network", flags))
        return self._trt.INetworkDefinition(flags)

    def create_builder_config(self):
        return self._trt.IBuilderConfig()

    def create_optimization_profile(self):
        return self._trt.IOptimizationProfile()

    def build_serialized_network(self, network, config):
        """The "plan": what the fake Runtime needs to run the ONNX in ONNX Runtime."""
        self._trt.calls.append(("Builder.build_serialized_network",))
        if self._trt.build_fails:
            return None
        onnx_path = next(c[1] for c in self._trt.calls if c[0] == "OnnxParser.parse_from_file")
        io = {t.name: {"dtype": self._trt.io_dtype or t.dtype.name, "shape": list(t.shape)}
              for t in network._inputs + network._outputs}
        plan = {"magic": "fake-plan", "version": self._trt.__version__, "onnx": str(onnx_path),
                "profiles": {t.name: config._profiles[0]._shapes[t.name] for t in network._inputs},
                "inputs": [t.name for t in network._inputs], "io": io}
        return memoryview(json.dumps(plan).encode())


class Logger:
    def __init__(self, severity):
        self._severity = severity


# --- run side ------------------------------------------------------------------------------


class ICudaEngine:
    def __init__(self, plan):
        self._plan = plan
        self._names = plan["inputs"] + [n for n in plan["io"] if n not in plan["inputs"]]

    num_io_tensors = property(lambda self: len(self._names))

    def get_tensor_name(self, i):
        return self._names[i]

    def get_tensor_mode(self, name):
        modes = self._trt.TensorIOMode
        return modes.INPUT if name in self._plan["inputs"] else modes.OUTPUT

    def get_tensor_dtype(self, name):
        return getattr(self._trt.DataType, self._plan["io"][name]["dtype"])

    def get_tensor_shape(self, name):
        return tuple(self._plan["io"][name]["shape"])

    def get_tensor_profile_shape(self, name, profile_index):
        return [tuple(s) for s in self._plan["profiles"][name]]

    def create_execution_context(self):
        return self._trt.IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine):
        self._engine, self._shapes, self._addresses = engine, {}, {}
        self._session = ort.InferenceSession(engine._plan["onnx"], providers=["CPUExecutionProvider"])

    def set_input_shape(self, name, shape):
        low, _, high = self._engine._plan["profiles"][name]
        if len(shape) != len(low) or not all(lo <= s <= hi for s, lo, hi in zip(shape, low, high)):
            return False
        self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if name in self._shapes:
            return self._shapes[name]
        return self._shapes[self._engine._plan["inputs"][0]]    # the translator keeps its frames' shape

    def set_tensor_address(self, name, address):
        self._addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        plan, memory = self._engine._plan, self._trt.memory
        memory.ops.append(("execute", stream_handle))
        feeds = {}
        for graph_input in self._session.get_inputs():
            name = graph_input.name
            dtype = np.dtype(NP_OF[plan["io"][name]["dtype"]])
            x = memory.read(self._addresses[name], self._shapes[name], dtype)
            feeds[name] = x.astype(np.float32) if "float" in graph_input.type and x.dtype == np.float16 else x
        (y,) = self._session.run(None, feeds)
        out = next(n for n in plan["io"] if n not in plan["inputs"])
        memory.write(self._addresses[out], y.astype(NP_OF[plan["io"][out]["dtype"]]))
        return True


class Runtime:
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, data):
        try:
            plan = json.loads(bytes(data))
        except ValueError:
            return None
        if plan.get("magic") != "fake-plan" or plan["version"] != self._trt.__version__:
            return None
        return self._trt.ICudaEngine(plan)


IMPLS = {c.__name__: c for c in (ITensor, ILayer, INetworkDefinition, OnnxParser, IOptimizationProfile,
                                 ITimingCache, IBuilderConfig, Builder, Logger, ICudaEngine, IExecutionContext,
                                 Runtime)}


def fake_tensorrt(version: str = VERSIONS[-1], *, dla_cores: int = 0, build_fails: bool = False,
                  parser_errors: tuple[str, ...] = (), io_dtype: str | None = None) -> SimpleNamespace:
    """A `tensorrt` stand-in shaped like the real `version`; `.calls` records what the code did."""
    surface, enums = SURFACE[version]["surface"], SURFACE[version]["enums"]
    trt = SimpleNamespace(__version__=version, calls=[], dla_cores=dla_cores, build_fails=build_fails,
                          parser_errors=parser_errors, io_dtype=io_dtype, memory=None)
    for owner, members in enums.items():
        setattr(trt, owner, make_enum(owner, members))
    for owner in ("MemoryPoolType", "DeviceType", "ProfilingVerbosity"):
        setattr(trt, owner, make_enum(owner, {n: i for i, n in enumerate(surface[owner]) if surface[owner][n]}))
    for name, impl in IMPLS.items():
        allowed = {n for n, present in surface.get(name, {}).items() if present}
        setattr(trt, name, strict(impl, allowed, trt))
    trt.Logger.WARNING = "WARNING"
    trt.init_libnvinfer_plugins = lambda logger, namespace: trt.calls.append(("init_libnvinfer_plugins",))
    trt.nptype = lambda dtype: NP_OF[dtype.name]
    return trt


class FakeMemory:
    """NumPy "device": allocations are byte arrays addressed by integers; copies are logged."""

    def __init__(self, gpu):
        self.gpu = gpu
        self.stream_handle = 0xC0FFEE
        self.ops: list[tuple] = []
        self._buffers: dict[int, np.ndarray] = {}
        self._next = 0x1000
        self.freed = 0

    def current(self):
        from contextlib import nullcontext
        return nullcontext()

    def host_empty(self, nbytes):
        return np.empty(nbytes, np.uint8)

    def device_alloc(self, nbytes):
        self._next += 0x1000 + nbytes
        self._buffers[self._next] = np.zeros(nbytes, np.uint8)
        return self._next

    def address(self, allocation):
        return allocation

    def htod(self, allocation, host):
        self.ops.append(("htod", host.nbytes))
        self._buffers[allocation][:host.nbytes] = host

    def dtoh(self, host, allocation):
        self.ops.append(("dtoh", host.nbytes))
        host[...] = self._buffers[allocation][:host.nbytes]

    def synchronize(self):
        self.ops.append(("synchronize",))

    def free(self, allocation):
        del self._buffers[allocation]
        self.freed += 1

    def read(self, address, shape, dtype):
        nbytes = int(np.prod(shape)) * dtype.itemsize
        return self._buffers[address][:nbytes].view(dtype).reshape(shape).copy()

    def write(self, address, array):
        self._buffers[address][:array.nbytes] = np.ascontiguousarray(array).view(np.uint8).ravel()
