"""`nicegan export trt` logic, against a recording fake of TensorRT 8.6 / 10.x / 11.x (tests/trt_fakes.py).

The fake's parser reads the real exported ONNX, so precision pinning is checked on the real node
names; what TensorRT itself would do with the network cannot be checked without a GPU.
"""
from __future__ import annotations

import json
import re

import onnx
import pytest
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.common import file_sha256
from nicegan.export.metadata import ModelInfo
from nicegan.export.to_tensorrt import (
    STRONG,
    WEAK,
    BuildOptions,
    DimRange,
    GpuIdentity,
    TensorRTError,
    build_engine,
    default_timing_cache,
    import_tensorrt,
    profile_shapes,
    read_sidecar,
)
from trt_fakes import VERSIONS, fake_tensorrt

GPU = GpuIdentity("NVIDIA Jetson AGX Orin", "8.7")
TRT8, TRT10, TRT11 = "8.6.1", "10.16.1.11", "11.4.0.106"
STATISTICS_OPS = {"ReduceMean", "Sqrt", "Div", "Sub"}


@pytest.fixture(scope="module")
def tiny_fp16_onnx(tiny_checkpoint, tmp_path_factory):
    from nicegan.export.to_onnx import export_onnx
    out = tmp_path_factory.mktemp("onnx16") / "tiny_fp16.onnx"
    return export_onnx(tiny_checkpoint, out, fp16=True, parity=False, log=lambda _: None).output


def build(trt, onnx_path, tmp_path, **options):
    engine = tmp_path / "model.engine"
    options.setdefault("timing_cache", tmp_path / "timing.cache")
    sidecar = build_engine(onnx_path, engine, BuildOptions(**options), trt=trt, gpu=GPU, log=lambda _: None)
    return engine, sidecar


def calls(trt, name):
    return [c[1:] for c in trt.calls if c[0] == name]


def test_weak_recipe_on_trt8_pins_exactly_the_float_norm_layers(tiny_onnx, tmp_path):
    trt = fake_tensorrt(TRT8)
    _, sidecar = build(trt, tiny_onnx, tmp_path)
    flag = trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    assert calls(trt, "Builder.create_network") == [(1 << int(flag),)]
    assert {"FP16", "OBEY_PRECISION_CONSTRAINTS"} <= {c[0] for c in calls(trt, "IBuilderConfig.set_flag")}
    pinned = {c[0] for c in calls(trt, "ILayer.precision")}
    assert {c[0] for c in calls(trt, "ILayer.set_output_type")} == pinned
    graph = onnx.shape_inference.infer_shapes(onnx.load(tiny_onnx)).graph
    float_names = {v.name for v in list(graph.value_info) + list(graph.output)
                   if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    statistics = {n.name for n in graph.node if n.op_type in STATISTICS_OPS and "/fp32/" in n.name
                  and all(o in float_names for o in n.output)}
    assert statistics and statistics <= pinned                      # every float mean/var/sqrt/div of a norm
    assert all("/fp32/" in name for name in pinned)                 # nothing outside the norm islands
    convs = {n.name for n in graph.node if n.op_type == "Conv"}
    shape_ops = {n.name for n in graph.node if n.op_type in ("Shape", "Gather", "ReduceProd")}
    assert convs and not convs & pinned and not shape_ops & pinned
    assert sidecar["tensorrt"]["recipe"] == WEAK
    assert sidecar["tensorrt"]["fp32_pinned_layers"] == len(pinned)


@pytest.mark.parametrize("version", [v for v in VERSIONS if not v.startswith("8.")])
def test_strong_recipe_on_trt10_and_11_sets_no_precision(version, tiny_fp16_onnx, tmp_path):
    trt = fake_tensorrt(version)
    _, sidecar = build(trt, tiny_fp16_onnx, tmp_path)
    strongly_typed = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    assert calls(trt, "Builder.create_network") == [(1 << int(strongly_typed),)]
    assert calls(trt, "IBuilderConfig.set_flag") == []
    assert calls(trt, "ILayer.precision") == [] and calls(trt, "ILayer.set_output_type") == []
    assert sidecar["tensorrt"]["recipe"] == STRONG


@pytest.mark.parametrize("version", [TRT10, TRT11])
def test_fp32_onnx_to_a_strongly_typed_build_is_explained(version, tiny_onnx, tmp_path):
    trt = fake_tensorrt(version)
    with pytest.raises(TensorRTError, match=r"FP32 ONNX.*nicegan export onnx --fp16") as error:
        build(trt, tiny_onnx, tmp_path)
    assert ("--recipe weak" in str(error.value)) == (version == TRT10)
    assert calls(trt, "Builder.build_serialized_network") == [] and not (tmp_path / "model.engine").exists()


def test_weak_recipe_on_request_on_trt10_and_refused_on_trt11(tiny_onnx, tmp_path):
    trt = fake_tensorrt(TRT10)
    build(trt, tiny_onnx, tmp_path, recipe="weak")
    assert calls(trt, "Builder.create_network") == [(0,)]    # EXPLICIT_BATCH is implied in 10.x
    assert ("FP16",) in calls(trt, "IBuilderConfig.set_flag") and calls(trt, "ILayer.precision")
    with pytest.raises(TensorRTError, match="removed in 11"):
        build(fake_tensorrt(TRT11), tiny_onnx, tmp_path, recipe="weak")


def test_default_profile_covers_1080p_for_light_models(tiny_onnx):
    info = ModelInfo.from_metadata({p.key: p.value for p in onnx.load(tiny_onnx).metadata_props})
    shapes = profile_shapes(info, BuildOptions().batch, None, None)
    assert shapes["min"] == (1, 64, 64, 3)
    assert shapes["opt"] == (2, info.img_size, info.img_size, 3)
    assert shapes["max"][1] >= 1080 and shapes["max"][2] >= 1920
    float_shapes = profile_shapes(ModelInfo(io="float"), DimRange(1, 4, 8), DimRange.parse("128:256:512"), None)
    assert float_shapes["opt"] == (4, 3, 256, 256) and float_shapes["max"][:3] == (8, 3, 512)
    with pytest.raises(TensorRTError, match="multiple of 4"):
        profile_shapes(info, DimRange(1, 1, 1), DimRange.parse("64:66:128"), None)


def test_full_models_have_fixed_height_and_width():
    info = ModelInfo(light=False, dynamic_hw=False, img_size=256)
    shapes = profile_shapes(info, DimRange.parse("1:4:8"), None, None)
    assert {s[1:3] for s in shapes.values()} == {(256, 256)} and shapes["max"][0] == 8
    with pytest.raises(TensorRTError, match="only runs at 256x256"):
        profile_shapes(info, DimRange(1, 1, 1), DimRange.parse("512"), None)


@pytest.mark.parametrize("text", ["0", "8:4:16", "1:2", "a:b:c"])
def test_bad_ranges_are_refused(text):
    with pytest.raises(TensorRTError, match="bad range"):
        DimRange.parse(text)


def test_profile_and_options_reach_the_builder_config(tiny_fp16_onnx, tmp_path):
    trt = fake_tensorrt(TRT10)
    build(trt, tiny_fp16_onnx, tmp_path, batch=DimRange.parse("2:4:8"), height=DimRange.parse("64:128:256"),
          width=DimRange.parse("96"), workspace_mib=512, optimization_level=5)
    assert calls(trt, "IOptimizationProfile.set_shape") == [
        ("input", (2, 64, 96, 3), (4, 128, 96, 3), (8, 256, 96, 3))]
    assert calls(trt, "IBuilderConfig.set_memory_pool_limit") == [("WORKSPACE", 512 << 20)]
    assert calls(trt, "IBuilderConfig.builder_optimization_level") == [(5,)]
    assert [c[0].name for c in calls(trt, "IBuilderConfig.profiling_verbosity")] == ["DETAILED"]


def test_static_onnx_fixes_the_profile_and_allows_dla(tiny_fp16_onnx, tmp_path):
    model = onnx.load(tiny_fp16_onnx)
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 128, 96, 3)):
        dim.dim_value = value
    static = tmp_path / "static.onnx"
    onnx.save(model, static)
    trt = fake_tensorrt(TRT10, dla_cores=1)
    _, sidecar = build(trt, static, tmp_path, dla_core=0)       # defaults give way to the fixed dims
    assert calls(trt, "IOptimizationProfile.set_shape") == [("input",) + ((1, 128, 96, 3),) * 3]
    assert sidecar["tensorrt"]["dla_core"] == 0
    with pytest.raises(TensorRTError, match=r"fixed dimension 1 = 128 .*leave that option out"):
        build(fake_tensorrt(TRT10), static, tmp_path, height=DimRange.parse("64:128:256"))


def test_timing_cache_is_written_then_reused(tiny_fp16_onnx, tmp_path):
    cache = tmp_path / "cache" / "timing.cache"
    trt = fake_tensorrt(TRT11)
    build(trt, tiny_fp16_onnx, tmp_path, timing_cache=cache)
    assert calls(trt, "IBuilderConfig.create_timing_cache") == [(b"",)]
    first = cache.read_bytes()
    trt = fake_tensorrt(TRT11)
    build(trt, tiny_fp16_onnx, tmp_path, timing_cache=cache)
    assert calls(trt, "IBuilderConfig.create_timing_cache") == [(first,)]
    default = default_timing_cache(TRT11, GPU)
    assert TRT11 in default.name and "sm87" in default.name and "Orin" in default.name


def test_dla_needs_static_shapes_and_an_existing_core(tiny_fp16_onnx, tmp_path):
    with pytest.raises(TensorRTError, match="DLA engines need static shapes"):
        build(fake_tensorrt(TRT10, dla_cores=2), tiny_fp16_onnx, tmp_path, dla_core=0)
    static = dict(batch=DimRange.parse("1"), height=DimRange.parse("256"), width=DimRange.parse("256"))
    with pytest.raises(TensorRTError, match="has 0 DLA core"):
        build(fake_tensorrt(TRT10, dla_cores=0), tiny_fp16_onnx, tmp_path, dla_core=0, **static)
    trt = fake_tensorrt(TRT10, dla_cores=2)
    _, sidecar = build(trt, tiny_fp16_onnx, tmp_path, dla_core=1, **static)
    assert [c[0].name for c in calls(trt, "IBuilderConfig.default_device_type")] == ["DLA"]
    assert calls(trt, "IBuilderConfig.DLA_core") == [(1,)]
    assert ("GPU_FALLBACK",) in calls(trt, "IBuilderConfig.set_flag")
    assert sidecar["tensorrt"]["dla_core"] == 1


def test_sidecar_describes_the_engine(tiny_onnx, tmp_path):
    trt = fake_tensorrt(TRT8)
    engine, sidecar = build(trt, tiny_onnx, tmp_path)
    assert read_sidecar(engine) == sidecar
    assert json.loads((tmp_path / "model.engine.json").read_text()) == sidecar
    info = ModelInfo.from_metadata({p.key: p.value for p in onnx.load(tiny_onnx).metadata_props})
    assert sidecar["model"] == {**info.__dict__, "precision": "fp16"} and info.precision == "fp32"
    built = sidecar["tensorrt"]
    assert (built["version"], built["gpu"], built["compute_capability"]) == (TRT8, GPU.name, "8.7")
    assert sidecar["onnx_sha256"] == file_sha256(tiny_onnx) and sidecar["engine_sha256"] == file_sha256(engine)
    assert built["io"] == [{"name": "input", "mode": "input", "dtype": "UINT8", "shape": [-1, -1, -1, 3]},
                           {"name": "output", "mode": "output", "dtype": "UINT8", "shape": [-1, -1, -1, 3]}]
    assert built["profiles"][0]["input"]["opt"] == [2, info.img_size, info.img_size, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.engine", "model.engine.json", "timing.cache"]


def test_failed_build_and_parser_errors_are_clear_and_write_nothing(tiny_fp16_onnx, tmp_path):
    with pytest.raises(TensorRTError, match="could not build .*--workspace"):
        build(fake_tensorrt(TRT11, build_fails=True), tiny_fp16_onnx, tmp_path)
    errors = ("In node 12 (parseGraph): INVALID_NODE: Pad with dynamic axes", "second error")
    with pytest.raises(TensorRTError, match=re.escape(str(tiny_fp16_onnx)) + ".*INVALID_NODE.*second error"):
        build(fake_tensorrt(TRT11, parser_errors=errors), tiny_fp16_onnx, tmp_path)
    assert not (tmp_path / "model.engine").exists() and not (tmp_path / "model.engine.json").exists()


def test_onnx_without_nicegan_metadata_is_refused(tmp_path):
    bare = tmp_path / "bare.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), bare)
    with pytest.raises(TensorRTError, match="no nicegan metadata"):
        build(fake_tensorrt(TRT11), bare, tmp_path)


def test_missing_tensorrt_is_one_clear_line(tiny_fp16_onnx, tmp_path):
    try:
        import_tensorrt()
        pytest.skip("tensorrt is installed here")
    except TensorRTError as exc:
        assert "pip install 'nicegan[tensorrt]'" in str(exc) and "python3-libnvinfer" in str(exc)
    result = CliRunner().invoke(cli, ["export", "trt", str(tiny_fp16_onnx), "-o", str(tmp_path / "m.engine")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: TensorRT is not available") and result.output.count("\n") == 1


def test_fp16_onnx_on_trt8_builds_with_a_note(tiny_fp16_onnx, tmp_path):
    lines = []
    build_engine(tiny_fp16_onnx, tmp_path / "m.engine", BuildOptions(timing_cache=tmp_path / "t.cache"),
                 trt=fake_tensorrt(TRT8), gpu=GPU, log=lines.append)
    assert any(line.startswith("note: weakly typed builds are meant for the FP32 export") for line in lines)
    assert any("building weakly-typed FP16 engine with TensorRT 8.6.1" in line for line in lines)
