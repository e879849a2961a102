"""TensorRTBackend logic with a fake engine that runs the real ONNX in ONNX Runtime, on a NumPy
"device memory" (tests/trt_fakes.py): I/O discovery, shapes and profile, buffer reuse, dtype
mapping, float<->uint8 conversion, the rebuild errors. Real CUDA copies and kernels are not covered.
"""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from nicegan.common import file_sha256
from nicegan.export.to_tensorrt import BuildOptions, DimRange, GpuIdentity, build_engine
from nicegan.runtime.backends.base import BackendError
from nicegan.runtime.backends.tensorrt_backend import TensorRTBackend
from nicegan.runtime.pipeline import default_batch_size
from nicegan_testutils import assert_within_one_level, random_crops, real_photos
from trt_fakes import FakeMemory, fake_tensorrt

GPU = GpuIdentity("NVIDIA GeForce RTX 4090", "8.9")
VERSION = "10.16.1.11"


def make_engine(onnx_path, folder, version=VERSION, io_dtype=None, **options):
    """Build with the fake TensorRT (weak recipe: the fixtures are FP32 ONNX files)."""
    trt = fake_tensorrt(version, io_dtype=io_dtype)
    engine = folder / "model.engine"
    build_engine(onnx_path, engine, BuildOptions(recipe="weak", timing_cache=folder / "t.cache", **options),
                 trt=trt, gpu=GPU, log=lambda _: None)
    return engine


def open_backend(engine, version=VERSION, gpu=GPU):
    trt = fake_tensorrt(version)
    trt.memory = FakeMemory(gpu)
    return TensorRTBackend(engine, trt=trt, memory=trt.memory), trt.memory


def photos(count, height, width):
    image = next(iter(real_photos().values()))
    return np.stack(random_crops(image, count, max(height, width), seed=count)).astype(np.uint8)[:, :height, :width]


def ort_uint8(onnx_path, frames):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": frames})[0]


def test_uint8_engine_matches_onnx_runtime_and_reuses_buffers(tiny_onnx, tmp_path):
    backend, memory = open_backend(make_engine(tiny_onnx, tmp_path))
    assert backend.uint8_io and backend.info.io == "uint8"
    big, small = photos(3, 64, 96), photos(2, 64, 64)
    np.testing.assert_array_equal(backend.infer(big), ort_uint8(tiny_onnx, big))
    staging = backend._staging["input"]
    assert (staging.allocations, staging.capacity) == (1, big.nbytes)
    np.testing.assert_array_equal(backend.infer(small), ort_uint8(tiny_onnx, small))
    assert staging.allocations == 1                      # smaller shape: same buffers
    larger = photos(4, 96, 96)
    backend.infer(larger)
    assert (staging.allocations, staging.capacity) == (2, larger.nbytes)
    run = memory.ops[-4:]
    assert [op[0] for op in run] == ["htod", "execute", "dtoh", "synchronize"]
    assert run[1] == ("execute", memory.stream_handle)   # a real stream, not the default 0
    backend.close()
    backend.close()
    assert memory.freed == 4


def test_batches_above_the_profile_maximum_are_split(tiny_onnx, tmp_path):
    backend, memory = open_backend(make_engine(tiny_onnx, tmp_path, batch=DimRange.parse("1:2:2")))
    frames = photos(5, 64, 64)
    out = backend.infer(frames)
    assert out.shape == frames.shape and [op[0] for op in memory.ops].count("execute") == 3
    assert_within_one_level(out, ort_uint8(tiny_onnx, frames))   # batches 2+2+1 against one batch of 5


def test_runtime_batches_no_more_than_the_engine_profile_takes(tiny_onnx, tmp_path):
    backend, _ = open_backend(make_engine(tiny_onnx, tmp_path, batch=DimRange.parse("1:2:4")))
    assert backend.max_batch == 4 and default_batch_size(backend) == 4


def test_shape_outside_the_profile_says_how_to_rebuild(tiny_onnx, tmp_path):
    backend, _ = open_backend(make_engine(tiny_onnx, tmp_path, height=DimRange.parse("64:64:128")))
    with pytest.raises(BackendError, match=r"outside the engine's profile.*nicegan export trt"):
        backend.infer(np.zeros((1, 160, 64, 3), np.uint8))
    with pytest.raises(BackendError, match="expected uint8 frames"):
        backend.infer(np.zeros((1, 64, 64, 3), np.float32))


@pytest.mark.parametrize("io_dtype", [None, "HALF"])
def test_float_engine_io_is_converted_in_the_backend(tiny_onnx, tiny_float_onnx, tmp_path, io_dtype):
    backend, memory = open_backend(make_engine(tiny_float_onnx, tmp_path, io_dtype=io_dtype))
    assert not backend.uint8_io and backend._in_dtype == (np.float16 if io_dtype else np.float32)
    frames = photos(2, 64, 64)
    out = backend.infer(frames)
    assert memory.ops[0] == ("htod", frames.size * backend._in_dtype.itemsize)
    reference = ort_uint8(tiny_onnx, frames)             # the uint8 graph does the same conversion inside
    diff = np.abs(out.astype(int) - reference.astype(int))
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert diff.max() <= (3 if io_dtype else 1), diff.max()


def test_engine_from_another_tensorrt_or_gpu_asks_for_a_rebuild(tiny_onnx, tmp_path):
    engine = make_engine(tiny_onnx, tmp_path)
    with pytest.raises(BackendError, match=r"built with TensorRT 10\.16\.1\.11, this is TensorRT 8\.6\.1.*"
                                           r"nicegan export trt"):
        open_backend(engine, version="8.6.1")
    with pytest.raises(BackendError, match=r"compute capability 8\.9.*this GPU is .*sm_87.*nicegan export trt"):
        open_backend(engine, gpu=GpuIdentity("Orin", "8.7"))


def test_undeserialisable_plan_is_a_rebuild_error_not_a_crash(tiny_onnx, tmp_path):
    engine = make_engine(tiny_onnx, tmp_path)
    engine.write_bytes(b"\x00garbage plan")
    with pytest.raises(BackendError, match="sidecar describes a different engine file"):
        open_backend(engine)
    sidecar = json.loads((tmp_path / "model.engine.json").read_text())
    sidecar["engine_sha256"] = file_sha256(engine)
    (tmp_path / "model.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(BackendError, match=r"could not deserialise the engine; rebuild .*nicegan export trt"):
        open_backend(engine)


def test_missing_sidecar_is_a_rebuild_error(tiny_onnx, tmp_path):
    engine = make_engine(tiny_onnx, tmp_path)
    (tmp_path / "model.engine.json").unlink()
    with pytest.raises(BackendError, match=r"model\.engine\.json: missing or unreadable .*nicegan export trt"):
        open_backend(engine)


def test_device_names_the_gpu_and_tensorrt(tiny_onnx, tmp_path):
    backend, _ = open_backend(make_engine(tiny_onnx, tmp_path))
    assert backend.device == f"NVIDIA GeForce RTX 4090 (sm_89), TensorRT {VERSION}"
