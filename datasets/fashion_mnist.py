"""`nicegan data OUT --task fashion-mnist`: Fashion-MNIST (Xiao, Rasul and Vollgraf 2017; Zalando,
MIT licence) as TUNIT's data, from the Debian package `dataset-fashion-mnist` (or any folder of the
four original IDX files): OUT/train/<class>/ and OUT/test/<class>/, 28 x 28 grey images padded to
32 x 32 (black, like their background).

TUNIT trains on OUT/train without reading the class folders (the loader is recursive); the same
folders are the labels of `nicegan eval OUT/test --model RUN/latest.pt`.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np

from nicegan.common import write_text_atomic
from nicegan.datasets.offline_data import DatasetBuildError

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
PADDED = 32
SOURCES = """# Sources

Fashion-MNIST (Han Xiao, Kashif Rasul, Roland Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", 2017), Copyright (c) 2017 Zalando SE, MIT licence; read
from {source} (Debian package dataset-fashion-mnist). Images padded from 28 x 28 to 32 x 32{resized}.
Classes kept: {classes}; per class {train} training and {test} test images (the first ones).
"""


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def read_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, labels (n,))."""
    images_file, labels_file = (source / name for name in FILES[split])
    for path in (images_file, labels_file):
        if not path.is_file():
            raise DatasetBuildError(f"{path}: missing; install Debian's dataset-fashion-mnist (apt-get install "
                               "dataset-fashion-mnist) or pass --source DIR with the four IDX .gz files")
    return read_idx(images_file, 16).reshape(-1, 28, 28), read_idx(labels_file, 8)


def parse_classes(text: str) -> list[int]:
    """'7,9' or 'all' -> class indices."""
    if text == "all":
        return list(range(len(CLASSES)))
    try:
        chosen = sorted({int(v) for v in text.split(",")})
    except ValueError:
        chosen = []
    if not chosen or not all(0 <= c < len(CLASSES) for c in chosen):
        raise DatasetBuildError(f"--classes {text}: give class numbers 0..9 separated by commas ("
                           + ", ".join(f"{i} {name}" for i, name in enumerate(CLASSES)) + "), or all")
    return chosen


def to_image(image: np.ndarray, size: int) -> np.ndarray:
    padded = np.pad(image, (PADDED - image.shape[0]) // 2)
    return padded if size == PADDED else cv2.resize(padded, (size, size), interpolation=cv2.INTER_AREA)


def build_fashion_mnist(out_root: Path, size: int, train_count: int, test_count: int, classes: list[int],
                        source: Path = DEBIAN_FOLDER) -> dict[str, int]:
    """Write the chosen classes' first images of each split; returns the counts per split folder."""
    counts = {}
    for split, count in (("train", train_count), ("test", test_count)):
        images, labels = read_split(source, split)
        for c in classes:
            folder = out_root / split / f"{c}_{CLASSES[c]}"
            folder.mkdir(parents=True, exist_ok=True)
            chosen = np.flatnonzero(labels == c)[:count]
            for index in chosen:
                cv2.imwrite(str(folder / f"{index:05d}.png"), to_image(images[index], size))
            counts[f"{split}/{folder.name}"] = len(chosen)
    write_text_atomic(out_root / "SOURCES.md", SOURCES.format(
        source=source, resized="" if size == PADDED else f", then resized to {size} x {size}",
        classes=", ".join(f"{c} {CLASSES[c]}" for c in classes), train=train_count, test=test_count))
    return counts
