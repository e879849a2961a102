"""Jobs cut into units (runtime/jobs.py): shards that need no coordination, folders of videos,
and `--report` over the shards' summaries."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.runtime.jobs import JobError, Shard, parse_shard, plan_units, units_of
from nicegan.runtime.sources import open_source
from runtime_fixtures import distinct_frames, output_files, photo, read_clip, write_clip


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """A tree of 11 photos (two sizes, one nested folder), one corrupt file and two videos."""
    root = tmp_path_factory.mktemp("collection") / "in"
    (root / "sub").mkdir(parents=True)
    names = ["chelsea", "coffee", "rocket", "astronaut"]
    for i in range(11):
        folder = root / "sub" if i % 3 == 0 else root
        cv2.imwrite(str(folder / f"p{i:02d}.png"), photo(names[i % 4], 40 if i % 2 else 48, 56))
    (root / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    write_clip(root / "clip.mp4", distinct_frames(5))
    write_clip(root / "sub" / "pan.avi", distinct_frames(4), fourcc="XVID")
    return root


def run(*args) -> "CliRunner.Result":
    return CliRunner().invoke(cli, ["translate", *map(str, args)])


def images_of(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): cv2.imread(str(p)) for p in output_files(folder)
            if p.suffix == ".png"}


def test_shards_split_one_listing_without_overlap(collection):
    units = plan_units(open_source(str(collection)), part_size=2)
    assert [u.kind for u in units[:2]] == ["video", "video"]   # videos first, the largest first
    every = [p for u in units for p in u.paths]
    assert len(every) == len(set(every)) == 11 + 1 + 2
    for count in (1, 2, 3, 7):
        shards = [units_of(units, Shard(i, count)) for i in range(count)]
        paths = [p for shard in shards for u in shard for p in u.paths]
        assert sorted(paths) == sorted(every)                      # union: everything, no file twice
    assert plan_units(open_source(str(collection)), part_size=2) == units   # deterministic


def test_shard_arguments_and_the_environment(monkeypatch):
    assert parse_shard("2/5") == Shard(2, 5)
    assert parse_shard("auto", env={"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5",
                                     "SLURM_ARRAY_TASK_COUNT": "4"}) == Shard(2, 4)
    assert parse_shard("auto", env={"JOB_COMPLETION_INDEX": "3", "NICEGAN_SHARD_COUNT": "10"}) == Shard(3, 10)
    assert parse_shard("auto", count=8, env={"JOB_COMPLETION_INDEX": "3"}) == Shard(3, 8)
    for text, env, message in (("5/5", {}, "out of range"), ("a/b", {}, "give I/N"),
                               ("auto", {}, "no SLURM_ARRAY_TASK_ID"),
                               ("auto", {"JOB_COMPLETION_INDEX": "1"}, "--shard-count")):
        with pytest.raises(JobError, match=message):
            parse_shard(text, env=env)


def test_a_folder_of_videos_becomes_a_folder_of_videos(collection, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    result = run(collection, out, "-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress")
    assert result.exit_code == 1 and "broken.jpg" in result.output           # the corrupt file is listed
    assert len(read_clip(out / "clip.mp4")[0]) == 5 and len(read_clip(out / "sub" / "pan.avi")[0]) == 4
    assert len(images_of(out)) == 11
    assert "13 written" in result.output                                     # 11 images and 2 videos
    again = run(collection, out, "-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress")
    assert "0 written, 13 already done" in again.output


def test_three_shards_one_after_another_give_the_local_engines_outputs(collection, tiny_onnx, tmp_path):
    common = ["-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress"]
    local = run(collection, tmp_path / "local", *common)
    assert local.exit_code == 1
    for index in range(3):
        shard = run(collection, tmp_path / "sharded", *common, "--shard", f"{index}/3", "--part-size", "2")
        assert shard.exit_code in (0, 1) and f"shard {index}/3" in shard.output
    want, got = images_of(tmp_path / "local"), images_of(tmp_path / "sharded")
    assert sorted(got) == sorted(want)
    assert all(np.abs(got[k].astype(int) - want[k]).max() <= 1 for k in want)   # same backend, batch 1
    assert len(read_clip(tmp_path / "sharded" / "sub" / "pan.avi")[0]) == 4
    summaries = sorted((tmp_path / "sharded" / ".nicegan" / "shards").glob("*.json"))
    assert len(summaries) == 3
    failed = [f for s in summaries for f in json.loads(s.read_text())["failed"]]
    assert len(failed) == 1 and "broken.jpg" in failed[0]
    report = CliRunner().invoke(cli, ["translate", str(collection), str(tmp_path / "sharded"), "--report"])
    assert report.exit_code == 1 and "13 written, 0 already done (skipped), 1 failed" in report.output
    assert "end-to-end inf" not in report.output and "broken.jpg" in report.output and "without a summary" not in report.output


def test_report_names_the_shards_that_have_not_finished(collection, tiny_onnx, tmp_path):
    result = run(collection, tmp_path / "out", "-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress",
                 "--shard", "1/4")
    assert result.exit_code in (0, 1)
    report = CliRunner().invoke(cli, ["translate", str(collection), str(tmp_path / "out"), "--report"])
    assert report.exit_code == 1 and "shards without a summary yet: 0/4, 2/4, 3/4" in report.output
    nothing = CliRunner().invoke(cli, ["translate", str(collection), str(tmp_path / "empty"), "--report"])
    assert nothing.exit_code == 1 and "no shard summaries" in nothing.output


def test_a_single_file_cannot_be_sharded(collection, tiny_onnx, tmp_path):
    result = run(collection / "p01.png", tmp_path / "x.png", "-m", tiny_onnx, "--shard", "0/2")
    assert result.exit_code == 1 and "split a folder, glob or .txt list" in result.output


def test_temporal_filters_the_videos_of_a_folder_and_refuses_a_folder_of_images(collection, tiny_onnx, tmp_path):
    result = run(collection, tmp_path / "out", "-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress",
                 "--temporal")
    assert result.exit_code == 1 and "13 written" in result.output and "temporal" in result.output
    assert len(read_clip(tmp_path / "out" / "clip.mp4")[0]) == 5 and len(images_of(tmp_path / "out")) == 11
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes((collection / "p01.png").read_bytes())
    refused = run(photos, tmp_path / "x", "-m", tiny_onnx, "--backend", "onnxruntime", "--temporal")
    assert refused.exit_code == 1 and "--temporal needs a video" in refused.output


@pytest.mark.parametrize("engine", [[], ["--shard", "0/1"]], ids=["local", "shard"])
def test_a_rerun_removes_what_a_killed_writer_of_its_outputs_left(collection, tiny_onnx, tmp_path, engine):
    """A job killed mid-write leaves hidden temporary files (SIGKILL skips every cleanup), a video's
    as large as the video; the rerun, their outputs' one writer, removes them, and leaves another
    output's alone."""
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    leftovers = [out / "sub" / ".p03.k1ll3d_x.part.png", out / ".clip.k1ll3d_y.part.mp4"]
    foreign = [out / ".notours.abcdefgh.part.png", out / ".clip.abcdefgh.part.png"]
    for path in leftovers + foreign:
        path.write_bytes(b"half a file")
    done = run(collection, out, "-m", tiny_onnx, "--backend", "onnxruntime", "--no-progress", *engine)
    assert done.exit_code == 1 and (out / "sub" / "p03.png").is_file() and (out / "clip.mp4").is_file()
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in foreign)
