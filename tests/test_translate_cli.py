"""`nicegan translate / bench / info` as users run them, including a job killed with SIGKILL."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from nicegan.cli import cli
from runtime_fixtures import distinct_frames, output_files, photo, read_clip, write_clip


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_translate_folder_names_failures_and_exits_non_zero(tiny_onnx, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), photo("coffee", 40, 52))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = run("translate", root, "-m", tiny_onnx, "--no-progress")
    assert result.exit_code == 1
    assert "backend: " in result.output and " on CPU" in result.output
    assert "FAILED" in result.output and "broken.jpg" in result.output
    assert "1 written" in result.output and "throughput (frames/s): decode" in result.output
    assert cv2.imread(str(tmp_path / "photos_nicegan" / "a.png")).shape == (40, 52, 3)


def test_translate_video_with_compare_to_the_default_name(tiny_checkpoint, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(5), fps=8)
    result = run("translate", clip, "-m", tiny_checkpoint, "--compare", "-b", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    frames, fps = read_clip(tmp_path / "clip_compare.mp4")
    assert len(frames) == 5 and fps == 8 and frames[0].shape == (48, 128, 3)
    again = run("translate", clip, "-m", tiny_checkpoint, "--compare", "--no-progress")
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_scale_runs_a_checkpoint_like_its_scaled_export(tiny_checkpoint, tmp_path):
    from nicegan.export.to_onnx import export_onnx
    scaled_onnx = export_onnx(tiny_checkpoint, tmp_path / "x2.onnx", scale=2, parity=False, log=lambda _: None).output
    image = tmp_path / "coffee.png"
    cv2.imwrite(str(image), photo("coffee", 44, 60))
    outputs = {}
    for name, args in (("ckpt", ["-m", tiny_checkpoint, "--scale", "2"]), ("onnx", ["-m", scaled_onnx]),
                       ("native", ["-m", tiny_checkpoint])):
        result = run("translate", image, tmp_path / f"{name}.png", *args, "--precision", "fp32", "--no-progress")
        assert result.exit_code == 0, result.output
        outputs[name] = cv2.imread(str(tmp_path / f"{name}.png")).astype(int)
    assert outputs["onnx"].shape == (44, 60, 3)
    assert np.abs(outputs["ckpt"] - outputs["onnx"]).max() <= 1
    assert np.abs(outputs["ckpt"] - outputs["native"]).mean() > 1
    refused = run("translate", image, tmp_path / "again.png", "-m", scaled_onnx, "--scale", "2")
    assert refused.exit_code == 1 and "--scale is for PyTorch checkpoints" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_user_errors_are_one_line_without_traceback(tiny_onnx, tmp_path):
    result = run("translate", tmp_path / "nothing", "-m", tiny_onnx)
    assert result.exit_code == 1 and "Error: input not found" in result.output
    assert "Traceback" not in result.output
    result = run("translate", tmp_path, "-m", tmp_path / "model.onnx")
    assert result.exit_code == 1 and "model not found" in result.output


def test_info_and_bench(tiny_onnx):
    info = run("info", tiny_onnx)
    assert info.exit_code == 0 and "backend: " in info.output and "dynamic_hw: True" in info.output
    bench = run("bench", "-m", tiny_onnx, "--batch-sizes", "1,2", "--sizes", "32x32", "--warmup", "1", "--runs", "2")
    assert bench.exit_code == 0, bench.output
    rows = [line.split() for line in bench.output.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert [row[:2] for row in rows] == [["1", "32x32"], ["2", "32x32"]]
    assert all(float(row[-1]) > 0 for row in rows)


def test_job_killed_with_sigkill_resumes_without_partial_files(tiny_onnx, tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    count = 40
    base = photo("astronaut", 256, 256)
    for i in range(count):
        cv2.imwrite(str(root / f"{i:03d}.png"), np.roll(base, 5 * i, axis=1))
    job = subprocess.Popen([sys.executable, "-m", "nicegan.cli", "translate", str(root), str(out), "-m", str(tiny_onnx),
                            "-b", "1", "--no-progress"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_visible(out)) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done = _visible(out)
    assert 3 <= len(done) < count, "the job was not stopped mid-way"
    for path in done:                                    # every visible output is complete
        assert cv2.imread(str(path)).shape == (256, 256, 3)

    resumed = run("translate", root, out, "-m", tiny_onnx, "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert f"{count - len(done)} written, {len(done)} already done" in resumed.output
    assert [p.name for p in output_files(out)] == [f"{i:03d}.png" for i in range(count)]   # no temp files


def _visible(folder: Path) -> list[Path]:
    return [p for p in output_files(folder) if not p.name.startswith(".")] if folder.exists() else []
