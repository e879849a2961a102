"""`nicegan train --arch tunit` end to end on real photos: the one unlabelled folder, the phases
in the log, the checkpoint (queue, EMA networks, pseudo-domain styles), the sample grids, an exact
resume, and the one-line refusals of options that cannot train."""
from __future__ import annotations

import csv

import cv2
import pytest
import torch
from click.testing import CliRunner

from conftest import TUNIT_ARGS
from nicegan.cli import cli
from nicegan.models.architecture import read_any_checkpoint
from nicegan.models.tunit.step import LOSSES
from nicegan.trainer.checkpoint import read_checkpoint_file
from nicegan.trainer.loop import Trainer
from nicegan.trainer.options import TrainOptions

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_run_logs_both_phases_and_keeps_queue_ema_and_styles(tunit_run):
    architecture, ckpt = read_any_checkpoint(tunit_run / "latest.pt")
    assert architecture.name == "tunit" and ckpt["start_iter"] == 4
    assert set(("C", "C_EMA", "G", "G_EMA", "D", "C_optimizer", "G_optimizer", "D_optimizer")) <= set(ckpt)
    # The queue: one batch of keys at the start and one per iteration (8-d styles).
    assert ckpt["train_state"]["queue"].shape == (4 * 5, 8)
    assert ckpt["deployed_generator"] == "G_EMA"   # G_EMA averages from step 4 (--ema-start 3)
    assert ckpt["domain_styles"].shape == (2, 8) and int(ckpt["domain_counts"].sum()) == 8
    with open(tunit_run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and set(LOSSES) <= set(rows[0])
    assert all(float(r["d_loss"]) == 0 and float(r["g_loss"]) == 0 for r in rows[:2])  # C alone, as logged officially
    assert all(float(r["d_loss"]) > 0 and float(r["c_loss"]) > 0 for r in rows[2:])
    for name, columns in (("reference", 3), ("clusters", 3)):   # 2 sources (+ a header); 2 refs or 2 domains
        grid = cv2.imread(str(tunit_run / "samples" / f"{name}_0000004.png"))
        assert grid.shape == (3 * 32, columns * 32, 3), name


def test_sub_folders_are_one_unlabelled_stream(unlabelled_dataset, tmp_path):
    options = TrainOptions(str(unlabelled_dataset), str(tmp_path / "r"), arch="tunit", img_size=32, ch=8, sty_dim=8,
                           k=2, batch_size=4, workers=0, n_samples=0, iters=1)
    trainer = Trainer(options)
    assert list(trainer.datasets) == ["images"]
    assert len(trainer.datasets["images"]) == len(list((unlabelled_dataset / "train").rglob("*.png"))) == 12
    batch = next(trainer.batches["images"])
    assert batch.shape == (4, 6, 32, 32)   # each image and its augmented view, and no label
    assert trainer.model.test_images.shape == (8, 3, 32, 32)   # every test image, for the domain styles


def test_a_resumed_run_equals_the_unbroken_one(unlabelled_dataset, tmp_path):
    common = ["--iters", 4, "--separated", 1, "--ema-start", 2, "--sample-every", 100, "--save-every", 100]
    assert run("train", unlabelled_dataset, "--out", tmp_path / "whole", *TUNIT_ARGS, *common).exit_code == 0
    first = run("train", unlabelled_dataset, "--out", tmp_path / "parts", *TUNIT_ARGS, *common, "--stop-at", 2)
    assert first.exit_code == 0, first.output
    second = run("train", unlabelled_dataset, "--out", tmp_path / "parts", "--resume", "--threads", 1, "--workers", 0)
    assert second.exit_code == 0, second.output
    whole = read_checkpoint_file(tmp_path / "whole" / "latest.pt")
    parts = read_checkpoint_file(tmp_path / "parts" / "latest.pt")
    for name in ("C", "C_EMA", "G", "G_EMA", "D"):
        for key, value in whole[name].items():
            assert torch.equal(value, parts[name][key]), f"{name}.{key}"
    assert torch.equal(whole["train_state"]["queue"], parts["train_state"]["queue"])
    assert whole["C_optimizer"]["state"][0]["step"] == parts["C_optimizer"]["state"][0]["step"]


@pytest.mark.parametrize("args, message", [
    (["--img-size", 48], "--img-size 48: .*power of two of at least 32"),
    (["--batch-size", 1], "--batch-size 1: .*at least 2"),
    (["--separated", 5, "--ema-start", 3], "--ema-start of at least --separated"),
    (["--latent-dim", 8], "--latent-dim is an option of --arch nicegan"),
    (["--n-res", 4], "--n-res is an option of --arch nicegan"),
])
def test_options_that_cannot_train_are_refused_in_one_line(unlabelled_dataset, tmp_path, args, message):
    result = run("train", unlabelled_dataset, "--out", tmp_path / "r", *TUNIT_ARGS, *args)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and __import__("re").search(message, result.output), result.output


def test_tunit_options_are_refused_by_the_other_families_and_a_missing_folder_is_named(image_dataset, tmp_path):
    result = run("train", image_dataset, "--out", tmp_path / "r", "--k", 4)
    assert result.exit_code == 1 and "--k is an option of --arch tunit" in result.output
    result = run("train", image_dataset, "--out", tmp_path / "r", *TUNIT_ARGS)
    assert result.exit_code == 1 and f"{image_dataset / 'train'}: no such folder; expected DATA_ROOT/train" in result.output
