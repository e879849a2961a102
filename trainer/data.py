"""Training image folders (unpaired: DATA_ROOT/{trainA,trainB,testA,testB}; an architecture may
name others, as TUNIT's one unlabelled DATA_ROOT/train) and the official transforms.

Train: random horizontal flip, square resize to the load size (NICE-GAN: img_size+30, bilinear;
CycleGAN: 286, bicubic), random crop img_size, to [-1, 1]. Test: square resize to img_size, to
[-1, 1]. Implemented with PIL and torch (no torchvision); PIL's resize antialiases like
torchvision's PIL path.

The stream of training images is a pure function of (seed, domain, pass, position): each pass is
a seeded shuffle (or, for CycleGAN's trainB, draws with replacement, as the official loader
makes them) split between the ranks, and every image's flip and crop come from its own seed. A
run resumed from the middle of a pass therefore sees the same images, cropped the same way, as
the run that was never stopped, however many loader workers either used.

Unreadable files never stop a run: the dataset returns their path instead of a tensor, the
collate function sets them aside, and `InfiniteBatches` (main process) reports each one once
and refills the batch from the next files.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from nicegan.errors import NiceganError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
LAYOUT_HINT = "expected DATA_ROOT/trainA, trainB, testA, testB (folders of .jpg/.png/... images, searched recursively)"
CROP_MARGIN = 30  # official: resize to img_size+30, then random crop img_size


class DataError(NiceganError, ValueError):
    """A data folder that cannot be used; the message names the folder and the expected layout."""


@dataclass(frozen=True)
class DataLayout:
    """The folders under DATA_ROOT that an architecture trains on: one training stream per entry of
    `train` (stream name -> folder) and the fixed test images of each stream in `test`."""
    train: dict[str, str]
    test: dict[str, str]
    hint: str   # the expected layout, for the error messages

    @property
    def folders(self) -> tuple[str, ...]:
        return (*self.train.values(), *self.test.values())


UNPAIRED = DataLayout({"A": "trainA", "B": "trainB"}, {"A": "testA", "B": "testB"}, LAYOUT_HINT)


def list_images(folder: str | os.PathLike, hint: str = LAYOUT_HINT) -> list[Path]:
    """Image files under `folder`, recursively, sorted (stable order for fixed sample images)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; {hint}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{folder}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))}); {hint}")
    return files


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float CHW in [-1, 1], computed as torchvision's ToTensor + Normalize(0.5, 0.5)."""
    array = np.asarray(image, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)
    return tensor.sub_(0.5).div_(0.5)


@dataclass(frozen=True)
class TrainTransform:
    """Flip, square resize to load_size, random img_size crop; randomness from `generator` (the
    image's own seed), or torch's global one. A class, not a closure, so DataLoader workers started
    by spawn or forkserver (the default on macOS and Windows) can receive it."""
    img_size: int
    load_size: int
    resample: Image.Resampling = Image.Resampling.BILINEAR

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        if torch.rand((), generator=generator) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = image.resize((self.load_size, self.load_size), self.resample)
        top, left = torch.randint(0, self.load_size - self.img_size + 1, (2,), generator=generator).tolist()
        return to_tensor(image.crop((left, top, left + self.img_size, top + self.img_size)))


@dataclass(frozen=True)
class EvalTransform:
    """Square resize to img_size (deterministic: a training stream's `generator` goes unused)."""
    img_size: int
    resample: Image.Resampling = Image.Resampling.BILINEAR

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return to_tensor(image.resize((self.img_size, self.img_size), self.resample))


def train_transform(img_size: int, load_size: int = 0,
                    resample: Image.Resampling = Image.Resampling.BILINEAR) -> TrainTransform:
    """The official training transform; load_size 0 is img_size + 30, NICE-GAN's official."""
    return TrainTransform(img_size, load_size or img_size + CROP_MARGIN, resample)


def eval_transform(img_size: int, resample: Image.Resampling = Image.Resampling.BILINEAR) -> EvalTransform:
    return EvalTransform(img_size, resample)


class ImageFolderDataset(Dataset):
    """Images of one folder; an unreadable file yields its path (str) instead of a tensor. A key
    is an index, or (index, seed) for a training image whose augmentation draws from that seed."""

    def __init__(self, folder: str | os.PathLike, transform: Callable[[Image.Image], torch.Tensor],
                 hint: str = LAYOUT_HINT):
        self.folder, self.hint = Path(folder), hint
        self.files = list_images(folder, hint)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor | str:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path = self.files[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except Exception:  # PIL raises many types for truncated/corrupt/foreign files
            return str(path)
        if seed is None:
            return self.transform(rgb)
        return self.transform(rgb, torch.Generator().manual_seed(seed))


def collate_readable(items: Sequence[torch.Tensor | str]) -> tuple[torch.Tensor | None, list[str]]:
    """(batch of the readable images or None, paths of the unreadable ones)."""
    images = [x for x in items if isinstance(x, torch.Tensor)]
    bad = [x for x in items if isinstance(x, str)]
    return (torch.stack(images) if images else None), bad


def report_unreadable(path: str) -> None:
    tqdm.write(f"warning: skipping unreadable image {path} (corrupt or not an image; remove or replace it)",
               file=sys.stderr)


class PassSampler(Sampler):
    """The keys (index, augmentation seed) of one pass over a dataset, for one rank, from `start`.

    A pass is a seeded shuffle split between the ranks exactly as DistributedSampler splits it
    (padded by repetition to a multiple of the world size), or with `replacement` as many draws
    with replacement (the official CycleGAN loader's trainB). Seeds differ per stream (domain),
    pass and rank.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, replacement: bool = False,
                 stream: int = 0):
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.replacement, self.stream = replacement, stream
        self.per_rank = math.ceil(size / world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        """This rank's image indices of the pass, from its beginning."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.per_rank * self.world_size
        if self.replacement:
            order = torch.randint(self.size, (total,), generator=generator).tolist()
        else:
            order = torch.randperm(self.size, generator=generator).tolist()
            order = (order * math.ceil(total / self.size))[:total]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seeds = np.random.SeedSequence([self.seed, self.stream, self.epoch, self.rank]).generate_state(self.per_rank)
        keys = list(zip(self.indices(), map(int, seeds)))
        return iter(keys[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start


class InfiniteBatches:
    """Endless batches of one domain: the loader is re-iterated when exhausted (no epochs).

    Every pass has new keys (`PassSampler.set_epoch`). `passes` and `position` (the keys of the
    current pass already consumed) are the stream's state: a stream made with a saved state goes
    on where the saved one stopped.
    """

    def __init__(self, dataset: ImageFolderDataset, batch_size: int, workers: int, seed: int,
                 rank: int = 0, world_size: int = 1, pin_memory: bool = False, passes: int = 0, position: int = 0,
                 worker_init_fn: Callable[[int], None] | None = None, replacement: bool = False, stream: int = 0):
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = PassSampler(len(dataset), seed, rank, world_size, replacement, stream)
        # Its own generator: iterating a loader draws a base seed, which must not consume the
        # global torch RNG (a resumed run would otherwise draw once more than the unbroken one).
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate_readable, pin_memory=pin_memory,
                                 persistent_workers=workers > 0, worker_init_fn=worker_init_fn,
                                 generator=torch.Generator().manual_seed(seed))
        if position >= self.sampler.per_rank:  # saved just after the pass's last batch
            passes, position = passes + 1, 0
        self.passes, self.position = passes, position
        self.reported: set[str] = set()
        self._iter: Iterator | None = None
        self._readable_in_pass = 0

    def _next_images(self) -> torch.Tensor | None:
        """The readable images of the next loader batch; None when a pass just ended."""
        if self._iter is None:
            self.sampler.set_epoch(self.passes)
            self.sampler.start = self.position
            self._iter = iter(self.loader)
            self._readable_in_pass = self.position  # a resumed pass: the run that saved read those
        try:
            images, bad = next(self._iter)
        except StopIteration:
            if self._readable_in_pass == 0:
                raise DataError(f"{self.dataset.folder}: none of its {len(self.dataset)} images is readable; "
                                f"{self.dataset.hint}") from None
            self.passes, self.position = self.passes + 1, 0
            self._iter = None
            return None
        self.position += len(bad) + (0 if images is None else images.shape[0])
        for path in bad:
            if path not in self.reported:
                self.reported.add(path)
                report_unreadable(path)
        if images is not None:
            self._readable_in_pass += images.shape[0]
        return images

    def __next__(self) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        count = 0
        while count < self.batch_size:
            images = self._next_images()
            if images is not None:
                parts.append(images)
                count += images.shape[0]
        batch = parts[0] if len(parts) == 1 else torch.cat(parts)
        return batch[: self.batch_size]

    def __iter__(self) -> "InfiniteBatches":
        return self


def spread_order(n: int, count: int) -> list[int]:
    """0..n-1 with `count` evenly spaced indices first (then the others, to stand in for unreadable ones)."""
    first = sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(min(count, n))})
    chosen = set(first)
    return first + [i for i in range(n) if i not in chosen]


def fixed_test_images(folder: str | os.PathLike, img_size: int, count: int,
                      resample: Image.Resampling = Image.Resampling.BILINEAR, hint: str = LAYOUT_HINT,
                      spread: bool = False) -> torch.Tensor:
    """`count` readable test images, for sample grids that stay comparable: the first ones (sorted
    names), or with `spread` ones evenly spaced over the sorted list (a folder of sub-folders, whose
    first images would all come from the first sub-folder)."""
    dataset = ImageFolderDataset(folder, eval_transform(img_size, resample), hint)
    images = []
    for index in (spread_order(len(dataset), count) if spread else range(len(dataset))):
        item = dataset[index]
        if isinstance(item, torch.Tensor):
            images.append(item)
            if len(images) == count:
                break
    if not images:
        raise DataError(f"{folder}: none of its images is readable; {hint}")
    return torch.stack(images)


def check_layout(data_root: str | os.PathLike, layout: DataLayout = UNPAIRED) -> dict[str, Path]:
    """The layout's folders by name, after checking they exist (each dataset checks it holds images)."""
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder; {layout.hint}")
    folders = {name: root / name for name in layout.folders}
    for folder in folders.values():
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder; {layout.hint}")
    return folders
