"""`nicegan eval` on folders: FID and KID x100 of FAKE_DIR against REAL_DIR, PSNR/SSIM against a
paired reference, and optionally each metric's difference from a baseline's outputs with a
bootstrap interval (see evaluation/bootstrap.py)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nicegan.common import write_text_atomic
from nicegan.evaluation.bootstrap import (
    Difference,
    PairedScores,
    PerImageScores,
    compare_to_baseline,
    format_comparison,
)
from nicegan.evaluation.metrics import (
    PROTOCOL,
    SSIM_DEFINITION,
    Extractor,
    MetricsError,
    capped_subset_size,
    extract_features,
    fid_from_features,
    kid_from_features,
    list_folder_images,
    load_extractor,
    psnr,
    read_rgb,
    readable_images,
    ssim,
)


@dataclass
class EvalResult:
    n_real: int
    n_fake: int
    fid: float
    kid_x100: float
    kid_x100_std: float
    kid_subsets: int
    kid_subset_size: int
    feature_dim: int
    extractor: str
    extractor_sha256: str
    protocol: str = PROTOCOL
    n_paired: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    ssim_definition: str | None = None
    seed: int = 0
    baseline: str | None = None
    bootstrap_resamples: int | None = None
    vs_baseline: list[Difference] | None = None
    skipped: list[str] = field(default_factory=list)   # unreadable images, one line each
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def paired_scores(fake: dict[str, Path], reference: dict[str, Path], reference_dir: Path,
                  progress: bool = True, desc: str = "PSNR/SSIM") -> PairedScores:
    """PSNR and SSIM of every fake image against the reference of the same relative path stem."""
    rows = [i for i, key in enumerate(fake) if key in reference]
    if not rows:
        raise MetricsError(f"{reference_dir}: no file name matches the fake folder's; the paired reference "
                           "needs the same relative paths (extensions may differ)")
    keys = list(fake)
    psnrs, ssims = [], []
    for row in tqdm(rows, desc=desc, unit="img", disable=not progress):
        key = keys[row]
        ref, img = read_rgb(reference[key]), read_rgb(fake[key])
        if ref.shape != img.shape:
            raise MetricsError(f"{fake[key]}: size {img.shape[1]}x{img.shape[0]} differs from "
                               f"{reference[key]} ({ref.shape[1]}x{ref.shape[0]}); paired images must match")
        psnrs.append(psnr(ref, img))
        ssims.append(ssim(ref, img))
    return PairedScores(np.array(rows), np.array(psnrs), np.array(ssims))


def baseline_in_fake_order(fake: dict[str, Path], baseline: dict[str, Path], baseline_dir: Path) -> dict[str, Path]:
    """The baseline's files for FAKE's inputs, in FAKE's order; both must hold the same relative names."""
    missing = [key for key in fake if key not in baseline]
    extra = [key for key in baseline if key not in fake]
    if missing or extra:
        example = f"{missing[0]} is missing" if missing else f"{extra[0]} has no fake counterpart"
        raise MetricsError(f"{baseline_dir}: {len(missing)} of the fake folder's images are missing and "
                           f"{len(extra)} are extra (e.g. {example}); the baseline must hold outputs for "
                           "the same inputs under the same relative names (extensions may differ)")
    return {key: baseline[key] for key in fake}


def _per_image_scores(extractor: Extractor, files: dict[str, Path], reference: dict[str, Path] | None,
                      paired_ref: Path | None, batch_size: int, label: str, progress: bool) -> PerImageScores:
    paired = None
    if reference is not None:
        paired = paired_scores(files, reference, paired_ref, progress, f"{label} PSNR/SSIM")
    features = extract_features(extractor, list(files.values()), batch_size, f"{label} features", progress)
    return PerImageScores(features, paired)


MIN_IMAGES = 2   # a covariance (FID) and the unbiased MMD (KID) need two images per set


def _readable_folder(folder: Path, skipped: list[str]) -> dict[str, Path]:
    files = readable_images(list_folder_images(folder), skipped)
    if len(files) < MIN_IMAGES:
        raise MetricsError(f"{folder}: {len(files)} readable image(s); FID and KID need at least {MIN_IMAGES} "
                           "per folder (a few hundred for a score that means something)")
    return files


def _drop_keys(files: dict[str, Path], keys: set[str]) -> dict[str, Path]:
    return {key: path for key, path in files.items() if key not in keys}


def evaluate_folders(real_dir: Path, fake_dir: Path, paired_ref: Path | None = None,
                     inception_weights: Path | None = None, kid_subsets: int = 50,
                     kid_subset_size: int = 1000, batch_size: int = 32, device: str = "cpu",
                     seed: int = 0, progress: bool = True, baseline_dir: Path | None = None,
                     resamples: int = 1000) -> EvalResult:
    """FID and KID x100 between two image folders; PSNR/SSIM of FAKE_DIR against `paired_ref`;
    with `baseline_dir`, every metric's difference from the baseline with a bootstrap interval.
    Unreadable images are skipped and listed in `skipped` (with a baseline, both images of that input)."""
    skipped: list[str] = []
    real_files = _readable_folder(Path(real_dir), skipped)
    fake_listed = list_folder_images(Path(fake_dir))
    fake_files = readable_images(fake_listed, skipped)
    base_files = None
    if baseline_dir:  # checked before the slow features, like the paired reference
        base_listed = list_folder_images(Path(baseline_dir))
        base_readable = readable_images(base_listed, skipped)
        unreadable = (set(base_listed) - set(base_readable)) | (set(fake_listed) - set(fake_files))
        fake_files = _drop_keys(fake_files, unreadable)   # the pair is the unit: both go
        base_files = baseline_in_fake_order(fake_files, _drop_keys(base_listed, unreadable), Path(baseline_dir))
    if len(fake_files) < MIN_IMAGES:
        raise MetricsError(f"{fake_dir}: {len(fake_files)} readable image(s); FID and KID need at least "
                           f"{MIN_IMAGES} per folder (a few hundred for a score that means something)")
    reference = readable_images(list_folder_images(Path(paired_ref)), skipped) if paired_ref else None
    extractor = load_extractor(inception_weights, device)
    fake = _per_image_scores(extractor, fake_files, reference, paired_ref, batch_size, "fake", progress)
    real = extract_features(extractor, list(real_files.values()), batch_size, "real features", progress)

    def fid_and_kid(features: np.ndarray) -> tuple[float, float, float]:
        return (fid_from_features(real, features),
                *kid_from_features(real, features, kid_subsets, kid_subset_size, seed))

    fid, kid_mean, kid_std = fid_and_kid(fake.features)
    result = EvalResult(
        n_real=len(real), n_fake=len(fake.features), fid=fid, kid_x100=kid_mean,
        kid_x100_std=kid_std, kid_subsets=kid_subsets,
        kid_subset_size=capped_subset_size(len(real), len(fake.features), kid_subset_size),
        feature_dim=real.shape[1], extractor=str(extractor.path), extractor_sha256=extractor.sha256, seed=seed)
    if fake.paired is not None:
        result.n_paired = len(fake.paired.rows)
        result.psnr, result.ssim = float(fake.paired.psnr.mean()), float(fake.paired.ssim.mean())
        result.ssim_definition = SSIM_DEFINITION
    result.skipped = skipped
    if result.psnr == math.inf:
        result.notes.append("PSNR is infinite: every fake image is identical to its reference")
    if base_files is not None:
        base = _per_image_scores(extractor, base_files, reference, paired_ref, batch_size, "baseline", progress)
        result.baseline, result.bootstrap_resamples = str(baseline_dir), resamples
        if _same_scores(fake, base):
            result.notes.append(f"{fake_dir} and {baseline_dir} score the same on every image (identical "
                                "outputs?): there is no difference to test")
            return result
        base_fid, base_kid, _ = fid_and_kid(base.features)
        full = {"FID": (fid, base_fid), "KID x100": (kid_mean, base_kid)}
        result.vs_baseline = compare_to_baseline(real, fake, base, full, resamples, seed, progress)
    return result


def _same_scores(fake: PerImageScores, base: PerImageScores) -> bool:
    same = np.array_equal(fake.features, base.features)
    if fake.paired is not None and base.paired is not None:
        same = same and np.array_equal(fake.paired.psnr, base.paired.psnr) and \
            np.array_equal(fake.paired.ssim, base.paired.ssim)
    return same


def _kid_row(result: EvalResult) -> tuple[str, str, str]:
    if result.kid_subset_size == result.n_real == result.n_fake:  # every subset is the whole of both sets
        return ("KID x100", f"{result.kid_x100:.3f}",
                "each subset is the whole of both sets, so no spread; --baseline gives an interval")
    return ("KID x100", f"{result.kid_x100:.3f} +- {result.kid_x100_std:.3f}",
            f"{result.kid_subsets} subsets of {result.kid_subset_size}")


def format_table(result: EvalResult, real_dir: Path, fake_dir: Path, paired_ref: Path | None) -> str:
    rows = [("FID", f"{result.fid:.3f}", f"n_real={result.n_real} n_fake={result.n_fake}"), _kid_row(result)]
    if result.psnr is not None:
        rows += [("PSNR (dB)", f"{result.psnr:.3f}", f"n_paired={result.n_paired} vs {paired_ref}"),
                 ("SSIM", f"{result.ssim:.4f}", "Gaussian window, mean of R/G/B")]
    width = max(len(r[1]) for r in rows)
    lines = [f"real: {real_dir}", f"fake: {fake_dir}"]
    lines += [f"{name:<10} {value:>{width}}   {note}" for name, value, note in rows]
    lines += [f"extractor: {result.extractor} (sha256 {result.extractor_sha256}, {result.feature_dim}-d)",
              f"protocol: {result.protocol}"]
    if result.vs_baseline is not None:
        lines.append(format_comparison(result.vs_baseline, result.baseline, result.n_fake,
                                       result.bootstrap_resamples, result.seed))
    lines += [f"note: {note}" for note in result.notes]
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} unreadable image(s):")
        lines += [f"  {reason}" for reason in result.skipped]
    return "\n".join(lines)


def write_json(result: EvalResult, path: Path) -> None:
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
