"""Unpaired folder data: layout checks, recursive listing, official transforms, corrupt files."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from nicegan.trainer.data import (
    CROP_MARGIN,
    DataError,
    ImageFolderDataset,
    InfiniteBatches,
    PassSampler,
    check_layout,
    eval_transform,
    fixed_test_images,
    list_images,
    to_tensor,
    train_transform,
)
from nicegan_testutils import real_photos


def write_photo(path: Path, size: int = 40, name: str = "coffee") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = cv2.resize(real_photos()[name], (size, size), interpolation=cv2.INTER_AREA)
    ext = path.suffix.lower()
    image = Image.fromarray(rgb)
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
    image.save(path, format=formats.get(ext, ext[1:].upper()))
    return path


def test_listing_is_recursive_case_insensitive_and_ignores_other_files(tmp_path):
    names = ["a.png", "b.JPG", "nested/c.jpeg", "nested/deeper/d.BMP", "e.webp", "f.tif", "g.TIFF"]
    for name in names:
        write_photo(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "h.gif").write_bytes(b"GIF89a")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert sorted(found) == sorted(names)


def test_missing_or_empty_folders_name_the_folder_and_the_layout(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: no such data folder.*trainA, trainB, testA, testB"):
        check_layout(tmp_path / "nowhere")
    for split in ("trainA", "trainB", "testA"):
        (tmp_path / split).mkdir()
    with pytest.raises(DataError, match=r"testB: no such folder"):
        check_layout(tmp_path)
    (tmp_path / "testB").mkdir()
    check_layout(tmp_path)
    with pytest.raises(DataError, match=r"trainA: no images found"):
        ImageFolderDataset(tmp_path / "trainA", eval_transform(32))


def test_to_tensor_maps_0_255_to_minus1_plus1():
    image = Image.fromarray(np.array([[[0, 128, 255]]], dtype=np.uint8))
    tensor = to_tensor(image)
    assert tensor.shape == (3, 1, 1) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.flatten().numpy(), [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)


@pytest.mark.parametrize("load_size", [0, 44])  # 0: the official img_size + 30
def test_train_transform_is_a_crop_of_the_square_resized_maybe_flipped_image(load_size):
    size = 32
    margin = load_size - size if load_size else CROP_MARGIN
    image = Image.fromarray(cv2.resize(real_photos()["chelsea"], (50, 40), interpolation=cv2.INTER_AREA))
    resized = to_tensor(image.resize((size + margin,) * 2, Image.Resampling.BILINEAR))
    candidates = {"plain": resized, "flipped": resized.flip(-1)}
    transform = train_transform(size, load_size)
    torch.manual_seed(0)
    seen_flips, seen_offsets = set(), set()
    for _ in range(12):
        out = transform(image)
        assert out.shape == (3, size, size)
        match = [(kind, top, left) for kind, full in candidates.items()
                 for top in range(margin + 1) for left in range(margin + 1)
                 if torch.equal(full[:, top:top + size, left:left + size], out)]
        assert len(match) == 1, "output is not a crop of the square-resized image"
        seen_flips.add(match[0][0])
        seen_offsets.add(match[0][1:])
    assert seen_flips == {"plain", "flipped"} and len(seen_offsets) > 6


def test_eval_transform_is_a_square_resize(tmp_path):
    path = write_photo(tmp_path / "x.png", size=50)
    out = eval_transform(24)(Image.open(path).convert("RGB"))
    expected = to_tensor(Image.open(path).convert("RGB").resize((24, 24), Image.Resampling.BILINEAR))
    assert torch.equal(out, expected)


def corrupt_folder(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "trainA"
    write_photo(folder / "good1.png", name="coffee")
    write_photo(folder / "good2.jpg", name="chelsea")
    bad = folder / "sub" / "broken.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    return folder, bad


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_images_are_reported_once_and_skipped(tmp_path, capfd, workers):
    folder, bad = corrupt_folder(tmp_path)
    batches = InfiniteBatches(ImageFolderDataset(folder, train_transform(32)), batch_size=2, workers=workers, seed=0)
    shapes = [next(batches).shape for _ in range(5)]  # > 3 passes over the 3 files
    assert shapes == [(2, 3, 32, 32)] * 5  # batches stay full: the bad file is replaced by good ones
    assert batches.passes >= 3
    lines = [line for line in capfd.readouterr().err.splitlines() if "broken.jpg" in line]
    assert lines == [f"warning: skipping unreadable image {bad} (corrupt or not an image; remove or replace it)"]


def test_a_folder_of_only_unreadable_files_is_a_clear_error(tmp_path):
    folder = tmp_path / "trainB"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"nope")
    (folder / "b.jpg").write_bytes(b"")
    batches = InfiniteBatches(ImageFolderDataset(folder, train_transform(32)), batch_size=1, workers=0, seed=0)
    with pytest.raises(DataError, match=r"trainB: none of its 2 images is readable"):
        next(batches)


def test_ranks_get_disjoint_shuffles_that_change_every_pass(tmp_path):
    for i in range(8):
        write_photo(tmp_path / f"{i}.png", size=8, name=("coffee", "rocket")[i % 2])
    dataset = ImageFolderDataset(tmp_path, eval_transform(8))
    streams = [InfiniteBatches(dataset, 1, 0, seed=5, rank=r, world_size=2) for r in (0, 1)]
    order = [s.sampler.indices() for s in streams]
    assert set(order[0]).isdisjoint(order[1]) and len(set(order[0]) | set(order[1])) == 8
    first_pass = order[0]
    for _ in range(5):  # the 4-image shard runs out on the 5th batch
        next(streams[0])
    streams[0].sampler.set_epoch(streams[0].passes)
    assert streams[0].passes == 1 and streams[0].sampler.indices() != first_pass


def test_fixed_test_images_are_the_first_readable_files_in_name_order(tmp_path):
    shutil.copy(write_photo(tmp_path / "b.png", name="rocket"), tmp_path / "d.png")
    (tmp_path / "a.png").write_bytes(b"corrupt")
    write_photo(tmp_path / "c.png", name="coffee")
    images = fixed_test_images(tmp_path, 16, 2)
    assert images.shape == (2, 3, 16, 16)
    expected = eval_transform(16)(Image.open(tmp_path / "b.png").convert("RGB"))
    assert torch.equal(images[0], expected)


def test_cyclegan_draws_trainb_with_replacement_a_new_draw_every_pass():
    sampler = PassSampler(8, seed=3, replacement=True)
    draws = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        draws.append(sampler.indices())
    assert all(len(d) == 8 and set(d) <= set(range(8)) for d in draws)
    assert any(len(set(d)) < 8 for d in draws) and draws[0] != draws[1]  # repeats: not a permutation
    shards = [PassSampler(8, seed=3, rank=r, world_size=2, replacement=True).indices() for r in (0, 1)]
    assert [len(s) for s in shards] == [4, 4] and sorted(shards[0] + shards[1]) == sorted(draws[0])


def test_the_bicubic_train_transform_crops_the_bicubic_resize():
    image = Image.fromarray(cv2.resize(real_photos()["rocket"], (50, 40), interpolation=cv2.INTER_AREA))
    resized = to_tensor(image.resize((40, 40), Image.Resampling.BICUBIC))
    out = train_transform(32, 40, Image.Resampling.BICUBIC)(image, torch.Generator().manual_seed(1))
    assert any(torch.equal(full[:, top:top + 32, left:left + 32], out) for full in (resized, resized.flip(-1))
               for top in range(9) for left in range(9))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_stream_resumed_mid_pass_yields_what_the_unbroken_one_does(tmp_path, workers):
    for i, name in enumerate(("coffee", "chelsea", "rocket", "astronaut", "coffee")):
        write_photo(tmp_path / "trainA" / f"{i}.png", size=40 + 4 * i, name=name)
    dataset = ImageFolderDataset(tmp_path / "trainA", train_transform(32))

    def stream(**state) -> InfiniteBatches:
        return InfiniteBatches(dataset, 2, workers, seed=1, stream=1, **state)

    unbroken = stream()
    expected = [next(unbroken) for _ in range(5)]  # 5 images in batches of 2: across two passes
    first = stream()
    got = [next(first) for _ in range(2)]
    resumed = stream(passes=first.passes, position=first.position)
    got += [next(resumed) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert (resumed.passes, resumed.position) == (unbroken.passes, unbroken.position)


def test_spread_order_puts_evenly_spaced_indices_first_and_keeps_the_others():
    from nicegan.trainer.data import spread_order
    assert spread_order(10, 4) == [0, 3, 6, 9, 1, 2, 4, 5, 7, 8]
    assert spread_order(3, 5) == [0, 1, 2]
    assert spread_order(5, 1) == [0, 1, 2, 3, 4]
