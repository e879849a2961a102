"""A TUNIT model from export to translate: the style as the graph's second input and the style
encoder's own graph (run by OpenCV) with its parity, a baked reference or pseudo-domain, the same
reference giving the same output on PyTorch, ONNX Runtime, OpenVINO and (fake) TensorRT, one style
for a whole video, and the one-line refusals."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.export.metadata import LATENT_NAME, ModelInfo, decode_styles
from nicegan.export.to_onnx import export_onnx
from nicegan.export.to_tensorrt import DimRange
from nicegan.runtime.backends import open_backend
from nicegan.runtime.styles import StyleChoice, first_populated_domain, read_reference
from nicegan_testutils import assert_within_one_level, random_crops, real_photos
from runtime_fixtures import distinct_frames, read_clip, write_clip
from test_tensorrt_backend_logic import make_engine
from test_tensorrt_backend_logic import open_backend as open_fake_engine

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def tunit_export(tunit_run, tmp_path_factory):
    """The uint8 export with the style as an input, and its style encoder beside it."""
    return export_onnx(tunit_run / "latest.pt", tmp_path_factory.mktemp("tunit_onnx") / "tunit.onnx",
                       log=lambda _: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "rocket.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(real_photos()["rocket"], cv2.COLOR_RGB2BGR))
    return path


def bgr_photos(count: int = 2, size: int = 32) -> np.ndarray:
    crops = random_crops(real_photos()["chelsea"], count, size, seed=5)
    return np.ascontiguousarray(np.stack(crops)[..., ::-1])


def populated(export) -> int:
    """A pseudo-domain with a mean style: which ones the tiny run's test images fall into depends
    on the CPU's kernels, not on the code under test."""
    return first_populated_domain(export.info)


def test_the_export_takes_the_style_as_a_second_input_and_writes_its_encoder(tunit_export, tunit_run):
    model = onnx.load(str(tunit_export.output))
    dims = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {"input": ["batch", "height", "width", 3], LATENT_NAME: [1, 8]}
    info = ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props})
    assert (info.arch, info.code, info.latent_dim, info.domains) == ("tunit", "style", 8, 2)
    assert info.style_encoder == "tunit_style.onnx" and info.size_multiple == 2
    assert decode_styles(info).shape == (2, 8)
    encoder = onnx.load(str(tunit_export.output.with_name(info.style_encoder)))
    assert ModelInfo.from_metadata({p.key: p.value for p in encoder.metadata_props}).role == "style-encoder"
    assert [i.name for i in encoder.graph.input] == ["input"] and [o.name for o in encoder.graph.output] == ["style"]
    names = [c.name for c in tunit_export.checks]
    assert "random, domain 0" in names and "random reference (OpenCV DNN)" in names
    assert tunit_export.passed


def test_the_same_reference_gives_the_same_output_on_every_backend(tunit_export, tunit_run, reference, tmp_path):
    frames = bgr_photos()
    small = DimRange.parse("32:32:64")   # the frames are 32 px, under the default profile's 64
    engine = make_engine(tunit_export.output, tmp_path, height=small, width=small)
    shutil.copy(tunit_export.output.with_name("tunit_style.onnx"), tmp_path)   # the encoder beside the engine
    backends = {"onnxruntime": open_backend(tunit_export.output, "onnxruntime"),
                "openvino": open_backend(tunit_export.output, "openvino", precision="fp32"),
                "torch": open_backend(tunit_run / "latest.pt", "torch", precision="fp32"),
                "tensorrt (fake engine)": open_fake_engine(engine)[0]}
    outputs, styles = {}, {}
    for name, backend in backends.items():
        StyleChoice(reference=str(reference)).apply(backend)
        styles[name] = backend.latent.copy()
        outputs[name] = backend.infer(frames)
        assert np.array_equal(backend.infer(frames), outputs[name])   # every time the same
        StyleChoice(domain=populated(tunit_export)).apply(backend)
        outputs[name, 1] = backend.infer(frames)
        backend.close()
    for name in backends:
        np.testing.assert_allclose(styles[name], styles["torch"], rtol=1e-4, atol=1e-4)
        assert_within_one_level(outputs[name], outputs["torch"])
        assert_within_one_level(outputs[name, 1], outputs["torch", 1])
    assert np.abs(outputs["torch"].astype(int) - outputs["torch", 1]).mean() > 0.5   # the style matters


def test_a_baked_reference_or_domain_is_a_one_input_graph_with_the_same_output(tunit_run, tunit_export, reference,
                                                                               tmp_path):
    frames = bgr_photos()
    with open_backend(tunit_export.output, "onnxruntime") as styled:
        for option, value in (("reference", str(reference)), ("domain", populated(tunit_export))):
            report = export_onnx(tunit_run / "latest.pt", tmp_path / f"{option}.onnx", log=lambda _: None,
                                 **{option: value})
            assert report.passed and [i.name for i in onnx.load(str(report.output)).graph.input] == ["input"]
            assert report.info.latent_dim == 0 and report.info.style.startswith(option)
            assert not (tmp_path / f"{option}_style.onnx").exists()
            StyleChoice(**{option: value}).apply(styled)
            with open_backend(report.output, "onnxruntime") as baked:
                assert_within_one_level(baked.infer(frames), styled.infer(frames))
    k = populated(tunit_export)
    default = export_onnx(tunit_run / "latest.pt", domain=k, parity=False, log=lambda _: None)
    assert default.output.name == f"latest_domain{k}.onnx"


def test_translate_picks_the_style_at_run_time_and_a_video_keeps_it(tunit_export, tunit_run, reference, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(3, 32, 32))
    for model in (tunit_export.output, tunit_run / "latest.pt"):
        out = tmp_path / f"frames_{model.suffix[1:]}"
        # fp32: the expected frames are fp32 ones (auto would be bf16 on a CPU with AVX512_BF16 or AMX)
        result = run("translate", clip, out, "-m", model, "--reference", reference, "--precision", "fp32",
                     "--no-progress")
        assert result.exit_code == 0, result.output
        assert f"style: of the reference {reference}" in result.output
        decoded, _ = read_clip(clip)
        with open_backend(model, precision="fp32") as backend:
            StyleChoice(reference=str(reference)).apply(backend)
            expected = backend.infer(np.stack(decoded))
        written = sorted(out.iterdir())
        assert len(written) == 3
        for path, want in zip(written, expected):
            assert_within_one_level(cv2.imread(str(path)), want)
    default = run("translate", clip, tmp_path / "default", "-m", tunit_export.output, "--no-progress")
    assert default.exit_code == 0 and f"style: pseudo-domain {populated(tunit_export)}'s mean (the default" in default.output


def test_the_reference_is_read_the_same_way_for_every_backend(reference):
    x = read_reference(reference, 32)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32 and -1 <= x.min() < x.max() <= 1


def test_info_shows_the_style_input(tunit_export, tunit_run):
    for model in (tunit_export.output, tunit_run / "latest.pt"):
        result = run("info", model)
        assert result.exit_code == 0, result.output
        assert "style: 8-d code, one per job: translate --reference IMG" in result.output
        assert "domain_styles: 2 x 8 float32" in result.output


@pytest.mark.parametrize("args, message", [
    (["--seed", 3], "--seed 3: this TUNIT model takes a style, not a random code"),
    (["--domain", 5], "--domain 5: this model has 2 pseudo-domains; choose 0..1"),
])
def test_style_model_refusals(tunit_export, tmp_path, args, message):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), bgr_photos(1)[0])
    result = run("translate", image, tmp_path / "out.png", "-m", tunit_export.output, *args)
    assert result.exit_code == 1 and message in result.output, result.output


def test_other_models_refuse_a_reference_and_engines_refuse_the_encoder(tiny_onnx, tunit_export, reference, tmp_path):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), bgr_photos(1, 64)[0])
    result = run("translate", image, tmp_path / "out.png", "-m", tiny_onnx, "--reference", reference)
    assert result.exit_code == 1 and "has no style input" in result.output
    from nicegan.export.to_tensorrt import TensorRTError
    with pytest.raises(TensorRTError, match="a TUNIT style encoder, which the runtime runs once per job"):
        make_engine(tunit_export.output.with_name("tunit_style.onnx"), tmp_path)
