"""MSGAN's latent codes in training (nicegan.models.latent): the mode-seeking term against its
formula, where the code enters each family's generator, the generator steps that add the term,
and `nicegan train --latent-dim` end to end on real photos."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.models.architecture import read_any_checkpoint
from nicegan.models.cyclegan.checkpoint import CycleGANNetConfig
from nicegan.models.cyclegan.checkpoint import build_networks as build_cyclegan
from nicegan.models.cyclegan.networks import CycleGANConfig, CycleGANGenerator, load_cyclegan_generator
from nicegan.models.cyclegan.step import CycleGANStep
from nicegan.models.cyclegan.step import make_optimizers as cyclegan_optimizers
from nicegan.models.latent import MS_EPS, LatentCodes, LatentSettings, mode_seeking_loss
from nicegan.models.nicegan.checkpoint import build_networks, infer_config
from nicegan.models.nicegan.networks import ResnetGenerator
from nicegan.models.nicegan.step import TrainStep, make_optimizers
from nicegan.trainer.checkpoint import read_checkpoint_file
from nicegan.trainer.loop import Trainer
from nicegan.trainer.options import LATEST, TrainOptions
from nicegan_testutils import TINY, random_crops, real_photos
from test_cyclegan_step_parity import assert_identical

pytestmark = pytest.mark.usefixtures("torch_single_thread")

LATENT = 4
TINY_LATENT = replace(TINY, latent_dim=LATENT)
TINY_CYCLEGAN = CycleGANNetConfig(net_g="resnet_6blocks", ngf=4, ndf=4, n_layers_d=2, img_size=32, latent_dim=LATENT)
TRAIN_ARGS = ["--img-size", 64, "--ch", 8, "--n-res", 2, "--n-dis", 6, "--workers", 0, "--n-samples", 2,
              "--log-every", 1, "--threads", 1, "--snapshot-every", 0]


def photo_batch(size: int, count: int = 2, seed: int = 0) -> torch.Tensor:
    """Real photo crops as a float batch in [-1, 1]."""
    crops = random_crops(real_photos()["coffee"], count, size, seed)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_the_mode_seeking_term_is_the_official_expression():
    # by hand: mean|f2 - f1| = 0.5, mean|z2 - z1| = 2, so lz = 0.25
    f1, f2 = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    z1, z2 = torch.zeros(2, 8), torch.full((2, 8), -2.0)
    assert float(mode_seeking_loss(f1, f2, z1, z2)) == pytest.approx(1 / (0.25 + 1e-5), rel=1e-6)
    # random tensors against the MSGAN expression written out in NumPy
    gen = torch.Generator().manual_seed(3)
    f1, f2 = torch.rand(3, 3, 8, 8, generator=gen), torch.rand(3, 3, 8, 8, generator=gen)
    z1, z2 = torch.randn(3, 8, generator=gen), torch.randn(3, 8, generator=gen)
    lz = np.mean(np.abs(f2.numpy() - f1.numpy())) / np.mean(np.abs(z2.numpy() - z1.numpy()))
    assert float(mode_seeking_loss(f1, f2, z1, z2)) == pytest.approx(1 / (lz + MS_EPS), rel=1e-6)
    # fp16 translations (AMP) are measured in fp32
    assert mode_seeking_loss(f1.half(), f2.half(), z1, z2).dtype == torch.float32


def test_the_zero_code_is_the_deterministic_generator():
    """A latent generator holding a deterministic one's weights (plus its own code weights) gives the
    deterministic output for the zero code, in both families."""
    torch.manual_seed(0)
    plain = ResnetGenerator(3, 3, 8, 2, 64, light=True).eval()
    latent = ResnetGenerator(3, 3, 8, 2, 64, light=True, latent_dim=LATENT).eval()
    state = plain.state_dict()
    own = latent.state_dict()
    state["FC.0.weight"] = torch.cat([state["FC.0.weight"], own["FC.0.weight"][:, -LATENT:]], 1)
    state.update({k: v for k, v in own.items() if k.startswith("latent_regressor.")})
    latent.load_state_dict(state)
    code = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(latent(code), plain(code), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(latent(code, latent=torch.zeros(1, LATENT)), plain(code), rtol=1e-5, atol=1e-6)

    plain_cg = CycleGANGenerator(CycleGANConfig(ngf=4, n_blocks=2)).eval()
    latent_cg = CycleGANGenerator(CycleGANConfig(ngf=4, n_blocks=2, latent_dim=LATENT)).eval()
    missing = latent_cg.load_state_dict(plain_cg.state_dict(), strict=False).missing_keys
    assert missing == ["model.10.latent_style.weight", "model.11.latent_style.weight"]
    x = photo_batch(32)
    with torch.no_grad():
        torch.testing.assert_close(latent_cg(x), plain_cg(x))


@pytest.mark.parametrize("family", ["nicegan", "cyclegan"])
def test_a_fresh_latent_generator_already_depends_on_its_code(family):
    """The code's weights start from the ordinary initialisation, not zero: zero weights would make
    every code give the same image and the term start at 1 / 1e-5 (the known MSGAN pitfall)."""
    torch.manual_seed(0)
    if family == "nicegan":
        nets = build_networks(TINY_LATENT)
        x = photo_batch(64)
        translate = lambda latent: nets.gen2B(nets.disA.encode(x)[0], x, latent)  # noqa: E731
    else:
        nets = build_cyclegan(TINY_CYCLEGAN)
        x = photo_batch(32)
        translate = lambda latent: nets.G_A(x, latent)  # noqa: E731
    z1, z2 = torch.randn(2, LATENT), torch.randn(2, LATENT)
    with torch.no_grad():
        term = float(mode_seeking_loss(translate(z1), translate(z2), z1, z2))
    assert term < 1e3


def test_code_channels_tiled_at_the_input_would_be_cancelled_by_instance_norm():
    """Why CycleGAN's code scales and shifts the residual blocks instead of entering as input
    channels: a constant channel through a reflection-padded conv is a constant per output channel,
    which the InstanceNorm that follows every convolution subtracts again."""
    torch.manual_seed(0)
    layer = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3 + LATENT, 8, 7), nn.InstanceNorm2d(8))
    x = photo_batch(32)

    def with_code(z: torch.Tensor) -> torch.Tensor:
        return layer(torch.cat([x, z.view(1, -1, 1, 1).expand(len(x), -1, 32, 32)], 1))

    with torch.no_grad():
        torch.testing.assert_close(with_code(torch.randn(LATENT)), with_code(torch.randn(LATENT)),
                                   rtol=1e-4, atol=1e-4)


def test_nicegan_generator_step_adds_the_weighted_term_and_leaves_the_encoders_alone():
    torch.manual_seed(0)
    nets = build_networks(TINY_LATENT)
    g_optim, d_optim = make_optimizers(nets, 1e-4)
    step = TrainStep(nets, g_optim, d_optim, codes=LatentCodes(LatentSettings(LATENT, ms_weight=2.0)))
    d_before = [p.detach().clone() for p in step.d_params]  # (the spectral-norm vectors do move: official)
    losses = step.generator_step(photo_batch(64, seed=1), photo_batch(64, seed=2))
    expected = losses["g_adv"] + 10 * losses["g_cycle"] + 10 * losses["g_recon"] + 2.0 * losses["g_ms"]
    assert float(losses["g_loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(losses["g_ms"]) > 0
    assert all(p.grad is None for p in step.d_params)  # decoupled: the encoders live in D, trained by D
    assert all(torch.equal(before, p) for before, p in zip(d_before, step.d_params))


def test_the_latent_regression_trains_the_code_readers_through_the_frozen_encoders():
    torch.manual_seed(0)
    nets = build_networks(TINY_LATENT)
    step = TrainStep(nets, *make_optimizers(nets, 1e-4),
                     codes=LatentCodes(LatentSettings(LATENT, ms_weight=1.0, regression_weight=10.0)))
    losses = step.generator_step(photo_batch(64, seed=1), photo_batch(64, seed=2))
    expected = (losses["g_adv"] + 10 * losses["g_cycle"] + 10 * losses["g_recon"] + losses["g_ms"]
                + 10 * losses["g_latent"])
    assert float(losses["g_loss"]) == pytest.approx(float(expected), rel=1e-5) and float(losses["g_latent"]) > 0
    assert all(float(g.latent_regressor.weight.grad.abs().sum()) > 0 for g in (nets.gen2A, nets.gen2B))
    assert all(p.grad is None for p in step.d_params)

    torch.manual_seed(0)
    plain = build_networks(TINY_LATENT)
    TrainStep(plain, *make_optimizers(plain, 1e-4), codes=LatentCodes(LatentSettings(LATENT))).generator_step(
        photo_batch(64, seed=1), photo_batch(64, seed=2))
    assert plain.gen2B.latent_regressor.weight.grad is None  # off: the reader is not trained


def test_the_code_reader_is_a_linear_map_of_the_pooled_encoding():
    gen = ResnetGenerator(3, 3, 8, 2, 64, light=True, latent_dim=LATENT)
    code = torch.randn(2, 16, 4, 4)
    expected = code.mean(dim=(2, 3)) @ gen.latent_regressor.weight.T + gen.latent_regressor.bias
    torch.testing.assert_close(gen.regress_latent(code), expected)


def test_cyclegan_generator_step_adds_the_weighted_term_per_direction():
    torch.manual_seed(0)
    nets = build_cyclegan(TINY_CYCLEGAN)
    step = CycleGANStep(nets, *cyclegan_optimizers(nets, 2e-4), pool_size=2,
                        codes=LatentCodes(LatentSettings(LATENT, ms_weight=0.5)))
    losses = step(photo_batch(32, seed=1), photo_batch(32, seed=2))
    parts = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B")
    expected = sum(float(losses[k]) for k in parts) + 0.5 * (float(losses["ms_A"]) + float(losses["ms_B"]))
    assert float(losses["g_loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(losses["ms_A"]) > 0 and float(losses["ms_B"]) > 0


def test_without_the_term_a_latent_step_logs_no_mode_seeking_column():
    torch.manual_seed(0)
    nets = build_networks(TINY_LATENT)
    step = TrainStep(nets, *make_optimizers(nets, 1e-4), codes=LatentCodes(LatentSettings(LATENT, ms_weight=0)))
    assert "g_ms" not in step(photo_batch(64, seed=1), photo_batch(64, seed=2))


@pytest.fixture(scope="module")
def latent_run(image_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("msgan") / "run"
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(run), *map(str, TRAIN_ARGS),
                                      "--latent-dim", str(LATENT), "--iters", "2", "--sample-every", "2"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"latent {LATENT}-d (mode seeking x 1)" in result.output
    return run


def test_a_latent_run_records_its_code_size_and_logs_the_term(latent_run):
    architecture, ckpt = read_any_checkpoint(latent_run / "latest.pt")
    assert architecture.name == "nicegan" and infer_config(ckpt).latent_dim == LATENT
    assert ckpt["gen2B"]["FC.0.weight"].shape == (32, 32 + LATENT)
    with open(latent_run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["g_ms"]) > 0 for r in rows] == [True, True]
    config = json.loads((latent_run / "config.json").read_text())
    assert config["latent"] == {"dim": LATENT, "ms_weight": 1.0, "regression_weight": 0.0}
    assert config["network"]["latent_dim"] == LATENT
    grid = cv2.imread(str(latent_run / "samples" / "A2B_0000002.png"))
    assert grid.shape == (7 * 64, 2 * 64, 3)  # input, CAM, recon, a translation per sample seed (3), cycle
    tiles = [grid[64 * i:64 * (i + 1)].astype(int) for i in (3, 4, 5)]
    assert np.abs(tiles[0] - tiles[1]).mean() > 0.5 and np.abs(tiles[1] - tiles[2]).mean() > 0.5


def test_a_resumed_latent_run_keeps_the_checkpoint_code_size(latent_run, image_dataset, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(tmp_path / "r"), "--resume",
                                      str(latent_run / "latest.pt"), "--iters", "3", "--latent-dim", "8",
                                      "--workers", "0", "--threads", "1", "--n-samples", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "--latent-dim 8 ignored" in result.output
    assert infer_config(read_checkpoint_file(tmp_path / "r" / "latest.pt")).latent_dim == LATENT


def test_a_latent_cyclegan_run_trains_and_its_generator_file_loads_alone(image_dataset, tmp_path):
    run = tmp_path / "cyclegan"
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(run), "--arch", "cyclegan",
                                      "--img-size", "32", "--load-size", "40", "--netG", "resnet_6blocks", "--ngf", "4",
                                      "--ndf", "4", "--pool-size", "2", "--workers", "0", "--threads", "1",
                                      "--n-samples", "0", "--iters", "2", "--latent-dim", str(LATENT),
                                      "--ms-weight", "0.5"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open(run / "log.csv", newline="") as f:
        assert {"ms_A", "ms_B"} <= set(next(csv.DictReader(f)))
    generator = load_cyclegan_generator(read_checkpoint_file(run / "latest_net_G_A.pth"))
    assert generator.config.latent_dim == LATENT


def test_a_resumed_latent_run_equals_an_unbroken_one(image_dataset, tmp_path):
    """The codes come from torch's generator, which latest.pt saves: 2 + resume + 2 = 4 steps."""
    options = TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "straight"), iters=4, workers=0,
                           threads=1, n_samples=0, save_every=100, snapshot_every=0, log_every=1, img_size=64, ch=8,
                           n_res=2, n_dis=6, latent_dim=LATENT)
    Trainer(options).run()
    Trainer(replace(options, out=str(tmp_path / "split"), stop_at=2)).run()
    Trainer(replace(options, out=str(tmp_path / "split"), resume=LATEST)).run()
    straight, resumed = (read_checkpoint_file(tmp_path / run / "latest.pt") for run in ("straight", "split"))
    for ckpt in (straight, resumed):
        ckpt["train_state"].pop("options")
    assert_identical(straight, resumed)


@pytest.mark.parametrize("args, message", [
    (["--ms-weight", "2"], "--ms-weight 2: the mode-seeking term needs a latent code; add --latent-dim 8"),
    (["--latent-dim", "-1"], "--latent-dim must be >= 0 (got -1)"),
    (["--latent-dim", "8", "--ms-weight", "-1"], "--ms-weight must be >= 0 (got -1.0)"),
    (["--latent-regression", "10"], "--latent-regression 10: a weight >= 0 of a latent model's code regression; add "
                                    "--latent-dim 8"),
    (["--arch", "cyclegan", "--latent-dim", "8", "--latent-regression", "10"],
     "--latent-regression is an option of --arch nicegan"),
])
def test_bad_latent_options_are_one_clear_line(image_dataset, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
