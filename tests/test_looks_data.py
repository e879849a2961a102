"""The multi-look dataset (`nicegan data --task looks`) on scikit-image's photos, with OpenCV's real
filters and a tiny CycleGAN generator standing in for vintagify's teacher (as test_offline_data does)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.datasets.looks import (
    INPUT_LOOK,
    LOOKS_FILE,
    OPENCV_LOOKS,
    VINTAGE,
    assign_looks,
    build_looks_dataset,
    opencv_look,
)
from nicegan.datasets.offline_data import load_teacher, plan_dataset, run_teacher, skimage_sources, split_counts
from nicegan.models.cyclegan.networks import CycleGANConfig, CycleGANGenerator
from nicegan_testutils import assert_within_one_level

SIZE = 32
LOOKS = [*OPENCV_LOOKS, VINTAGE]
COUNTS = dict(train_count=8, test_count=4, val_count=2)


@pytest.fixture(scope="module")
def stand_in_teacher(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "G_tiny.pth"
    torch.save(CycleGANGenerator(CycleGANConfig(ngf=4, n_blocks=1, affine_norm=True)).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, stand_in_teacher) -> Path:
    root = tmp_path_factory.mktemp("looks")
    counts = build_looks_dataset(root, SIZE, seed=3, teacher_path=stand_in_teacher, sources=skimage_sources(),
                                 progress=False, **COUNTS)
    assert counts["trainB"] == 8 and counts["testA"] == 4 and counts["testA_looks/pencil"] == 4
    assert counts["valA_looks/input"] == 2
    return root


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_every_b_image_has_its_look_recorded_in_equal_shares(built):
    record = json.loads((built / LOOKS_FILE).read_text())
    assert list(record["looks"]) == LOOKS and record["input_look"] == INPUT_LOOK
    for folder, count in (("trainB", 8), ("testB", 4), ("valB", 2)):
        names = sorted(p.name for p in (built / folder).glob("*.png"))
        assert sorted(record[folder]) == names and len(names) == count
        shares = [list(record[folder].values()).count(look) for look in LOOKS]
        assert max(shares) - min(shares) <= 1
    for paired, plain in (("testA_looks", "testA"), ("valA_looks", "valA")):
        names = sorted(p.name for p in (built / plain).glob("*.png"))
        for look in (INPUT_LOOK, *LOOKS):
            assert sorted(p.name for p in (built / paired / look).glob("*.png")) == names


def test_the_files_are_the_planned_windows_through_their_looks(built, stand_in_teacher):
    planned = plan_dataset(skimage_sources(), split_counts(**COUNTS), 3, progress=False)
    assigned = assign_looks(planned.crops, LOOKS, 3)
    teacher = load_teacher(stand_in_teacher, "cpu")
    transforms = {name: opencv_look(apply, SIZE, 2 * SIZE) for name, (_, apply) in OPENCV_LOOKS.items()}
    transforms[VINTAGE] = lambda windows: run_teacher(teacher, windows, SIZE, 2 * SIZE, "cpu")

    def window(crop):
        return planned.frames[crop.source][crop.frame][crop.y:crop.y + crop.side, crop.x:crop.x + crop.side]

    test_crop = next(c for c in planned.crops if c.folder == "testA")
    for look in LOOKS:  # a batch of one here, a batch of the build's crops there: one level apart at most
        assert_within_one_level(read_rgb(built / "testA_looks" / look / test_crop.file_name),
                                transforms[look]([window(test_crop)])[0])
    b_crops = [c for c in planned.crops if c.folder == "trainB"]
    for crop in b_crops:
        assert_within_one_level(read_rgb(built / "trainB" / crop.file_name),
                                transforms[assigned["trainB", crop.index]]([window(crop)])[0])
    assert np.array_equal(read_rgb(built / "testA_looks" / INPUT_LOOK / test_crop.file_name),
                          read_rgb(built / "testA" / test_crop.file_name))


def test_the_looks_differ_in_brightness_and_texture_not_only_in_colour(built):
    """Grey levels (what is left without colour) and their gradients differ between every two looks."""
    def grey(look: str) -> np.ndarray:
        return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY).astype(float)
                         for p in sorted((built / "testA_looks" / look).glob("*.png"))])

    def edges(images: np.ndarray) -> np.ndarray:
        return np.abs(np.diff(images, axis=2))

    greys = {look: grey(look) for look in (INPUT_LOOK, *LOOKS)}
    for i, first in enumerate(greys):
        for second in list(greys)[i + 1:]:
            assert np.abs(greys[first] - greys[second]).mean() > 2, (first, second)
            assert np.abs(edges(greys[first]) - edges(greys[second])).mean() > 1, (first, second)


def test_a_resumed_build_rewrites_only_the_missing_files(built, stand_in_teacher):
    files = sorted(built.rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    missing = sorted((built / "testA_looks" / "stylization").glob("*.png"))[0]
    content = read_rgb(missing)
    missing.unlink()
    build_looks_dataset(built, SIZE, seed=3, teacher_path=stand_in_teacher, sources=skimage_sources(),
                        progress=False, **COUNTS)
    assert np.array_equal(read_rgb(missing), content)
    same_crop = [p for p in files if p.name == missing.name
                 and (p.parent == built / "testA" or p.parent.parent == built / "testA_looks")]
    assert len(same_crop) == 2 + len(LOOKS)  # the crop's files are written together, as in the vintage task
    assert [p for p in files if p.stat().st_mtime_ns != stamps[p]] == same_crop


@pytest.mark.parametrize("quiet", [False, True])
def test_the_cli_builds_the_looks_task(tmp_path, stand_in_teacher, quiet):
    result = CliRunner().invoke(cli, ["data", str(tmp_path / "ds"), "--task", "looks", "--size", "32",
                                      "--train-count", "4", "--test-count", "1", "--val-count", "0",
                                      "--teacher", str(stand_in_teacher)] + ["--no-progress"] * quiet)
    assert result.exit_code == 0, result.output
    assert "trainB=4" in result.output and "testA_looks/vintage=1" in result.output
    assert ("writing crops" in result.output) != quiet     # the progress bar, unless --no-progress
    assert "looks" in json.loads((tmp_path / "ds" / "build.json").read_text())["task"]
