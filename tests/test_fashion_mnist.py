"""`nicegan data --task fashion-mnist`: the IDX files (here written by the test, in the original
format, from real photo crops) become TUNIT's DATA_ROOT/{train,test}/<class>/ of 32 x 32 images."""
from __future__ import annotations

import gzip
import struct

import cv2
import numpy as np
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.datasets.fashion_mnist import FILES
from nicegan_testutils import random_crops, real_photos


def write_idx(folder, split: str, count: int) -> np.ndarray:
    grey = cv2.cvtColor(real_photos()["coffee"], cv2.COLOR_RGB2GRAY)
    images = np.stack(random_crops(grey[..., None], count, 28, seed=len(split))).reshape(count, 28, 28)
    labels = (np.arange(count) % 10).astype(np.uint8)
    images_file, labels_file = FILES[split]
    with gzip.open(folder / images_file, "wb") as f:
        f.write(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
    with gzip.open(folder / labels_file, "wb") as f:
        f.write(struct.pack(">II", 2049, count) + labels.tobytes())
    return images


def test_the_chosen_classes_become_padded_class_folders(tmp_path):
    source = tmp_path / "idx"
    source.mkdir()
    train = write_idx(source, "train", 40)
    write_idx(source, "test", 20)
    out = tmp_path / "fmnist"
    result = CliRunner().invoke(cli, ["data", str(out), "--task", "fashion-mnist", "--source", str(source),
                                      "--classes", "7,9", "--train-count", 3, "--test-count", 2, "--size", 32])
    assert result.exit_code == 0, result.output
    assert "train/7_sneaker=3 train/9_ankle-boot=3 test/7_sneaker=2 test/9_ankle-boot=2" in result.output
    first = cv2.imread(str(out / "train" / "7_sneaker" / "00007.png"), cv2.IMREAD_UNCHANGED)
    assert first.shape == (32, 32) and np.array_equal(first[2:30, 2:30], train[7]) and first[0].max() == 0
    assert "MIT" in (out / "SOURCES.md").read_text()


def test_a_missing_source_names_the_package(tmp_path):
    result = CliRunner().invoke(cli, ["data", str(tmp_path / "o"), "--task", "fashion-mnist", "--source",
                                      str(tmp_path)])
    assert result.exit_code == 1 and "apt-get install dataset-fashion-mnist" in result.output
