"""The OpenVINO backend on real sessions and real photos: every exported model type, fp32 against
ONNX Runtime, bf16 against fp32 (tolerances of docs/EXPORT.md), IR, the compile cache, requests in
flight, one compilation for every size, and the errors."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="OpenVINO has no wheel for this platform (pip install openvino)")

from nicegan.export.to_onnx import export_onnx  # noqa: E402
from nicegan.export.to_openvino import OpenVINOExportError, export_openvino  # noqa: E402
from nicegan.models.cyclegan.networks import CycleGANConfig, CycleGANGenerator  # noqa: E402
from nicegan.runtime.backends import BackendError, open_backend  # noqa: E402
from nicegan.runtime.backends import openvino_backend as ovb  # noqa: E402
from nicegan.runtime.demo import DEFAULT_MODEL  # noqa: E402
from nicegan.runtime.frames import SizePolicy  # noqa: E402
from nicegan.runtime.pipeline import TranslateOptions, default_batch_size, translate  # noqa: E402
from nicegan.trainer.threads import cpu_has_native_bf16  # noqa: E402
from nicegan_testutils import TINY_FULL, make_trained_like, real_photos, save_checkpoint  # noqa: E402
from runtime_fixtures import distinct_frames, output_files, photo, read_clip, write_clip  # noqa: E402

# bf16 against fp32 on real photos (docs/EXPORT.md): bf16 keeps 8 bits of mantissa, so each
# convolution's output moves by ~0.4% of its magnitude; over a light model's ~30 layers that is
# most pixels within a level, a few pixels of high-contrast edges a few levels off.
BF16_MEAN_LEVELS, BF16_P999_LEVELS = 1.0, 4
OV_HAS_BF16 = "BF16" in ovb._capabilities(ovb.shared_core(), "CPU")
needs_bf16 = pytest.mark.skipif(not OV_HAS_BF16, reason="this CPU has neither AMX nor AVX512_BF16: no native bf16")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(scope="module")
def full_onnx(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("full")
    checkpoint = save_checkpoint(make_trained_like(TINY_FULL), folder / "full.pt")
    return export_onnx(checkpoint, folder / "full.onnx", parity=False, log=lambda _: None).output


@pytest.fixture(scope="module")
def cyclegan_onnx(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cyclegan")
    torch.manual_seed(0)
    torch.save(CycleGANGenerator(CycleGANConfig(ngf=8, n_blocks=2, affine_norm=True)).state_dict(), folder / "g.pth")
    return export_onnx(folder / "g.pth", folder / "g.onnx", io="float", parity=False, log=lambda _: None,
                       default_img_size=64).output


def photos_for(policy: SizePolicy) -> list[np.ndarray]:
    """scikit-image's four photos and the bundled ones, fitted to the model (96 px: tiny models)."""
    import cv2
    images = [cv2.cvtColor(cv2.resize(rgb, (96, 72), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
              for rgb in real_photos().values()]
    return [policy.fit(image)[0] for image in images]


def run_each(model: Path, **options) -> list[np.ndarray]:
    with open_backend(model, **options) as backend:
        return [backend.infer(x[None])[0].astype(int) for x in photos_for(SizePolicy(backend.info))]


def levels(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)])


@pytest.mark.parametrize("model", ["tiny_onnx", "tiny_float_onnx", "full_onnx", "cyclegan_onnx"])
def test_fp32_agrees_with_onnx_runtime_within_one_level(model, request, cache):
    path = request.getfixturevalue(model)
    ours = run_each(path, backend="openvino", precision="fp32")
    theirs = run_each(path, backend="onnxruntime")
    diff = levels(ours, theirs)
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


@needs_bf16
@pytest.mark.parametrize("model", ["tiny_onnx", "full_onnx", "cyclegan_onnx", "bundled"])
def test_bf16_stays_within_the_stated_tolerance_of_fp32(model, request):
    path = DEFAULT_MODEL if model == "bundled" else request.getfixturevalue(model)
    bf16, fp32 = run_each(path, backend="openvino", precision="bf16"), run_each(path, backend="openvino",
                                                                              precision="fp32")
    diff = levels(bf16, fp32)
    assert diff.mean() <= BF16_MEAN_LEVELS and np.percentile(diff, 99.9) <= BF16_P999_LEVELS, \
        (diff.mean(), np.percentile(diff, 99.9), diff.max())
    assert diff.max() > 0   # it really ran in bf16


@needs_bf16
def test_torch_backend_uses_bf16_and_channels_last_on_such_a_cpu(tiny_checkpoint):
    assert cpu_has_native_bf16()
    with open_backend(tiny_checkpoint, device="cpu") as auto:
        assert auto.precision == "bf16" and "bf16 autocast, channels_last" in auto.device
    diff = levels(run_each(tiny_checkpoint, device="cpu"), run_each(tiny_checkpoint, device="cpu", precision="fp32"))
    assert diff.mean() <= BF16_MEAN_LEVELS and np.percentile(diff, 99.9) <= BF16_P999_LEVELS and diff.max() > 0


def test_auto_precision_follows_the_cpu(tiny_onnx, monkeypatch):
    with open_backend(tiny_onnx, "openvino") as backend:
        assert backend.precision == ("bf16" if OV_HAS_BF16 else "fp32")
        assert backend.precision in backend.device and "request(s) in flight" in backend.device
    monkeypatch.setattr(ovb, "_capabilities", lambda core, device: ["FP32", "INT8"])   # an AVX2-only CPU
    with open_backend(tiny_onnx, "openvino") as backend:
        assert backend.precision == "fp32"
    with pytest.raises(BackendError, match="--precision bf16: this CPU has no native bf16.*--precision auto or fp32"):
        open_backend(tiny_onnx, "openvino", precision="bf16")


def test_one_compilation_serves_every_size_with_requests_in_flight(tiny_onnx):
    with open_backend(tiny_onnx, "openvino", precision="fp32") as backend:
        compiled = backend.compiled
        assert len(backend._requests) >= 1 and default_batch_size(backend) == 2 * len(backend._requests)
        for height, width in ((32, 32), (64, 96), (48, 200), (32, 32)):
            frames = np.stack([photo("astronaut", height, width)] * 3)
            out = backend.infer(frames)
            assert out.shape == frames.shape and out.dtype == np.uint8
        assert backend.compiled is compiled
    with open_backend(tiny_onnx, "openvino", live=True) as camera:
        assert len(camera._requests) == 1 and default_batch_size(camera) == 1 and "(latency)" in camera.device


def test_the_second_start_loads_the_compiled_model_from_the_cache(tiny_float_onnx, tmp_path):
    first = ovb.OpenVINOBackend(tiny_float_onnx, cache_dir=tmp_path)
    second = ovb.OpenVINOBackend(tiny_float_onnx, cache_dir=tmp_path)
    assert not first.from_cache and second.from_cache and "from the cache" in second.device
    assert any(tmp_path.iterdir())


def test_a_folder_and_a_video_through_the_pipeline_match_onnx_runtime(tiny_onnx, tmp_path):
    import cv2
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate(((40, 56), (64, 48), (40, 56), (52, 52), (40, 56))):
        cv2.imwrite(str(folder / f"{i}.png"), photo("coffee" if i % 2 else "chelsea", h, w))
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(7))
    outputs = {}
    for backend in ("openvino", "onnxruntime"):
        with open_backend(tiny_onnx, backend, precision="fp32") as opened:
            quiet = TranslateOptions(progress=False)
            assert translate(str(folder), str(tmp_path / backend), opened, quiet, log=lambda _: None).ok
            assert translate(str(clip), str(tmp_path / f"{backend}.mp4"), opened, quiet, log=lambda _: None).ok
        outputs[backend] = [cv2.imread(str(p)).astype(int) for p in output_files(tmp_path / backend)]
    assert levels(outputs["openvino"], outputs["onnxruntime"]).max() <= 1
    frames = read_clip(tmp_path / "openvino.mp4")[0]
    assert len(frames) == 7 and frames[0].shape == (48, 64, 3)


def test_ir_export_runs_and_keeps_the_metadata(tiny_onnx, tmp_path):
    ir = export_openvino(tiny_onnx, tmp_path / "tiny.xml", log=lambda _: None)
    assert ir.xml.is_file() and ir.bin.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin",
                                                                                                      "tiny.xml"]
    with open_backend(ir.xml) as backend:
        assert backend.name == "openvino" and backend.info.step == 1234 and backend.info.dynamic_hw
    assert levels(run_each(ir.xml, precision="fp32"), run_each(tiny_onnx, backend="onnxruntime")).max() <= 1
    half = export_openvino(tiny_onnx, tmp_path / "half.xml", fp16_weights=True, log=lambda _: None)
    assert half.bin.stat().st_size < 0.6 * ir.bin.stat().st_size
    ir.bin.unlink()
    with pytest.raises(BackendError, match="tiny.bin is missing"):
        open_backend(ir.xml)
    with pytest.raises(OpenVINOExportError, match="a .xml file"):
        export_openvino(tiny_onnx, tmp_path / "tiny.onnx2", log=lambda _: None)


def test_devices_openvino_cannot_use_are_one_line_errors(tiny_onnx):
    with pytest.raises(BackendError, match="OpenVINO runs on CPU, Intel GPUs and NPUs"):
        open_backend(tiny_onnx, "openvino", device="cuda")
    if "NPU" not in ovb.shared_core().available_devices:
        with pytest.raises(BackendError, match="OpenVINO sees CPU"):
            open_backend(tiny_onnx, "openvino", device="NPU")


def test_two_backends_closed_in_the_order_they_opened_survive_a_signal(tiny_onnx, tiny_float_onnx):
    """Each ov.Core's CPU plugin swaps the thread's alternate signal stack; two Cores destroyed in
    creation order left it pointing at freed memory, and the next signal was a SIGSEGV."""
    script = textwrap.dedent(f"""
        import gc, os, signal
        from nicegan.runtime.backends import open_backend
        first = open_backend({str(tiny_onnx)!r}, "openvino")
        second = open_backend({str(tiny_float_onnx)!r}, "openvino")
        first.close(); del first; gc.collect()
        second.close(); del second; gc.collect()
        signal.signal(signal.SIGUSR1, lambda *_: print("handled"))
        os.kill(os.getpid(), signal.SIGUSR1)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "handled", (done.returncode, done.stderr[-2000:])
