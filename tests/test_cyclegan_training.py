"""`nicegan train --arch cyclegan` end to end: the run folder (ours and the official files), the
official networks and test.py reading those files, --resume from official files, and the
deployment of a trained run (export onnx both directions, translate, info, bench)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.export.to_onnx import export_onnx
from nicegan.export.translator import UInt8IO, load_translator
from nicegan.models.cyclegan.checkpoint import NET_NAMES
from nicegan.models.cyclegan.networks import CycleGANConfig, CycleGANGenerator
from nicegan.trainer.checkpoint import read_checkpoint_file
from nicegan_testutils import assert_within_one_level
from official_cyclegan_step import CycleGANModel, define_D, define_G, load_network, official_test_image, save_networks

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SIZE = 32
TINY_ARGS = ["--arch", "cyclegan", "--img-size", SIZE, "--load-size", 40, "--netG", "resnet_6blocks", "--ngf", 4,
             "--ndf", 4, "--pool-size", 2, "--workers", 0, "--threads", 1, "--log-every", 1, "--n-samples", 2]


def run_train(*args) -> object:
    return CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def cyclegan_run(image_dataset, tmp_path_factory) -> Path:
    """16 iterations: two epochs of the 8-image domains, official files at the end of each."""
    run = tmp_path_factory.mktemp("cyclegan") / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--iters", 16, "--save-every", 8,
                       "--sample-every", 16, "--save-epoch-freq", 1, "--snapshot-every", 0)
    assert result.exit_code == 0, result.output
    return run


def test_the_run_folder_holds_ours_and_the_official_files(cyclegan_run):
    names = {p.name for p in cyclegan_run.iterdir()}
    official = {f"{label}_net_{name}.pth" for label in ("latest", "1", "2") for name in NET_NAMES}
    assert {"latest.pt", "log.csv", "config.json", "samples"} | official <= names
    ckpt = read_checkpoint_file(cyclegan_run / "latest.pt")
    assert ckpt["start_iter"] == 16 and set(NET_NAMES) <= set(ckpt)
    assert {int(s["step"]) for s in ckpt["G_optimizer"]["state"].values()} == {16}
    state = ckpt["train_state"]
    assert {pool["images"].shape for pool in state["pools"].values()} == {(2, 3, SIZE, SIZE)}
    assert set(state["rng"]) >= {"torch", "numpy", "python"} and state["options"]["arch"] == "cyclegan"
    for name in NET_NAMES:  # the latest files are latest.pt's networks
        official_state = torch.load(cyclegan_run / f"latest_net_{name}.pth", weights_only=True)
        assert all(torch.equal(official_state[k], v) for k, v in ckpt[name].items())
    grid = cv2.imread(str(cyclegan_run / "samples" / "A2B_0000016.png"))
    assert grid.shape == (4 * SIZE, 2 * SIZE, 3)  # input, translation, cycle, identity x 2 images
    log = (cyclegan_run / "log.csv").read_text().splitlines()
    assert log[0] == "step,d_loss,g_loss,D_A,G_A,cycle_A,idt_A,D_B,G_B,cycle_B,idt_B,lr,it_per_s,elapsed_s"
    config = json.loads((cyclegan_run / "config.json").read_text())
    assert config["schedule"]["iters_per_epoch"] == 8 and config["network"]["net_g"] == "resnet_6blocks"


def test_the_official_networks_load_the_files_strictly_and_test_py_runs_them(cyclegan_run, tmp_path):
    official = {"G_A": define_G(3, 3, 4, "resnet_6blocks"), "G_B": define_G(3, 3, 4, "resnet_6blocks"),
                "D_A": define_D(3, 4, 3), "D_B": define_D(3, 4, 3)}
    for name, net in official.items():
        load_network(net, cyclegan_run / f"latest_net_{name}.pth")  # load_state_dict, strict
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.imread(str(next((cyclegan_run / "samples").iterdir())))[:SIZE, :SIZE])
    theirs = official_test_image(official["G_A"], photo, crop_size=SIZE)  # RGB, tensor2im truncates
    translator, _ = load_translator(cyclegan_run / "latest.pt", "a2b")
    with torch.no_grad():
        ours = UInt8IO(translator)(torch.from_numpy(cv2.imread(str(photo))[None])).numpy()[0][..., ::-1]
    difference = ours.astype(int) - theirs.astype(int)
    assert difference.min() >= 0 and difference.max() <= 1  # we round where tensor2im truncates


def test_resume_from_official_files_restarts_adam_and_the_pools_with_a_warning(image_dataset, tmp_path):
    torch.manual_seed(5)
    model = CycleGANModel(define_G(3, 3, 4, "resnet_6blocks"), define_G(3, 3, 4, "resnet_6blocks"),
                          define_D(3, 4, 3), define_D(3, 4, 3))
    folder = tmp_path / "checkpoints" / "vintage"
    folder.mkdir(parents=True)
    save_networks(model, folder, "latest")
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, "--resume", folder, *TINY_ARGS, "--iters", 10,
                       "--epoch-count", 2, "--n-samples", 0)
    assert result.exit_code == 0, result.output
    assert f"warning: {folder} holds the official code's networks only: Adam restarts" in result.output
    assert "the run starts at epoch 2 (step 8" in result.output
    ckpt = read_checkpoint_file(run / "latest.pt")
    assert ckpt["start_iter"] == 10
    assert {int(s["step"]) for s in ckpt["D_optimizer"]["state"].values()} == {2}  # restarted, then 2 steps
    for name, net in model.models().items():  # continued from the official weights: 2 Adam steps away
        for key, value in net.state_dict().items():
            assert (ckpt[name][key] - value).abs().max() <= 2 * 2e-4 + 1e-7, f"{name}.{key}"


@pytest.mark.parametrize("args, message", [
    (["--ch", "32"], "--ch is an option of --arch nicegan; --arch cyclegan does not use it: drop it"),
    (["--iters", "5", "--epochs", "3"], "--iters 5 and --epochs/--epochs-decay both give the run's length"),
    (["--img-size", "20"], "--img-size 20: the generator needs a multiple of 4 and a PatchGAN of --n-layers-d 3 "
                           "at least 24 px"),
    (["--epoch-count", "3"], "--epoch-count: the epoch that the official files of --resume DIR continue at"),
])
def test_bad_cyclegan_options_are_one_clear_line(image_dataset, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(tmp_path / "run"),
                                      *map(str, TINY_ARGS), *args])
    assert result.exit_code == 1 and result.output.startswith(f"Error: {message}")
    assert result.output.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_nicegan_run_cannot_be_resumed_as_cyclegan(tmp_path, image_dataset, tiny_checkpoint):
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(tmp_path / "run"), "--resume",
                                      str(tiny_checkpoint), "--arch", "cyclegan", "--workers", "0"])
    assert result.exit_code == 1
    assert f"--arch cyclegan: {tiny_checkpoint} holds a NICE-GAN checkpoint; drop --arch" in result.output


@pytest.mark.parametrize("direction, generator", [("a2b", "G_A"), ("b2a", "G_B")])
def test_export_onnx_takes_either_direction_of_a_run(cyclegan_run, tmp_path, direction, generator):
    report = export_onnx(cyclegan_run / "latest.pt", tmp_path / "m.onnx", direction=direction, log=lambda _: None)
    assert report.passed and (report.info.arch, report.info.direction, report.info.step) == ("cyclegan", direction, 16)
    net = CycleGANGenerator(CycleGANConfig(ngf=4, n_blocks=6))
    net.load_state_dict(read_checkpoint_file(cyclegan_run / "latest.pt")[generator])
    frames = np.random.default_rng(1).integers(0, 256, (1, 36, 44, 3), dtype=np.uint8)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": frames})[0]
    with torch.no_grad():
        want = UInt8IO(net.eval())(torch.from_numpy(frames)).numpy()
    assert_within_one_level(got, want)


def test_translate_info_and_bench_run_a_trained_run(cyclegan_run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((40, 52, 3), 90, np.uint8))
    result = CliRunner().invoke(cli, ["translate", str(photos), str(tmp_path / "out"), "-m",
                                      str(cyclegan_run / "latest.pt"), "--direction", "b2a", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "out" / "a.png")).shape == (40, 52, 3)
    info = CliRunner().invoke(cli, ["info", str(cyclegan_run / "latest.pt")])
    assert info.exit_code == 0 and "arch: cyclegan" in info.output and "step: 16" in info.output, info.output
    bench = CliRunner().invoke(cli, ["bench", "-m", str(cyclegan_run / "latest.pt"), "--batch-sizes", "1",
                                     "--sizes", "32x32", "--warmup", "0", "--runs", "1"])
    assert bench.exit_code == 0 and "32x32" in bench.output, bench.output
