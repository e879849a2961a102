"""nicegan export onnx: real exports of tiny trained-like checkpoints, checked with ONNX Runtime."""
from __future__ import annotations

import shutil
import warnings
from dataclasses import replace

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

import nicegan.export.to_onnx as to_onnx
from nicegan.cli import cli
from nicegan.common import file_sha256
from nicegan.export.metadata import ModelInfo
from nicegan.export.stable_norms import StagedAdaILN, StagedILN
from nicegan.export.to_onnx import ExportError, export_onnx
from nicegan.export.translator import TranslatorError, UInt8IO, load_translator
from nicegan.models.nicegan.networks import ILN, adaILN
from nicegan_testutils import TINY, TINY_FULL, make_trained_like, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _export(source, out, **kwargs):
    lines: list[str] = []
    report = export_onnx(source, out, log=lines.append, **kwargs)
    return report, "\n".join(lines)


def _input_dims(model: onnx.ModelProto) -> list:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def _mean_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == "ReduceMean"]


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory):
    return save_checkpoint(make_trained_like(TINY_FULL, seed=2), tmp_path_factory.mktemp("full") / "full.pt", step=9)


def test_light_uint8_export_is_dynamic_carries_metadata_and_matches_torch(tiny_checkpoint, tmp_path):
    out = tmp_path / "light.onnx"
    report, log = _export(tiny_checkpoint, out)
    assert report.passed and out.is_file() and report.simplified
    assert {"random", "random non-square", "photos"} <= {c.name for c in report.checks}
    assert "photos" in log and "max" in log
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 18
    assert _input_dims(model) == ["batch", "height", "width", 3]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    info = ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props})
    assert info == report.info
    assert (info.arch, info.io, info.precision, info.light, info.dynamic_hw, info.img_size, info.step) == \
        ("nicegan", "uint8", "fp32", True, True, 64, 1234)
    assert info.source_sha256 == file_sha256(tiny_checkpoint)
    assert any("/fp32/" in n.name for n in model.graph.node)     # norm scopes a TRT 8 build can pin

    # Independent check at a size and batch the export's own parity did not use.
    translator, _ = load_translator(tiny_checkpoint)
    frames = np.random.default_rng(5).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    got = ort.InferenceSession(str(out)).run(None, {"input": frames})[0]
    with torch.no_grad():
        want = UInt8IO(translator)(torch.from_numpy(frames)).numpy()
    assert got.shape == frames.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("target, opset", [("trt8", 17), ("trt10", 18)])
def test_float_export_per_target_opset(tiny_checkpoint, tmp_path, target, opset):
    out = tmp_path / f"{target}.onnx"
    report, _ = _export(tiny_checkpoint, out, io="float", target=target, direction="b2a")
    model = onnx.load(str(out))
    assert report.opset == opset == model.opset_import[0].version
    assert _input_dims(model) == ["batch", 3, "height", "width"]
    means = _mean_nodes(model)
    assert means
    if opset == 17:   # TensorRT 8.6 reads ReduceMean axes only from the attribute
        assert all(len(n.input) == 1 and any(a.name == "axes" for a in n.attribute) for n in means)
    else:
        assert all(len(n.input) == 2 for n in means)
    # TensorRT needs constant pads (no dynamic axes input) and PixelShuffle's CRD channel order.
    initializers = {i.name for i in model.graph.initializer}
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert pads and all(len(n.input) == 2 and n.input[1] in initializers for n in pads)
    modes = [onnx.helper.get_attribute_value(a) for n in model.graph.node if n.op_type == "DepthToSpace"
             for a in n.attribute if a.name == "mode"]
    assert modes == [b"CRD", b"CRD"]
    translator, _ = load_translator(tiny_checkpoint, "b2a")
    x = torch.rand(2, 3, 52, 76) * 2 - 1
    got = ort.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = translator(x).numpy()
    assert np.abs(got - want).max() < 1e-4
    assert all(c.max_abs < 1e-4 for c in report.checks)


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in infos}


def test_fp16_graph_has_fp32_norm_islands_and_stays_in_tolerance(tiny_checkpoint, tmp_path):
    out = tmp_path / "half.onnx"
    report, log = _export(tiny_checkpoint, out, io="float", fp16=True)
    assert report.info.precision == "fp16" and report.islands == 9
    names = {c.name for c in report.checks}
    assert {"saturated", "photos x4 contrast"} <= names and "saturated" in log
    assert all(c.passed and c.nonfinite == 0 and c.max_abs <= 2e-2 for c in report.checks)
    model = onnx.load(str(out))
    types = _value_types(model)
    assert types["input"] == types["output"] == onnx.TensorProto.FLOAT   # float32 graph I/O
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    assert {i.data_type for i in model.graph.initializer if i.name in conv_weights} == {onnx.TensorProto.FLOAT16}
    assert sum(n.op_type == "Cast" for n in model.graph.node) >= 2 * report.islands
    for node in _mean_nodes(model):   # every statistic is computed in FP32, inside an island
        assert "/fp32/" in node.name and types[node.input[0]] == onnx.TensorProto.FLOAT, node.name
    pools = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]   # light style pooling
    assert len(pools) == 1 and types[pools[0].input[0]] == onnx.TensorProto.FLOAT


def test_fp16_survives_activations_that_overflow_fp16_squares(tmp_path):
    """A model whose norm inputs exceed 256: (x - mean)^2 in FP16 would be inf without the islands."""
    nets = make_trained_like(seed=7)
    with torch.no_grad():
        nets.gen2B.UpBlock0[1].weight.mul_(1000.0)
        nets.gen2B.UpBlock0[1].bias.mul_(1000.0)
    ckpt = save_checkpoint(nets, tmp_path / "loud.pt")
    report, _ = _export(ckpt, tmp_path / "loud.onnx", fp16=True, io="float")
    assert report.norm_input_peak > 256
    assert report.passed and all(c.nonfinite == 0 for c in report.checks)


def test_uint8_fp16_export_pixel_parity(tiny_checkpoint, tmp_path):
    report, log = _export(tiny_checkpoint, tmp_path / "u8half.onnx", fp16=True, target="trt8")
    assert report.opset == 17 and report.info.io == "uint8" and report.info.precision == "fp16"
    assert all(c.unit == " lv" and c.max_abs <= 3 for c in report.checks) and " lv" in log


def test_full_model_exports_at_fixed_size_with_dynamic_batch(full_checkpoint, tmp_path):
    out = tmp_path / "full.onnx"
    report, _ = _export(full_checkpoint, out)
    assert report.passed and not report.info.light and not report.info.dynamic_hw
    assert "random non-square" not in {c.name for c in report.checks}
    assert _input_dims(onnx.load(str(out))) == ["batch", 64, 64, 3]
    with pytest.raises(ExportError, match="training size 64x64"):
        export_onnx(full_checkpoint, tmp_path / "bad.onnx", height=128, width=128, log=lambda _: None)


def test_fixed_batch_and_size_for_light(tiny_checkpoint, tmp_path):
    out = tmp_path / "fixed.onnx"
    report, _ = _export(tiny_checkpoint, out, batch=3, height=48, width=48, simplify=False)
    assert _input_dims(onnx.load(str(out))) == [3, 48, 48, 3]
    assert (report.info.img_size, report.info.dynamic_hw, report.simplified) == (48, False, False)
    assert report.passed


def test_parity_uses_given_real_images(tiny_checkpoint, tmp_path):
    import cv2

    from nicegan_testutils import real_photos
    paths = []
    for name in ("chelsea", "rocket"):
        paths.append(tmp_path / f"{name}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(real_photos()[name], cv2.COLOR_RGB2BGR))
    report, _ = _export(tiny_checkpoint, tmp_path / "m.onnx", io="float", real_images=paths)
    photos = next(c for c in report.checks if c.name == "photos")
    assert photos.shape == (2, 64, 64, 3) and photos.passed
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ExportError, match="notes.jpg: not a readable image"):
        export_onnx(tiny_checkpoint, tmp_path / "n.onnx", real_images=[tmp_path / "notes.jpg"], log=lambda _: None)


def test_onnxsim_failure_falls_back_with_a_warning(tiny_checkpoint, tmp_path, monkeypatch):
    import onnxsim

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated simplifier crash")
    monkeypatch.setattr(onnxsim, "simplify", broken)
    report, log = _export(tiny_checkpoint, tmp_path / "raw.onnx", io="float")
    assert "warning: onnxsim failed" in log and not report.simplified and report.passed


def test_parity_failure_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(to_onnx, "FP32_TOLERANCE", 0.0)
    out = tmp_path / "strict.onnx"
    with pytest.raises(ExportError, match="parity out of tolerance") as err:
        export_onnx(tiny_checkpoint, out, io="float", simplify=False, log=lambda _: None)
    assert str(out) in str(err.value)
    assert list(tmp_path.iterdir()) == []   # neither the output nor its temp file


@pytest.mark.parametrize("fp16", [False, True])
def test_residual_export_adds_the_decoded_change_to_the_input(tmp_path, fp16):
    nets = make_trained_like(replace(TINY, residual=True), seed=3)
    with torch.no_grad():  # off the identity it starts at
        nets.gen2B.UpBlock2[-2].weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    residual = save_checkpoint(nets, tmp_path / "residual.pt")
    plain_ckpt = torch.load(residual, weights_only=True)
    plain_ckpt["config"]["residual"] = False
    plain_path = tmp_path / "plain.pt"
    torch.save(plain_ckpt, plain_path)
    report, _ = _export(residual, tmp_path / "residual.onnx", io="float", fp16=fp16)
    assert report.passed
    x = np.random.default_rng(4).random((2, 3, 44, 60), dtype=np.float32) * 2 - 1
    got = ort.InferenceSession(str(report.output)).run(None, {"input": x})[0]
    plain, _ = load_translator(plain_path)
    with torch.no_grad():
        decoded = plain(torch.from_numpy(x)).numpy()
    assert np.abs(decoded).mean() > 1e-2
    assert np.abs(got - np.clip(x + decoded, -1, 1)).max() < (2e-2 if fp16 else 1e-4)


def _run_enlarged(translator: torch.nn.Module, x: np.ndarray, scale: int) -> np.ndarray:
    """The --scale graph computed independently: cv2 bilinear up (half-pixel, edge-replicated, as
    torch's align_corners=False), the plain network, cv2 INTER_AREA down."""
    h, w = x.shape[2:]
    up = np.stack([cv2.resize(img.transpose(1, 2, 0), (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
                   for img in x]).transpose(0, 3, 1, 2)
    with torch.no_grad():
        y = translator(torch.from_numpy(np.ascontiguousarray(up))).numpy()
    return np.stack([cv2.resize(img.transpose(1, 2, 0), (w, h), interpolation=cv2.INTER_AREA)
                     for img in y]).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("fp16", [False, True])
def test_scaled_export_runs_the_network_on_the_enlarged_input(tiny_checkpoint, tmp_path, fp16):
    out = tmp_path / "x2.onnx"
    report, _ = _export(tiny_checkpoint, out, io="float", fp16=fp16, scale=2)
    assert report.passed and report.info.scale == 2
    model = onnx.load(str(out))
    assert ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props}).scale == 2
    assert {"Resize", "AveragePool"} <= {n.op_type for n in model.graph.node}
    plain, _ = load_translator(tiny_checkpoint)
    x = (np.random.default_rng(3).random((2, 3, 36, 52), dtype=np.float32) * 2 - 1)
    got = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    want = _run_enlarged(plain, x, 2)
    assert got.shape == x.shape
    assert np.abs(got - want).max() < (2e-2 if fp16 else 1e-4)
    with torch.no_grad():
        native = plain(torch.from_numpy(x)).numpy()
    assert np.abs(want - native).mean() > 1e-2   # the scale changes what the network sees


def test_scale_is_checked_before_loading_and_refused_for_full_models(full_checkpoint, tmp_path):
    with pytest.raises(TranslatorError, match="--scale 5: choose one of 1, 2, 3, 4"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx", scale=5, log=lambda _: None)
    with pytest.raises(TranslatorError, match="full .*drop --scale"):
        export_onnx(full_checkpoint, tmp_path / "x.onnx", scale=2, log=lambda _: None)
    from nicegan.cli import SCALE_RANGE
    from nicegan.export.translator import SCALES
    assert (SCALE_RANGE.min, SCALE_RANGE.max) == (min(SCALES), max(SCALES))   # the CLI offers what loads


@pytest.mark.parametrize("kwargs, needle", [
    ({"height": 50, "width": 50}, "multiple of 4"),
    ({"height": 64}, "both --height and --width"),
    ({"height": 48, "width": 64}, "must be square"),
    ({"target": "trt8", "opset": 18}, "opsets <= 17"),
    ({"io": "rgb"}, "--io must be"),
    ({"default_img_size": 250}, "--img-size 250 is not a multiple of 4"),
])
def test_bad_options_fail_with_one_line(tiny_checkpoint, tmp_path, kwargs, needle):
    with pytest.raises(ExportError, match=needle) as err:
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx", log=lambda _: None, **kwargs)
    assert "\n" not in str(err.value)


def test_cli_default_output_name_and_errors(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "run7_params_latest.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "onnx", str(ckpt), "--io", "float", "--direction", "b2a",
                                 "--no-simplify"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run7_params_latest_b2a_float.onnx").is_file()
    assert "parity" in result.output and "photos" in result.output

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt.read_bytes()[:1000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, needle in ((tmp_path / "missing.pt", "no such checkpoint"), (corrupt, "not a PyTorch checkpoint"),
                         (foreign, "not a NICE-GAN checkpoint")):
        result = runner.invoke(cli, ["export", "onnx", str(path)])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0] and str(path) in lines[0]
    result = runner.invoke(cli, ["export", "onnx", str(ckpt), "--height", "62", "--width", "62"])
    assert result.exit_code == 1 and "multiple of 4" in result.output


def _onnx_run(module: torch.nn.Module, trace: tuple[torch.Tensor, ...], run: tuple[torch.Tensor, ...],
              path) -> np.ndarray:
    names = [f"in{i}" for i in range(len(trace))]
    axes = {names[0]: {2: "h", 3: "w"}} if trace[0].dim() == 4 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # the TorchScript exporter's notice
        torch.onnx.export(module, trace, str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=["out"], dynamic_axes=axes)
    return ort.InferenceSession(str(path)).run(None, {n: t.numpy() for n, t in zip(names, run)})[0]


def test_staged_norms_equal_the_official_ones_at_any_size(tmp_path):
    """Traced at 16x16, run at 40x24: the unbiased-variance factors must follow the run-time size."""
    torch.manual_seed(0)
    iln, ada = ILN(8), adaILN(8)
    with torch.no_grad():
        for norm in (iln, ada):
            norm.rho.copy_(torch.randn(1, 8, 2))
        iln.gamma.copy_(torch.rand(1, 8, 1, 1) + 0.5)
    x, gamma, beta = torch.randn(2, 8, 40, 24) * 3 + 1, torch.rand(2, 8) + 0.5, torch.randn(2, 8)
    with torch.no_grad():
        want_iln = iln.double()(x.double()).numpy()
        want_ada = ada.double()(x.double(), gamma.double(), beta.double()).numpy()
    iln.float(), ada.float()
    small = torch.randn(2, 8, 16, 16)
    got_iln = _onnx_run(StagedILN(iln), (small,), (x,), tmp_path / "iln.onnx")
    got_ada = _onnx_run(StagedAdaILN(ada), (small, gamma, beta), (x, gamma, beta), tmp_path / "ada.onnx")
    assert np.abs(got_iln - want_iln).max() < 1e-5 and np.abs(got_ada - want_ada).max() < 1e-5


def test_staged_statistics_are_more_accurate_over_a_million_values(tmp_path):
    """Why the export uses them: one ReduceMean over C*H*W = 1 M values drifts in ONNX Runtime."""
    torch.manual_seed(1)
    norm = ILN(64)
    with torch.no_grad():
        norm.rho.copy_(torch.randn(1, 64, 2))
    x = torch.randn(1, 64, 128, 128) * 2 + 3
    with torch.no_grad():
        want = norm.double()(x.double()).numpy()
    norm.float()
    one_pass = np.abs(_onnx_run(norm, (x,), (x,), tmp_path / "one.onnx") - want).max()
    staged = np.abs(_onnx_run(StagedILN(norm), (x,), (x,), tmp_path / "staged.onnx") - want).max()
    assert staged < 2e-6 and staged * 5 < one_pass
