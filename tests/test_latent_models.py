"""A latent (MSGAN) model from export to translate: the code as the graph's second input, the export
parity per seed, the same seed giving the same output on ONNX Runtime, OpenVINO, PyTorch and
(fake) TensorRT, one code for a whole video, `translate --seed/--samples`, `info`, and the one-line
refusals of a deterministic model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.export.metadata import LATENT_NAME, ModelInfo, latent_for_seed
from nicegan.export.to_onnx import export_onnx
from nicegan.models.cyclegan.checkpoint import CycleGANNetConfig, build_networks
from nicegan.runtime.backends import open_backend
from nicegan.trainer.checkpoint import atomic_torch_save
from nicegan_testutils import (
    TINY,
    assert_within_one_level,
    make_trained_like,
    random_crops,
    real_photos,
    save_checkpoint,
)
from runtime_fixtures import distinct_frames, read_clip, write_clip
from test_tensorrt_backend_logic import make_engine
from test_tensorrt_backend_logic import open_backend as open_fake_engine

pytestmark = pytest.mark.usefixtures("torch_single_thread")

LATENT = 4


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def latent_checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(make_trained_like(replace(TINY, latent_dim=LATENT)),
                           tmp_path_factory.mktemp("latent") / "latent.pt")


@pytest.fixture(scope="module")
def latent_export(latent_checkpoint, tmp_path_factory):
    """The uint8 export with its parity report (checked with the codes of seeds 0, 1, 2)."""
    return export_onnx(latent_checkpoint, tmp_path_factory.mktemp("latent_onnx") / "latent.onnx",
                       log=lambda _: None)


def bgr_photos(count: int = 2, height: int = 64, width: int = 96) -> np.ndarray:
    crops = random_crops(real_photos()["chelsea"], count, max(height, width), seed=5)
    return np.ascontiguousarray(np.stack(crops)[:, :height, :width, ::-1])


def ort_translate(onnx_path: Path, frames: np.ndarray, seed: int) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": frames, LATENT_NAME: latent_for_seed(seed, LATENT)})[0]


def test_the_export_takes_the_code_as_a_second_input_and_checks_every_seed(latent_export):
    model = onnx.load(str(latent_export.output))
    dims = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {"input": ["batch", "height", "width", 3], LATENT_NAME: [1, LATENT]}
    info = ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.latent_dim == LATENT
    assert [c.name for c in latent_export.checks][:3] == ["random, seed 0", "random, seed 1", "random, seed 2"]
    assert latent_export.passed and len(latent_export.checks) == 9


def test_a_latent_fp16_export_stays_within_its_tolerance_for_every_seed(latent_checkpoint, tmp_path):
    report = export_onnx(latent_checkpoint, tmp_path / "fp16.onnx", io="float", fp16=True, log=lambda _: None)
    assert report.passed and {c.name.split(", ")[1] for c in report.checks} == {"seed 0", "seed 1", "seed 2"}
    assert max(c.max_abs for c in report.checks) <= 2e-2


def test_the_same_seed_gives_the_same_output_on_every_backend(latent_export, latent_checkpoint, tmp_path):
    frames = bgr_photos()
    engine = make_engine(latent_export.output, tmp_path)
    backends = {"onnxruntime": open_backend(latent_export.output, "onnxruntime"),
                "openvino": open_backend(latent_export.output, "openvino", precision="fp32"),
                "torch": open_backend(latent_checkpoint, "torch", precision="fp32"),
                "tensorrt (fake engine)": open_fake_engine(engine)[0]}
    outputs = {}
    for name, backend in backends.items():
        assert backend.info.latent_dim == LATENT
        for seed in (0, 3):
            backend.use_seed(seed)
            outputs[name, seed] = backend.infer(frames)
        backend.close()
    for seed in (0, 3):
        reference = ort_translate(latent_export.output, frames, seed)
        for name in backends:
            assert_within_one_level(outputs[name, seed], reference)
    assert np.abs(outputs["onnxruntime", 0].astype(int) - outputs["onnxruntime", 3]).mean() > 1


def test_the_engine_profile_holds_the_code_as_one_static_shape(latent_export, tmp_path):
    from nicegan.export.to_tensorrt import read_sidecar
    sidecar = read_sidecar(make_engine(latent_export.output, tmp_path))
    assert sidecar["tensorrt"]["profiles"][0][LATENT_NAME] == {k: [1, LATENT] for k in ("min", "opt", "max")}
    assert sidecar["model"]["latent_dim"] == LATENT


def test_a_latent_cyclegan_run_exports_with_its_code(tmp_path):
    config = CycleGANNetConfig(net_g="resnet_6blocks", ngf=4, ndf=4, n_layers_d=2, img_size=32, latent_dim=LATENT)
    nets = build_networks(config)
    ckpt = {name: net.state_dict() for name, net in nets.as_dict().items()}
    ckpt.update(G_optimizer={}, D_optimizer={}, start_iter=0, config=config.to_dict(), train_state={})
    atomic_torch_save(ckpt, tmp_path / "latest.pt")
    report = export_onnx(tmp_path / "latest.pt", tmp_path / "g.onnx", direction="b2a", log=lambda _: None)
    assert report.passed and report.info.latent_dim == LATENT
    frames = bgr_photos(1, 32, 32)
    assert np.abs(ort_translate(report.output, frames, 0).astype(int) - ort_translate(report.output, frames, 1)).max() > 0


def test_samples_write_one_file_per_seed_with_the_seed_in_the_name(latent_export, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    frames = bgr_photos()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"p{i}.png"), frame)
    result = run("translate", folder, tmp_path / "out", "-m", latent_export.output, "--samples", 2, "--seed", 7,
                 "--backend", "onnxruntime", "--no-progress")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0_s7.png", "p0_s8.png", "p1_s7.png", "p1_s8.png"]
    for seed in (7, 8):
        expected = ort_translate(latent_export.output, frames, seed)
        for i in range(len(frames)):
            assert_within_one_level(cv2.imread(str(tmp_path / "out" / f"p{i}_s{seed}.png")), expected[i])
    single = run("translate", folder / "p0.png", tmp_path / "one.png", "-m", latent_export.output, "--samples", 2)
    assert single.exit_code == 0 and (tmp_path / "one_s0.png").is_file() and (tmp_path / "one_s1.png").is_file()


def test_a_video_keeps_one_code_for_all_its_frames(latent_export, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(4))
    result = run("translate", clip, tmp_path / "frames", "-m", latent_export.output, "--seed", 5,
                 "--backend", "onnxruntime", "--no-progress")
    assert result.exit_code == 0, result.output
    decoded, _ = read_clip(clip)
    written = sorted((tmp_path / "frames").iterdir())
    assert len(written) == 4
    expected = ort_translate(latent_export.output, np.stack(decoded), 5)
    for path, want in zip(written, expected):
        assert_within_one_level(cv2.imread(str(path)), want)
    videos = run("translate", clip, tmp_path / "look.mp4", "-m", latent_export.output, "--samples", 2,
                 "--no-progress")
    assert videos.exit_code == 0, videos.output
    assert [len(read_clip(tmp_path / f"look_s{s}.mp4")[0]) for s in (0, 1)] == [4, 4]


def test_info_shows_the_code_size(latent_export, latent_checkpoint, tiny_onnx):
    for model in (latent_export.output, latent_checkpoint):
        result = run("info", model)
        assert result.exit_code == 0, result.output
        assert f"latent_dim: {LATENT}" in result.output and f"latent: {LATENT}-d code" in result.output
    assert "input z: float32 [1, 4]" in run("info", latent_export.output).output
    assert "latent: none" in run("info", tiny_onnx).output


@pytest.mark.parametrize("args", [["--seed", "1"], ["--samples", "2"]])
def test_a_deterministic_model_refuses_seed_and_samples(tiny_onnx, tmp_path, args):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), bgr_photos(1)[0])
    result = run("translate", image, tmp_path / "b.png", "-m", tiny_onnx, *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{' '.join(args)}: this model has no latent code (latent_dim 0)" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert "backend:" not in result.output, "refused before the job starts, not after its backend line"


def test_samples_with_shards_say_what_to_run_instead(latent_export, tmp_path):
    result = run("translate", tmp_path, tmp_path / "out", "-m", latent_export.output, "--samples", 2, "--shard", "0/2")
    assert result.exit_code == 1 and "--seed S --suffix _sS" in result.output
