"""Backends on the same frames: ONNX Runtime (uint8 and float graphs) against PyTorch fp32; choice rules.
(OpenVINO has its own module, test_openvino_backend.py.)"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from nicegan.export.metadata import ModelInfo
from nicegan.runtime.backends import BackendError, choose_backend, open_backend
from nicegan.runtime.bench import benchmark, format_table
from nicegan.runtime.info import describe_model
from nicegan_testutils import TINY_FULL, make_trained_like, save_checkpoint
from runtime_fixtures import photo


@pytest.fixture(scope="module")
def frames():
    return np.stack([photo("chelsea", 64, 96), photo("coffee", 64, 96), photo("rocket", 64, 96)])


@pytest.fixture(scope="module")
def torch_output(tiny_checkpoint, frames):
    with open_backend(tiny_checkpoint, device="cpu", precision="fp32") as backend:
        assert backend.name == "torch" and backend.device.startswith("CPU")
        return backend.infer(frames)


def level_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.mark.parametrize("model", ["tiny_onnx", "tiny_float_onnx"])
def test_onnxruntime_agrees_with_pytorch_within_one_level(model, request, frames, torch_output):
    with open_backend(request.getfixturevalue(model), "onnxruntime") as backend:
        assert backend.name == "onnxruntime"
        out = backend.infer(frames)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    diff = level_diff(out, torch_output)
    print(f"{model}: max {diff.max()} levels, mean {diff.mean():.5f}")
    assert diff.max() <= 1 and diff.mean() < 0.01
    assert level_diff(out, frames).mean() > 5     # it translated: not an identity


def test_metadata_is_read_from_the_onnx_file(tiny_onnx, tiny_float_onnx, tiny_checkpoint):
    with open_backend(tiny_onnx) as uint8_model, open_backend(tiny_float_onnx) as float_model:
        assert uint8_model.info.io == "uint8" and float_model.info.io == "float"
        assert uint8_model.info.img_size == 64 and uint8_model.info.light and uint8_model.info.step == 1234


def test_graphs_without_metadata_are_described_from_their_inputs(tiny_float_onnx, tmp_path, frames, torch_output):
    model = onnx.load(str(tiny_float_onnx))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with open_backend(bare, "onnxruntime") as backend:
        assert backend.info.io == "float" and backend.info.dynamic_hw and backend.info.arch == "unknown"
        assert level_diff(backend.infer(frames), torch_output).max() <= 1


def test_full_model_checkpoint_runs_at_its_fixed_size(tmp_path):
    path = save_checkpoint(make_trained_like(TINY_FULL), tmp_path / "full.pt")
    with open_backend(path) as backend:
        assert not backend.info.dynamic_hw and backend.info.img_size == 64
        assert backend.infer(np.stack([photo("coffee", 64, 64)])).shape == (1, 64, 64, 3)


def test_backend_choice_follows_the_file_type(tiny_onnx, tiny_checkpoint, tmp_path, monkeypatch):
    from nicegan.runtime import backends
    assert choose_backend(tiny_onnx, "onnxruntime") == ("onnxruntime", "chosen by --backend")
    assert choose_backend(tiny_checkpoint) == ("torch", "auto: .pt file")
    assert choose_backend(tiny_checkpoint, "torch") == ("torch", "chosen by --backend")
    # .onnx: ONNX Runtime's CUDA provider where CUDA is, else OpenVINO, else ONNX Runtime on the CPU
    monkeypatch.setattr(backends, "_onnxruntime_has_cuda", lambda: True)
    assert choose_backend(tiny_onnx)[0] == "onnxruntime" and "CUDA" in choose_backend(tiny_onnx)[1]
    assert choose_backend(tiny_onnx, device="cpu")[0] == "openvino"
    monkeypatch.setattr(backends, "_onnxruntime_has_cuda", lambda: False)
    assert choose_backend(tiny_onnx) == ("openvino", "auto: .onnx file, no CUDA: OpenVINO")
    real_find_spec = backends.importlib.util.find_spec
    monkeypatch.setattr(backends.importlib.util, "find_spec",
                        lambda name: None if name == "openvino" else real_find_spec(name))
    kind, why = choose_backend(tiny_onnx)
    assert kind == "onnxruntime" and "pip install openvino" in why
    with pytest.raises(BackendError, match="Intel GPUs and NPUs run through OpenVINO"):
        choose_backend(tiny_onnx, device="GPU")
    monkeypatch.undo()
    with pytest.raises(BackendError, match="nicegan export onnx"):
        choose_backend(tiny_checkpoint, "onnxruntime")
    with pytest.raises(BackendError, match="nicegan export trt"):
        choose_backend(tiny_onnx, "tensorrt")
    with pytest.raises(BackendError, match="not found"):
        choose_backend(tmp_path / "missing.onnx")
    (tmp_path / "model.h5").write_bytes(b"\0")
    with pytest.raises(BackendError, match="unknown model type"):
        choose_backend(tmp_path / "model.h5")


def test_unusable_models_and_devices_raise_backend_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(BackendError, match="--half/--precision fp16 needs a CUDA device"):
        open_backend(tiny_checkpoint, half=True, device="cpu")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="broken.onnx"):
        open_backend(tmp_path / "broken.onnx")
    (tmp_path / "model.engine").write_bytes(b"not an engine")   # no sidecar, no TensorRT here
    with pytest.raises(BackendError, match="model.engine"):
        open_backend(tmp_path / "model.engine")


def test_bench_times_every_batch_and_size(tiny_onnx):
    with open_backend(tiny_onnx) as backend:
        results = benchmark(backend, batches=(1, 2), sizes=((32, 32), (50, 70)), warmup=1, runs=2)
        table = format_table(results, warmup=1, runs=2)
    assert [(r.batch, r.height, r.width) for r in results] == [(1, 32, 32), (2, 32, 32), (1, 52, 72), (2, 52, 72)]
    assert all(r.error is None and r.median_s > 0 and r.images_per_s > 0 for r in results)
    assert "median of 2 runs" in table and "52x72" in table


def test_info_names_backend_metadata_and_io(tiny_onnx, tiny_checkpoint):
    lines = "\n".join(describe_model(tiny_onnx, "onnxruntime"))
    assert "backend: onnxruntime" in lines and "io: uint8" in lines and "input input: uint8 [batch" in lines
    lines = "\n".join(describe_model(tiny_checkpoint))
    assert "backend: torch" in lines and "img_size: 64" in lines and "parameters" in lines


def test_info_reads_an_engine_sidecar_without_tensorrt(tmp_path):
    import json
    from dataclasses import asdict
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"plan bytes")
    built = {"version": "10.13.0", "compute_capability": "9.0", "gpu": "NVIDIA H100", "precision": "fp16"}
    info = ModelInfo(precision="fp16", img_size=256)
    (tmp_path / "model.engine.json").write_text(json.dumps({"model": asdict(info), "tensorrt": built}))
    lines = "\n".join(describe_model(engine))
    assert "backend: tensorrt" in lines and "precision: fp16" in lines and "compute_capability: 9.0" in lines


def test_asking_for_cuda_without_it_names_the_fix(tiny_onnx, tiny_checkpoint):
    import onnxruntime
    import torch
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendError, match="onnxruntime-gpu"):
            open_backend(tiny_onnx, device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA device"):
            open_backend(tiny_checkpoint, device="cuda:0")
