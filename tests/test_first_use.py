"""What a new user meets on the first day: the README's commands as written, defaults that work,
and output that says each thing once."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.models.nicegan.architecture import default_n_dis
from nicegan.runtime.demo import DEFAULT_MODEL
from nicegan.trainer.options import TrainError, TrainOptions, resolve_options
from runtime_fixtures import photo

REPO = Path(__file__).resolve().parents[1]


def readme_commands(program: str, section: str) -> list[list[str]]:
    """The `program ...` lines of the README's code blocks under `## section`, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", body, re.S)
    return [shlex.split(line.split("  #", 1)[0]) for block in blocks for line in block.splitlines()
            if line.startswith(program + " ")]


def train_options(args: list[str]) -> TrainOptions:
    """What `nicegan train ARGS` would train with, parsed by the real command, without training."""
    command = cli.commands["train"]
    ctx = command.make_context("train", args)
    params = dict(ctx.params)
    return TrainOptions(data_root=params.pop("data_root"), out=params.pop("out"), **params)


def test_every_readme_training_command_is_accepted_as_written():
    # The section also shows the data, export and eval steps of a family (TUNIT's); its train lines are checked.
    commands = readme_commands("nicegan train", "Training")
    assert len(commands) >= 6 and all(c[:2] == ["nicegan", "train"] for c in commands)
    for command in commands:
        options = resolve_options(train_options(command[2:]))
        assert options.img_size >= 3 * 2 ** (options.n_dis - 2), command
    torchrun = readme_commands("torchrun", "Training")
    assert torchrun and all("nicegan.cli" in c for c in torchrun)   # never `-m cli`: a stray ./cli.py would run


def test_the_discriminator_depth_follows_the_crop_unless_given():
    assert [default_n_dis(size) for size in (48, 64, 95, 96, 128, 256)] == [6, 6, 6, 7, 7, 7]
    assert resolve_options(train_options(["data", "--out", "run", "--img-size", "64"])).n_dis == 6
    assert resolve_options(train_options(["data", "--out", "run"])).n_dis == 7   # the official default
    with pytest.raises(TrainError, match="--img-size 64: .*depth 7 needs .* at least 96 px; use --n-dis 6, or leave "
                                         "--n-dis out"):
        resolve_options(train_options(["data", "--out", "run", "--img-size", "64", "--n-dis", "7"]))
    with pytest.raises(TrainError, match="--img-size 32: .*at least 48 px; use a multiple of 4 of at least 48"):
        resolve_options(train_options(["data", "--out", "run", "--img-size", "32"]))


def test_translate_without_a_model_uses_the_bundled_one_and_says_so(tmp_path):
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo("chelsea", 48, 64))
    result = CliRunner().invoke(cli, ["translate", str(tmp_path / "photo.jpg"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"model: the bundled photo->vintage model ({DEFAULT_MODEL})" in result.output
    assert cv2.imread(str(tmp_path / "photo_nicegan.jpg")).shape == (48, 64, 3)


def test_bench_names_its_backend_once(tiny_onnx):
    result = CliRunner().invoke(cli, ["bench", "-m", str(tiny_onnx), "--batch-sizes", "1", "--sizes", "32x32",
                                      "--warmup", "0", "--runs", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.count("backend:") == 1


def test_only_an_fp16_export_talks_about_fp32_islands(tiny_checkpoint, tmp_path):
    for flags, islands in (([], False), (["--fp16"], True)):
        result = CliRunner().invoke(cli, ["export", "onnx", str(tiny_checkpoint), "-o", str(tmp_path / "m.onnx"),
                                          *flags])
        assert result.exit_code == 0, result.output
        assert ("FP32 norm islands" in result.output) is islands and ("as FP32 islands" in result.output) is islands


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_demo_output_is_ignored_in_a_checkout():
    done = subprocess.run(["git", "check-ignore", "-q", "nicegan_demo/bigbuckbunny_320x180_vintage.mp4"], cwd=REPO)
    assert done.returncode == 0
