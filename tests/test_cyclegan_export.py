"""CycleGAN ResNet generators (junyanz and vintagify layouts) go through the same export."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nicegan.common import file_sha256
from nicegan.export.metadata import ModelInfo
from nicegan.export.to_onnx import export_onnx
from nicegan.export.translator import TranslatorError, load_translator
from nicegan.models.cyclegan.networks import CycleGANConfig, CycleGANGenerator

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SMALL = {"ngf": 8, "n_blocks": 2}


def _junyanz_state(seed: int) -> dict[str, torch.Tensor]:
    """junyanz layout: affine-free InstanceNorm, residual blocks under `conv_block`."""
    torch.manual_seed(seed)
    return CycleGANGenerator(CycleGANConfig(affine_norm=False, **SMALL)).state_dict()


def _vintagify_state(seed: int) -> dict[str, torch.Tensor]:
    """vintagify layout: affine InstanceNorm (non-trivial scale/shift) and blocks named `block`."""
    torch.manual_seed(seed)
    net = CycleGANGenerator(CycleGANConfig(affine_norm=True, **SMALL))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.copy_(1 + 0.3 * torch.randn_like(module.weight))
                module.bias.copy_(0.2 * torch.randn_like(module.bias))
    return {k.replace(".conv_block.", ".block."): v for k, v in net.state_dict().items()}


LAYOUTS = {"junyanz": _junyanz_state, "vintagify": _vintagify_state}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def generator_file(request, tmp_path_factory) -> tuple[str, Path, dict[str, torch.Tensor]]:
    state = LAYOUTS[request.param](seed=len(request.param))
    name = "latest_net_G_A.pth" if request.param == "junyanz" else "G_A2B_epoch33.pth"
    path = tmp_path_factory.mktemp(request.param) / name
    torch.save(state, path)
    return request.param, path, state


def _reference(layout: str, state: dict[str, torch.Tensor]) -> CycleGANGenerator:
    """The generator built by hand from the known config, independent of the loader's inference."""
    net = CycleGANGenerator(CycleGANConfig(affine_norm=layout == "vintagify", **SMALL))
    net.load_state_dict({k.replace(".block.", ".conv_block."): v for k, v in state.items()})
    return net.eval()


def test_layout_keys_are_the_published_ones(generator_file):
    layout, _, state = generator_file
    block_key = "model.10.conv_block.1.weight" if layout == "junyanz" else "model.10.block.1.weight"
    assert block_key in state
    assert ("model.2.weight" in state) is (layout == "vintagify")   # affine InstanceNorm parameters


def test_load_translator_reads_cyclegan_files(generator_file):
    layout, path, state = generator_file
    translator, info = load_translator(path, default_img_size=64)
    x = torch.rand(2, 3, 48, 80) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(translator(x), _reference(layout, state)(x), atol=1e-6, rtol=0)
    assert (info.arch, info.direction, info.dynamic_hw, info.img_size, info.io) == \
        ("cyclegan", "a2b", True, 64, "float")
    assert info.source_sha256 == file_sha256(path)
    with pytest.raises(TranslatorError, match="one direction"):
        load_translator(path, "b2a")


def test_uint8_export_matches_torch(generator_file, tmp_path):
    layout, path, state = generator_file
    out = tmp_path / "g.onnx"
    report = export_onnx(path, out, default_img_size=64, log=lambda _: None)
    assert report.passed and report.islands == 2 * SMALL["n_blocks"] + 5
    model = onnx.load(str(out))
    info = ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props})
    assert (info.arch, info.io, info.dynamic_hw) == ("cyclegan", "uint8", True)
    frames = np.random.default_rng(3).integers(0, 256, (2, 52, 72, 3), dtype=np.uint8)
    got = ort.InferenceSession(str(out)).run(None, {"input": frames})[0]
    rgb = torch.from_numpy(frames[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        y = _reference(layout, state)(rgb).permute(0, 2, 3, 1).numpy()[..., ::-1]
    want = np.clip(np.rint((y + 1) * 127.5), 0, 255)
    assert got.shape == frames.shape and np.abs(got - want).max() <= 1


def test_fp16_float_export_keeps_instance_norm_in_fp32(generator_file, tmp_path):
    _, path, _ = generator_file
    report = export_onnx(path, tmp_path / "g16.onnx", io="float", fp16=True, target="trt8",
                         default_img_size=64, log=lambda _: None)
    assert report.passed and report.opset == 17
    assert all(c.max_abs <= 2e-2 and c.nonfinite == 0 for c in report.checks)
    model = onnx.load(str(tmp_path / "g16.onnx"))
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norms and all("/fp32/" in n.name for n in norms)


def _vintagify_weights() -> Path | None:
    spec = importlib.util.find_spec("vintagify")   # locate without importing (it imports torchvision)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "G_A2B_epoch33.pth"
    return path if path.is_file() else None


@pytest.mark.skipif(_vintagify_weights() is None, reason="vintagify==0.1.2 is not installed")
def test_real_vintagify_generator_exports(tmp_path):
    report = export_onnx(_vintagify_weights(), tmp_path / "vintagify.onnx", height=64, width=64,
                         log=lambda _: None)
    assert report.passed and report.info.arch == "cyclegan" and report.islands == 2 * 9 + 5
