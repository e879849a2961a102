"""Is FAKE really better than BASELINE? A paired bootstrap over the test images (`nicegan eval --baseline`).

With the small test sets of unpaired translation (150 to 500 images) FID moves by several points
between two draws of the same distribution, and NICE-GAN's KID protocol reports no usable spread
(every "subset" is the whole set below 1,000 images). So a table of two models' scores cannot
tell a real lead from noise. This module resamples the test images with replacement, the real
set on its own and FAKE and BASELINE together (they are outputs for the same inputs, so one
resample of inputs serves both), recomputes every metric of both on each resample and reports
the difference's percentile interval and the share of resamples in which FAKE is better.

A resample is a vector of counts (how often each image was drawn), which keeps both metrics cheap:
- FID from weighted means and covariances, with Tr sqrt(C_r C_f) taken as the sum of the singular
  values of A_r A_f^T (A = rows of sqrt(count) * (x - mean) / sqrt(n - 1)): the n x n form of the
  same number, exact, and far cheaper than a 2048 x 2048 sqrtm when n is a few hundred.
- KID as the full-set unbiased MMD^2 of the resample (pairs of distinct draws), from kernel
  matrices computed once. Below 1,000 images that is the protocol's KID; above, the protocol's
  subset mean estimates the same quantity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from nicegan.evaluation.metrics import polynomial_kernel

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedScores:
    """Per-image PSNR and SSIM against a paired reference, for the images (in their folder's order)
    that have one; `rows` are their positions in that order."""
    rows: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray


@dataclass(frozen=True)
class PerImageScores:
    """One folder's Inception features (n, d) and, where a paired reference exists, its PSNR/SSIM."""
    features: np.ndarray
    paired: PairedScores | None = None


@dataclass(frozen=True)
class Difference:
    metric: str
    fake: float
    baseline: float
    difference: float  # fake - baseline on the full sets
    low: float  # the difference's percentile interval over the resamples
    high: float
    fake_better_share: float  # share of resamples in which fake beats baseline
    lower_is_better: bool


def weighted_fid(real: np.ndarray, w_real: np.ndarray, fake: np.ndarray, w_fake: np.ndarray) -> float:
    """FID of the multisets that draw row i of each array w[i] times (ddof=1, as np.cov)."""
    def centred(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = w.sum()
        mean = w @ x / n
        return mean, np.sqrt(w)[:, None] * (x - mean) / np.sqrt(n - 1)

    (mu_r, a_r), (mu_f, a_f) = centred(real, w_real), centred(fake, w_fake)
    trace_sqrt = np.linalg.svd(a_r @ a_f.T, compute_uv=False).sum()
    return float(np.sum((mu_r - mu_f) ** 2) + np.sum(a_r ** 2) + np.sum(a_f ** 2) - 2 * trace_sqrt)


def weighted_mmd2(k_xx: np.ndarray, w_x: np.ndarray, k_yy: np.ndarray, w_y: np.ndarray,
                  k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 of the multisets drawn by counts w_x, w_y, from their kernel matrices: the
    within-set sums run over pairs of distinct draws, as `metrics.mmd2_unbiased` on repeated rows."""
    m, n = w_x.sum(), w_y.sum()
    within_x = (w_x @ k_xx @ w_x - w_x @ np.diag(k_xx)) / (m * (m - 1))
    within_y = (w_y @ k_yy @ w_y - w_y @ np.diag(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * (w_x @ k_xy @ w_y) / (m * n))


def _weighted_mean(values: np.ndarray, counts: np.ndarray) -> float:
    drawn = counts > 0  # leaves out undrawn images, so an infinite PSNR (identical pair) stays out too
    return float(counts[drawn] @ values[drawn] / counts[drawn].sum())


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The central CONFIDENCE interval of a bootstrap distribution."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _difference(metric: str, fake: float, baseline: float, resampled: np.ndarray,
                lower_is_better: bool) -> Difference:
    """`resampled`: (resamples, 2) scores of fake and baseline. A score that is infinite in both
    (PSNR of images identical to their reference) has no difference: the interval is left undefined."""
    with np.errstate(invalid="ignore"):   # inf - inf
        deltas = resampled[:, 0] - resampled[:, 1]
        full = fake - baseline
    if not np.isfinite(deltas).all() or not np.isfinite(full):
        return Difference(metric, fake, baseline, full, math.nan, math.nan, math.nan, lower_is_better)
    better = deltas < 0 if lower_is_better else deltas > 0
    low, high = percentile_interval(deltas)
    return Difference(metric, fake, baseline, full, low, high, float(better.mean()), lower_is_better)


def compare_to_baseline(real: np.ndarray, fake: PerImageScores, baseline: PerImageScores,
                        full: dict[str, tuple[float, float]], resamples: int = 1000, seed: int = 0,
                        progress: bool = True) -> list[Difference]:
    """FID, KID x100 and (when both have them) PSNR and SSIM of FAKE against BASELINE, whose rows
    are the same test inputs in the same order. `full` holds the protocol's full-set ("FID",
    "KID x100") scores of (fake, baseline), which the caller has computed already."""
    if fake.features.shape != baseline.features.shape:
        raise ValueError(f"fake and baseline features differ in shape: {fake.features.shape} vs "
                         f"{baseline.features.shape}")
    n_real, n_test = len(real), len(fake.features)
    kernels = {"rr": polynomial_kernel(real, real)}
    for name, scores in (("f", fake), ("b", baseline)):
        kernels[name + name] = polynomial_kernel(scores.features, scores.features)
        kernels["r" + name] = polynomial_kernel(real, scores.features)
    paired = (fake.paired, baseline.paired) if fake.paired and baseline.paired else None
    rng = np.random.default_rng(seed)
    rows = []
    for _ in tqdm(range(resamples), desc="bootstrap", unit="resample", disable=not progress):
        w_real = np.bincount(rng.integers(0, n_real, n_real), minlength=n_real).astype(np.float64)
        w_test = np.bincount(rng.integers(0, n_test, n_test), minlength=n_test).astype(np.float64)
        row = []
        for name, scores in (("f", fake), ("b", baseline)):
            row += [weighted_fid(real, w_real, scores.features, w_test),
                    100 * weighted_mmd2(kernels["rr"], w_real, kernels[name + name], w_test, kernels["r" + name])]
        if paired:
            w_paired = w_test[paired[0].rows]
            if w_paired.sum() == 0:  # no paired image drawn: count the resample as a tie
                row += [0.0, 0.0, 0.0, 0.0]
            else:
                row += [_weighted_mean(s.psnr, w_paired) for s in paired]
                row += [_weighted_mean(s.ssim, w_paired) for s in paired]
        rows.append(row)
    table = np.array(rows)
    results = [_difference("FID", *full["FID"], table[:, [0, 2]], True),
               _difference("KID x100", *full["KID x100"], table[:, [1, 3]], True)]
    if paired:
        results += [_difference("PSNR (dB)", float(paired[0].psnr.mean()), float(paired[1].psnr.mean()),
                                table[:, [4, 5]], False),
                    _difference("SSIM", float(paired[0].ssim.mean()), float(paired[1].ssim.mean()),
                                table[:, [6, 7]], False)]
    return results


def format_comparison(differences: list[Difference], baseline_dir: str, n_test: int, resamples: int,
                      seed: int) -> str:
    lines = [f"vs baseline {baseline_dir}: the same {n_test} inputs; {CONFIDENCE:.0%} interval of "
             f"fake - baseline over {resamples} bootstrap resamples of the images (seed {seed})",
             f"{'metric':<10} {'fake':>9} {'baseline':>9} {'difference':>11}   {'interval':<21} fake better in"]
    for d in differences:
        if math.isnan(d.fake_better_share):
            lines.append(f"{d.metric:<10} {d.fake:>9.3f} {d.baseline:>9.3f} {'-':>11}   no interval: infinite "
                         "(images identical to their reference) in fake or baseline")
            continue
        interval = f"[{d.low:+.3f}, {d.high:+.3f}]"
        lines.append(f"{d.metric:<10} {d.fake:>9.3f} {d.baseline:>9.3f} {d.difference:>+11.3f}   "
                     f"{interval:<21} {d.fake_better_share:.1%} of resamples")
    return "\n".join(lines)
