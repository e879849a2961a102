"""The deployed translator reproduces the official call sequence (full disc forward, then the generator)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nicegan.export.translator import TranslatorError, UInt8IO, load_translator
from nicegan.models.nicegan.translator import FoldedEncoder, fold_cam
from nicegan_testutils import TINY, TINY_FULL, make_trained_like, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")

DIRECTIONS = ("a2b", "b2a")


def official_translate(nets, direction: str, x: torch.Tensor) -> torch.Tensor:
    """The official test path: a full discriminator forward, keep z (5th output), then the generator."""
    dis, gen = (nets.disA, nets.gen2B) if direction == "a2b" else (nets.disB, nets.gen2A)
    with torch.no_grad():
        return gen(dis(x)[4])


@pytest.fixture(scope="module")
def light_ckpt(tmp_path_factory):
    nets = make_trained_like(TINY, seed=3)
    return nets, save_checkpoint(nets, tmp_path_factory.mktemp("light") / "light.pt", step=777)


@pytest.fixture(scope="module")
def full_ckpt(tmp_path_factory):
    nets = make_trained_like(TINY_FULL, seed=4)
    return nets, save_checkpoint(nets, tmp_path_factory.mktemp("full") / "full.pt", step=55)


def _images(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("which", ["light", "full"])
def test_translator_matches_official_sequence(which, direction, light_ckpt, full_ckpt):
    nets, path = light_ckpt if which == "light" else full_ckpt
    assert nets.disA.lamda.item() != 0 and nets.disB.lamda.item() != 0
    translator, info = load_translator(path, direction)
    x = _images(2, 64, 64, seed=1)   # the full discriminator heads need >= 48 px at n_dis 6
    with torch.no_grad():
        got = translator(x)
    want = official_translate(nets, direction, x)
    assert got.shape == want.shape == x.shape
    assert torch.max(torch.abs(got - want)).item() < 1e-5
    assert (info.arch, info.direction, info.light, info.io, info.precision) == \
        ("nicegan", direction, which == "light", "float", "fp32")
    assert info.dynamic_hw is (which == "light") and info.img_size == 64
    assert info.step == (777 if which == "light" else 55) and len(info.source_sha256) == 64


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_light_translator_matches_at_non_square_size(direction, light_ckpt):
    nets, path = light_ckpt
    translator, _ = load_translator(path, direction)
    x = _images(1, 48, 80, seed=2)   # the smallest size the n_dis-6 heads accept, not square
    with torch.no_grad():
        got = translator(x)
    want = official_translate(nets, direction, x)
    assert got.shape == (1, 3, 48, 80)
    assert torch.max(torch.abs(got - want)).item() < 1e-5


def test_folded_encoder_has_no_discriminator_heads_and_keeps_sn_state():
    nets = make_trained_like(TINY, seed=5)
    dis = nets.disA
    u_before = dis.model[1].weight_u.clone()
    encoder = FoldedEncoder(dis)
    names = {name for name, _ in encoder.named_parameters()}
    assert names == {"trunk.1.weight", "trunk.1.bias", "trunk.4.weight", "trunk.4.bias", "cam.weight", "cam.bias"}
    assert torch.equal(dis.model[1].weight_u, u_before)        # building it ran no power iteration
    assert hasattr(dis.model[1], "weight_orig")                 # the source discriminator is untouched


def test_cam_fold_uses_the_raw_fc_weight():
    """With SN removed from fc the attention would use the normalised weight: the fold must not."""
    dis = make_trained_like(TINY, seed=6).disA
    x0 = torch.randn(1, dis.conv1x1.out_channels, 8, 8)
    with torch.no_grad():
        attended = torch.cat([x0, x0], 1) * dis.fc.weight_orig.unsqueeze(2).unsqueeze(3)
        want = dis.lamda * dis.conv1x1(attended) + x0
        got = fold_cam(dis)(x0)
        normalised = torch.cat([x0, x0], 1) * dis.fc.weight.unsqueeze(2).unsqueeze(3)
        wrong = dis.lamda * dis.conv1x1(normalised) + x0
    assert torch.max(torch.abs(got - want)).item() < 1e-5
    assert torch.max(torch.abs(wrong - want)).item() > 1e-3   # the two weights really differ here


def test_uint8_io_matches_manual_conversion(light_ckpt):
    _, path = light_ckpt
    translator, _ = load_translator(path, "a2b")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 48, 80, 3), dtype=np.uint8)   # NHWC BGR
    with torch.no_grad():
        got = UInt8IO(translator)(torch.from_numpy(frames)).numpy()
        rgb = torch.from_numpy(frames[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = translator(rgb).permute(0, 2, 3, 1).numpy()[..., ::-1]
    want = np.clip(np.rint((y + 1) * 127.5), 0, 255).astype(np.uint8)   # np.rint: half to even
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert np.array_equal(got, want)


def test_foreign_and_missing_files_raise_one_clear_error(tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, foreign)
    corrupt = tmp_path / "broken.pt"
    corrupt.write_bytes(b"not a torch file")
    for path, needle in ((foreign, "not a NICE-GAN checkpoint"), (corrupt, "not a PyTorch checkpoint"),
                         (tmp_path / "missing.pt", "no such checkpoint file")):
        with pytest.raises(TranslatorError) as err:
            load_translator(path)
        assert str(path) in str(err.value) and needle in str(err.value)
        assert "\n" not in str(err.value)


def test_bad_direction_is_rejected(light_ckpt):
    with pytest.raises(TranslatorError, match="direction"):
        load_translator(light_ckpt[1], "x2y")
