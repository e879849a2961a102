"""`nicegan train` end to end on real photos: outputs, resume, official checkpoints, bad data, Ctrl-C."""
from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.models.nicegan.checkpoint import load_networks, read_checkpoint
from nicegan.models.nicegan.step import learning_rate
from nicegan.trainer.loop import StopRequest, Trainer
from nicegan.trainer.options import LATEST, TrainOptions
from nicegan_testutils import TINY, make_trained_like
from official_step import official_optimizers, official_step

TINY_ARGS = ["--img-size", "64", "--ch", "8", "--n-res", "2", "--n-dis", "6", "--workers", "0", "--n-samples", "2",
             "--log-every", "1", "--threads", "1"]


def run_train(*args: str):
    return CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False)


def log_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def short_run(image_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--iters", 3, "--save-every", 2,
                       "--sample-every", 3, "--snapshot-every", 2)
    assert result.exit_code == 0, result.output
    return run


def test_short_run_writes_checkpoint_samples_log_and_config(short_run):
    nets, ckpt = load_networks(short_run / "latest.pt")
    assert nets.config == TINY and ckpt["start_iter"] == 3
    assert set(ckpt) >= {"gen2B", "gen2A", "disA", "disB", "G_optimizer", "D_optimizer", "start_iter", "config"}
    assert set(ckpt["train_state"]["rng"]) >= {"torch", "numpy", "python"}
    assert read_checkpoint(short_run / "checkpoints" / "params_0000002.pt")["start_iter"] == 2
    for name in ("A2B", "B2A"):
        grid = cv2.imread(str(short_run / "samples" / f"{name}_0000003.png"))
        assert grid.shape == (5 * 64, 2 * 64, 3)  # 5 tiles (input, CAM, recon, translation, cycle) x 2 images
        assert grid[64:128].std() > 10  # the CAM tile is a real colour map, not blank
    rows = log_rows(short_run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["d_loss"]) > 0 and float(r["g_loss"]) > 0 for r in rows)
    config = json.loads((short_run / "config.json").read_text())
    assert config["network"]["ch"] == 8 and config["options"]["iters"] == 3
    assert not list(short_run.rglob("*.tmp")), "temp files left behind"


def test_resume_continues_at_the_right_step_with_saved_options(short_run, image_dataset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    before = read_checkpoint(run / "latest.pt")
    # A run SIGKILLed mid-save left hidden temporary files, latest.pt's as large as the checkpoint;
    # an export of latest.pt running meanwhile has its own, which stays.
    killed = [run / ".latest.k1ll3d_x.part.pt", run / "checkpoints" / ".params_0000004.k1ll3d_y.part.pt"]
    exporting = run / ".latest.abcdefgh.part.onnx"
    for path in killed + [exporting]:
        path.write_bytes(b"half a file")
    # From the step-2 snapshot: step 3 of log.csv (logged after it) must be replaced, not duplicated.
    result = run_train(image_dataset, "--out", run, "--resume", run / "checkpoints" / "params_0000002.pt",
                       "--iters", 6, "--workers", 0, "--threads", 1)
    assert result.exit_code == 0, result.output
    ckpt = read_checkpoint(run / "latest.pt")
    assert ckpt["start_iter"] == 6 and ckpt["config"] == TINY.to_dict()  # architecture from the run, not defaults
    assert ckpt["train_state"]["options"]["n_samples"] == 2  # un-repeated options come from the saved run
    adam_steps = {int(s["step"]) for s in ckpt["G_optimizer"]["state"].values()}
    assert adam_steps == {6}  # optimizer moments continued, not restarted
    assert not torch.equal(ckpt["gen2B"]["FC.0.weight"], before["gen2B"]["FC.0.weight"])
    rows = log_rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[2]["lr"]) == 1e-4  # step 3 of the 6-step schedule (the 3-step run had decayed to 0)
    # Past the half of the new 6 iterations: decayed once, from the step alone, down to exactly 0.
    assert [float(r["lr"]) for r in rows[3:]] == pytest.approx([learning_rate(s, 6, 1e-4) for s in (4, 5, 6)], rel=1e-5)
    assert float(rows[3]["lr"]) == pytest.approx(1e-4 * 2 / 3, rel=1e-5) and float(rows[5]["lr"]) == 0
    assert not any(path.exists() for path in killed) and exporting.exists()


def test_an_existing_run_is_never_overwritten_without_resume(short_run, image_dataset):
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(short_run), *TINY_ARGS])
    assert result.exit_code == 1 and "already holds a run (latest.pt); add --resume" in result.output


@pytest.mark.parametrize("progress", [True, False])
def test_no_progress_drops_the_bar_and_keeps_the_messages(image_dataset, tmp_path, progress):
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--iters", 1, "--n-samples", 0,
                       *([] if progress else ["--no-progress"]))
    assert result.exit_code == 0, result.output
    assert "nicegan train:" in result.output and "Done at step 1" in result.output
    assert ("train: 100%" in result.output) == progress
    assert [int(r["step"]) for r in log_rows(run)] == [1]


def test_resume_from_an_official_checkpoint(image_dataset, tmp_path):
    """An official *_params_latest.pt (no config, torch Adam states after one official step) continues."""
    nets = make_trained_like(TINY, 1)
    g_optim, d_optim = official_optimizers(nets.gen2B, nets.gen2A, nets.disA, nets.disB)
    real = torch.rand(1, 3, 64, 64) * 2 - 1
    official_step(nets.gen2B, nets.gen2A, nets.disA, nets.disB, g_optim, d_optim, real, real.flip(-1))
    official = tmp_path / "cat2dog_params_latest.pt"
    torch.save({**{name: m.state_dict() for name, m in nets.as_dict().items()}, "G_optimizer": g_optim.state_dict(),
                "D_optimizer": d_optim.state_dict(), "start_iter": 1234}, official)
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, "--resume", official, *TINY_ARGS, "--iters", 1235)
    assert result.exit_code == 0, result.output
    ckpt = read_checkpoint(run / "latest.pt")
    assert ckpt["start_iter"] == 1235 and ckpt["config"] == TINY.to_dict()
    assert {int(s["step"]) for s in ckpt["D_optimizer"]["state"].values()} == {2}  # Adam moments carried on
    assert read_checkpoint(official)["start_iter"] == 1234  # the input file is untouched


def test_fp16_scaler_rng_and_options_are_restored_on_resume(image_dataset, tmp_path):
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--iters", 2, "--amp", "fp16", "--n-samples", 0)
    assert result.exit_code == 0, result.output
    state = read_checkpoint(run / "latest.pt")["train_state"]
    trainer = Trainer(TrainOptions(data_root=str(image_dataset), out=str(run), resume=LATEST, workers=0, threads=1))
    assert trainer.step == 2 and trainer.options.amp == "fp16" and trainer.options.ch == 8
    assert trainer.model.step.d_scaler.get_scale() == state["d_scaler"]["scale"]
    assert trainer.model.step.g_scaler.get_scale() == state["g_scaler"]["scale"]
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
    assert random.getstate()[1] == tuple(state["rng"]["python"][1])
    assert np.array_equal(np.random.get_state()[1], state["rng"]["numpy"][1].numpy().astype(np.uint32))


def test_a_diverged_run_stops_with_a_clear_error(image_dataset, tmp_path):
    nets = make_trained_like(TINY, 2)
    with torch.no_grad():
        nets.gen2A.UpBlock2[1].weight[0, 0, 0, 0] = float("nan")
    broken = tmp_path / "nan_params_latest.pt"
    torch.save({**{name: m.state_dict() for name, m in nets.as_dict().items()}, "start_iter": 10}, broken)
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(tmp_path / "run"), "--resume",
                                      str(broken), *TINY_ARGS, "--iters", "20", "--n-samples", "0"])
    assert result.exit_code == 1
    assert "Error: step 11: training diverged (d_loss=nan, g_loss=nan)" in result.output
    assert "resume from it with a lower --lr" in result.output


def test_missing_data_folder_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "run"), *TINY_ARGS])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {tmp_path / 'trainA'}: no such folder; expected DATA_ROOT/trainA, "
                                     "trainB, testA, testB (folders of .jpg/.png/... images, searched recursively)")


@pytest.mark.parametrize("option, message", [
    (("--load-size", "32"), "--load-size 32: must be at least --img-size 64 (or 0)"),
    (("--identity-init", "-1"), "--identity-init must be >= 0 (got -1)"),
    (("--identity-init", "5", "--residual"), "--identity-init with --residual: residual generators start as the "
                                             "identity already; drop --identity-init"),
])
def test_bad_warm_start_or_crop_options_are_one_clear_error(image_dataset, tmp_path, option, message):
    result = CliRunner().invoke(cli, ["train", str(image_dataset), "--out", str(tmp_path / "run"), *TINY_ARGS,
                                      *option])
    assert result.exit_code == 1 and result.output.strip() == f"Error: {message}"
    assert not (tmp_path / "run").exists()


def test_corrupt_training_image_is_reported_once_and_skipped(image_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(image_dataset, data)
    for extra in sorted((data / "trainA").rglob("*.*"))[2:]:
        extra.unlink()  # 2 good images + 1 corrupt: 3 steps cross a pass boundary
    bad = data / "trainA" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = run_train(data, "--out", tmp_path / "run", *TINY_ARGS, "--iters", 3, "--n-samples", 0)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "unreadable" in line]
    assert warnings == [f"warning: skipping unreadable image {bad} (corrupt or not an image; remove or replace it)"]
    assert read_checkpoint(tmp_path / "run" / "latest.pt")["start_iter"] == 3


@pytest.mark.parametrize("signum, name, status", [(signal.SIGINT, "Ctrl-C", 130), (signal.SIGTERM, "SIGTERM", 143)])
def test_ctrl_c_or_sigterm_saves_latest_and_exits_cleanly(image_dataset, tmp_path, signum, name, status):
    """SIGTERM is SLURM's (time limit, scancel) and Kubernetes' stop: it saves like Ctrl-C, and the
    DataLoader worker, which receives it too in a SLURM job step, keeps serving until the save."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nicegan.cli", "train", str(image_dataset), "--out", str(run), *TINY_ARGS,
                             "--iters", "100000", "--workers", "1", "--n-samples", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ((run / "log.csv").is_file() and len(log_rows(run)) >= 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signum)   # the whole group, as a terminal's Ctrl-C and SLURM's scancel do
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err and f"{name}: stopping after this step and saving latest.pt" in out
    step = read_checkpoint(run / "latest.pt")["start_iter"]
    assert step >= 1 and f"Interrupted at step {step}: {run / 'latest.pt'}; continue with --resume" in out


def test_identity_init_starts_every_path_as_the_identity_and_is_not_repeated_on_resume(image_dataset, tmp_path):
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--iters", 1, "--identity-init", 60,
                       "--save-every", 100, "--snapshot-every", 0)
    assert result.exit_code == 0, result.output
    assert "identity init: 60 steps" in result.output
    assert (run / "samples" / "A2B_0000000.png").is_file()  # the warm start's own samples
    first = log_rows(run)[0]  # its it/s times step 1 alone, elapsed_s the whole run
    assert 1 / float(first["it_per_s"]) < float(first["elapsed_s"]) / 2

    options = TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "fresh"), img_size=64, ch=8, n_res=2,
                           n_dis=6, iters=1, workers=0, n_samples=2, threads=1, identity_init=60)
    trainer = Trainer(options)
    images = torch.cat([trainer.sample_images["A"], trainer.sample_images["B"]])
    n = trainer.model.nets

    def translation_error() -> float:
        with torch.no_grad():
            n.disA.eval(), n.gen2B.eval()
            return float((n.gen2B(n.disA.encode(images)[0]) - images).abs().mean())

    before = translation_error()
    with StopRequest() as stop:
        trainer.run_warm_start(trainer.model.warm_start(options), stop)
    assert translation_error() < 0.6 * before, (before, translation_error())
    for source, copy in ((n.disA, n.disB), (n.gen2A, n.gen2B)):
        for (name, a), b in zip(source.state_dict().items(), copy.state_dict().values()):
            assert torch.equal(a, b), name
    saved = read_checkpoint(tmp_path / "fresh" / "latest.pt")
    assert saved["start_iter"] == 0 and saved["train_state"]["warm_start_done"] is True

    resumed = Trainer(replace(options, resume=LATEST))
    assert resumed.warm_start_done
    with torch.no_grad():  # resumed from the warm start's weights, not re-initialised
        assert torch.equal(resumed.model.nets.gen2B.state_dict()["UpBlock0.1.weight"], n.gen2B.state_dict()["UpBlock0.1.weight"])


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_that_emulates_it_is_warned_about(image_dataset, tmp_path, monkeypatch, capsys, native):
    from nicegan.trainer import loop
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: native)
    Trainer(TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "run"), img_size=64, ch=8, n_res=2,
                         n_dis=6, amp="bf16", device="cpu", workers=0, n_samples=0, threads=1))
    warned = "--amp bf16 on a CPU without AVX-512 BF16 or AMX is emulated" in capsys.readouterr().out
    assert warned is not native


def test_a_residual_run_starts_at_the_identity_and_learns_a_change_that_resume_keeps(image_dataset, tmp_path):
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--residual", "--iters", 4, "--save-every", 4,
                       "--sample-every", 4, "--snapshot-every", 0)
    assert result.exit_code == 0, result.output
    nets, ckpt = load_networks(run / "latest.pt")
    assert nets.config == replace(TINY, residual=True) and ckpt["config"]["residual"] is True
    assert ckpt["train_state"]["options"]["residual"] is True
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    fresh = Trainer(TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "fresh"), img_size=64, ch=8,
                                 n_res=2, n_dis=6, residual=True, iters=1, workers=0, n_samples=0, threads=1)).model.nets
    with torch.no_grad():
        assert torch.equal(fresh.gen2B(fresh.disA.encode(images)[0], images), images)  # step 0: the identity
        change = (nets.gen2B(nets.disA.encode(images)[0], images) - images).abs().mean()
    assert change > 1e-4  # four steps moved it off the identity
    resumed = run_train(image_dataset, "--out", run, "--resume", "--iters", 5, "--workers", "0", "--threads", "1")
    assert resumed.exit_code == 0, resumed.output
    assert load_networks(run / "latest.pt")[0].config.residual


def test_stop_at_saves_and_stops_and_resume_runs_on_with_new_loss_weights(image_dataset, tmp_path):
    run = tmp_path / "run"
    result = run_train(image_dataset, "--out", run, *TINY_ARGS, "--iters", 4, "--stop-at", 2,
                       "--save-every", 100, "--snapshot-every", 0)
    assert result.exit_code == 0, result.output
    assert f"Stopped (--stop-at) at step 2: {run / 'latest.pt'}; continue with --resume" in result.output
    assert read_checkpoint(run / "latest.pt")["start_iter"] == 2
    assert [float(r["lr"]) for r in log_rows(run)] == [1e-4, 1e-4]  # --iters 4's schedule, not a 2-step one
    resumed = run_train(image_dataset, "--out", run, "--resume", "--recon-weight", 1, "--workers", 0, "--threads", 1)
    assert resumed.exit_code == 0, resumed.output
    ckpt = read_checkpoint(run / "latest.pt")
    assert ckpt["start_iter"] == 4 and ckpt["train_state"]["options"]["recon_weight"] == 1
    assert ckpt["train_state"]["options"]["stop_at"] == 0  # a session option: not carried into the resume
