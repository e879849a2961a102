"""Shared helpers for the tests: tiny models that behave like trained ones, and real images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nicegan.models.nicegan.checkpoint import NiceConfig, NiceNetworks, build_networks, checkpoint_dict
from nicegan.models.nicegan.networks import ILN, adaILN
from nicegan.trainer.checkpoint import atomic_torch_save

# Small enough for 2 CPU cores, big enough for the full discriminator heads (n_dis 6 needs >= 48 px).
TINY = NiceConfig(img_size=64, ch=8, n_res=2, n_dis=6, light=True)
TINY_FULL = NiceConfig(img_size=64, ch=8, n_res=2, n_dis=6, light=False)


def make_trained_like(config: NiceConfig = TINY, seed: int = 0) -> NiceNetworks:
    """Networks whose parameters look trained: lamda != 0, distinct rho, ILN gamma/beta != 1/0, and
    spectral-norm u/v advanced by a few power iterations. Fresh init hides CAM, rho and SN bugs."""
    torch.manual_seed(seed)
    nets = build_networks(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in nets.as_dict().values():
            for sub in module.modules():
                if isinstance(sub, (ILN, adaILN)):
                    sub.rho.copy_(torch.randn(sub.rho.shape, generator=gen) * 1.5)
                if isinstance(sub, ILN):
                    sub.gamma.copy_(1 + 0.3 * torch.randn(sub.gamma.shape, generator=gen))
                    sub.beta.copy_(0.2 * torch.randn(sub.beta.shape, generator=gen))
        for dis in (nets.disA, nets.disB):
            dis.lamda.fill_(0.7)
            dis.train()
            for _ in range(3):  # train-mode forwards run SN power iterations
                dis(torch.randn(2, config.img_ch, config.img_size, config.img_size, generator=gen))
    for module in nets.as_dict().values():
        module.eval()
    return nets


def assert_within_one_level(image: np.ndarray, expected: np.ndarray, share: float = 0.01) -> None:
    """uint8 images computed in floating point by other kernels (another batch composition, another
    CPU's SIMD path): a pixel may round to the next level, so equal up to one level in a few pixels.
    Exact comparisons are for exact computations (copies, integer conversions, the same batch)."""
    difference = np.abs(image.astype(int) - expected.astype(int))
    assert image.shape == expected.shape, (image.shape, expected.shape)
    assert difference.max() <= 1 and (difference > 0).mean() <= share, (difference.max(), (difference > 0).mean())


def save_checkpoint(nets: NiceNetworks, path: Path, step: int = 1234, with_config: bool = True) -> Path:
    ckpt = checkpoint_dict(nets, None, None, step)
    if not with_config:
        ckpt.pop("config")
    atomic_torch_save(ckpt, path)
    return path


def real_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled CC0/public-domain photos, RGB uint8 (no download)."""
    from skimage import data
    return {name: getattr(data, name)() for name in ("coffee", "chelsea", "rocket", "astronaut")}


def random_crops(image: np.ndarray, count: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out.append(np.ascontiguousarray(image[y:y + size, x:x + size]))
    return out


def write_unpaired_dataset(root: Path, size: int = 64, n_train: int = 8, n_test: int = 4) -> Path:
    """DATA_ROOT/{trainA,trainB,testA,testB}: A = coffee+chelsea crops, B = rocket+astronaut crops,
    a mix of PNG and JPEG files and one nested sub-folder (the loader is recursive)."""
    import cv2
    photos = real_photos()
    domains = {"A": ("coffee", "chelsea"), "B": ("rocket", "astronaut")}
    for domain, names in domains.items():
        for split, count, seed in (("train", n_train, 1), ("test", n_test, 2)):
            crops = [c for i, n in enumerate(names) for c in random_crops(photos[n], count // 2, size, seed + i)]
            folder = root / f"{split}{domain}"
            for i, crop in enumerate(crops):
                sub = folder / "nested" if i % 4 == 3 else folder
                sub.mkdir(parents=True, exist_ok=True)
                ext = ".jpg" if i % 2 else ".png"
                cv2.imwrite(str(sub / f"{domain}{i:03d}{ext}"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return root


def write_unlabelled_dataset(root: Path, size: int = 48, n_train: int = 12, n_test: int = 8) -> Path:
    """TUNIT's DATA_ROOT/{train,test}: crops of the four photos, in one sub-folder per photo (the
    loader is recursive and must not read the sub-folders as labels); the test crops labelled the
    same way, so that they also serve as a labelled evaluation set."""
    import cv2
    photos = real_photos()
    for split, count, seed in (("train", n_train, 1), ("test", n_test, 2)):
        for index, (name, photo) in enumerate(photos.items()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(random_crops(photo, count // len(photos), size, seed + index)):
                cv2.imwrite(str(folder / f"{name}{i:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return root
