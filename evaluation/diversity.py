"""How many different translations a multimodal model gives one photo (`nicegan eval --diversity`),
measured offline (LPIPS, MSGAN's metric, needs a downloaded AlexNet: it cannot run here).

FAKE_DIR holds N photos x M samples, `NAME_s{SEED}.EXT` (what `translate --samples M` writes);
BASELINE_DIR a deterministic model's output of each photo (`NAME.EXT`, or its samples, of which the
first is taken). Every figure is computed for three output sets of the same photos:
- the model's N x M outputs;
- the deterministic model's N outputs (one per photo: no diversity by construction);
- pixel noise: the deterministic outputs plus Gaussian noise, M per photo, its sigma matched so
  that their mean pairwise pixel distance equals the model's. Pixel diversity is then the same by
  construction; what the model has beyond noise shows in feature space and in the looks.

The figures:
- with LOOKS_DIR (`testA_looks/` of `nicegan data --task looks`: LOOK/NAME.EXT for every look, and
  `input/` the photo itself): each output's look is the nearest reference of its photo (mean
  absolute pixel difference) when it is nearer than the runner-up by LOOK_MARGIN, else none; an
  output nearest to the photo itself has no look either. Mode coverage: each look's share of the
  outputs, the Jensen-Shannon divergence of (shares, no-look share) to (uniform over the looks, 0),
  the looks covered (a share of at least COVERED_SHARE), and the distinct looks per photo;
- NDB and its JSD (Richardson & Weiss 2018, as MSGAN reports them; eitanrich/gans-n-gmms ndb.py):
  k-means bins of the real images' Inception features, a two-proportion z-test per bin (p < 0.05),
  the JSD between the real and generated bin proportions; here on Inception features, not pixels;
- the mean pairwise distance between one photo's outputs, averaged over photos: Inception pool3
  features (L2) and pixels (mean absolute difference, in levels);
- FID and KID x100 of all outputs against REAL_DIR: the features and kernel of
  nicegan.evaluation.metrics' protocol, FID by the exact n x n form of evaluation/bootstrap.py and
  KID as the unbiased MMD^2 of the whole sets (what the protocol's subsets estimate), so that the
  full-set figure and its resamples are one computation.
Intervals: a bootstrap over the photos (and, for the figures against real images, the real images),
`resamples` times; the k-means bins stay those of the full real set.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import norm
from tqdm import tqdm

from nicegan.common import pairwise_pixel_distance, write_text_atomic
from nicegan.datasets.looks import INPUT_LOOK
from nicegan.evaluation.bootstrap import CONFIDENCE, percentile_interval, weighted_fid, weighted_mmd2
from nicegan.evaluation.metrics import (
    MetricsError,
    extract_image_features,
    list_folder_images,
    load_extractor,
    polynomial_kernel,
    read_rgb,
)

SAMPLE_NAME = re.compile(r"^(?P<photo>.+)_s(?P<seed>\d+)$")
LOOK_MARGIN = 0.1          # the nearest look must be 10 % nearer than the runner-up
COVERED_SHARE = 0.01       # a look with at least 1 % of the outputs is covered
NDB_SIGNIFICANCE = 0.05
KMEANS_ITERATIONS = 100
NOISE_FITS = 4             # rounds of matching the noise's sigma (clipping makes it nonlinear)
NO_LOOK, AMBIGUOUS = -2, -1
MODEL, DETERMINISTIC, NOISE = "model", "deterministic", "pixel noise"


# --- the bins and divergences of NDB -------------------------------------------------------------


def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """(k, d) centres by Lloyd's algorithm from a k-means++ start (as scikit-learn's KMeans, which
    ndb.py uses); an emptied cluster restarts at the point farthest from its centre."""
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(len(points))]]
    nearest = ((points - centres[0]) ** 2).sum(-1)   # each point's squared distance to its nearest centre
    for _ in range(1, k):
        chosen = rng.choice(len(points), p=nearest / nearest.sum()) if nearest.sum() > 0 else rng.integers(len(points))
        centres.append(points[chosen])
        nearest = np.minimum(nearest, ((points - points[chosen]) ** 2).sum(-1))
    centres = np.array(centres, dtype=np.float64)
    for _ in range(iterations):
        labels = nearest_centre(points, centres)
        moved = centres.copy()
        for j in range(k):
            members = points[labels == j]
            if len(members):
                moved[j] = members.mean(axis=0)
            else:
                moved[j] = points[np.argmax(((points - centres[labels]) ** 2).sum(-1))]
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres


def nearest_centre(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    squared = (points ** 2).sum(1)[:, None] - 2 * points @ centres.T + (centres ** 2).sum(1)[None]
    return np.argmin(squared, axis=1)


def different_bins(p_real: np.ndarray, n_real: float, p_fake: np.ndarray, n_fake: float,
                   significance: float = NDB_SIGNIFICANCE) -> int:
    """NDB: the bins whose two proportions differ by a pooled two-proportion z-test (two-tailed)."""
    pooled = (p_real * n_real + p_fake * n_fake) / (n_real + n_fake)
    with np.errstate(divide="ignore", invalid="ignore"):   # a bin empty in both: no test, not different
        z = (p_real - p_fake) / np.sqrt(pooled * (1 - pooled) * (1 / n_real + 1 / n_fake))
        return int(np.count_nonzero(2 * norm.cdf(-np.abs(z)) < significance))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JSD (natural log) of two distributions, 0 log 0 = 0."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log(a[present] / m[present])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def auto_bins(n_real: int) -> int:
    """ndb.py's default is 100 bins, which needs about ten real images a bin: fewer for small sets."""
    return max(2, min(100, n_real // 10))


# --- the output sets ------------------------------------------------------------------------------


@dataclass
class OutputSet:
    """One method's outputs of the photos: `images[n]` is photo n's (M, H, W, 3) RGB; `features` (N, M, d)."""
    name: str
    images: list[np.ndarray]
    features: np.ndarray | None = None
    looks: np.ndarray | None = None     # (N, M): a look's index, NO_LOOK or AMBIGUOUS
    bins: np.ndarray | None = None      # (N, M): each output's NDB bin

    @property
    def samples(self) -> int:
        return self.images[0].shape[0]


def sample_groups(fake_dir: Path) -> dict[str, list[Path]]:
    """Photo -> its samples' files in seed order, from FAKE_DIR's NAME_s{SEED} names."""
    groups: dict[str, list[tuple[int, Path]]] = {}
    for key, path in list_folder_images(fake_dir).items():
        match = SAMPLE_NAME.match(key)
        if match is None:
            raise MetricsError(f"{path}: not named NAME_s{{SEED}}; --diversity reads the samples that `nicegan "
                               "translate --samples M` writes")
        groups.setdefault(match["photo"], []).append((int(match["seed"]), path))
    counts = {len(v) for v in groups.values()}
    if len(counts) != 1 or min(counts) < 2:
        raise MetricsError(f"{fake_dir}: photos have {sorted(counts)} samples each; --diversity needs the same "
                           "number, at least 2, for every photo (translate --samples M)")
    return {photo: [p for _, p in sorted(samples)] for photo, samples in sorted(groups.items())}


def deterministic_files(baseline_dir: Path, photos: list[str]) -> dict[str, Path]:
    """Each photo's deterministic output: BASELINE_DIR/NAME.EXT or its first NAME_s{SEED}.EXT."""
    listed = list_folder_images(baseline_dir)
    firsts: dict[str, tuple[int, Path]] = {}
    for key, path in listed.items():
        match = SAMPLE_NAME.match(key)
        if match and (match["photo"] not in firsts or int(match["seed"]) < firsts[match["photo"]][0]):
            firsts[match["photo"]] = (int(match["seed"]), path)
    files = {photo: listed.get(photo) or firsts.get(photo, (0, None))[1] for photo in photos}
    missing = [photo for photo, path in files.items() if path is None]
    if missing:
        raise MetricsError(f"{baseline_dir}: no output for {len(missing)} of the {len(photos)} photos (e.g. "
                           f"{missing[0]}); the deterministic baseline needs NAME.EXT for every NAME_s*.EXT")
    return files


def pairwise_feature_distance(features: np.ndarray) -> float:
    """Mean L2 distance between the pairs of one photo's output features (0 for one output)."""
    m = len(features)
    if m < 2:
        return 0.0
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    return float(distances[np.triu_indices(m, 1)].mean())


def matched_noise(base: list[np.ndarray], samples: int, target: float, seed: int) -> tuple[list[np.ndarray], float]:
    """`samples` noisy copies of each deterministic output, the noise's sigma fitted so that their mean
    pairwise pixel distance is `target`; returns them and the sigma (levels)."""
    rng = np.random.default_rng(seed)
    normals = [rng.standard_normal((samples, *image.shape[1:])).astype(np.float32) for image in base]

    def noisy(sigma: float) -> list[np.ndarray]:
        return [np.clip(np.rint(image[0].astype(np.float32) + sigma * z), 0, 255).astype(np.uint8)
                for image, z in zip(base, normals)]

    sigma = target * math.sqrt(math.pi) / 2   # |N(0, 2 sigma^2)| has mean 2 sigma / sqrt(pi)
    for _ in range(NOISE_FITS):
        achieved = np.mean([pairwise_pixel_distance(images) for images in noisy(sigma)])
        if achieved <= 0:
            break
        sigma *= target / achieved
    return noisy(sigma), sigma


def read_set(name: str, files: list[list[Path]]) -> OutputSet:
    return OutputSet(name, [np.stack([read_rgb(p) for p in photo]) for photo in files])


# --- looks ----------------------------------------------------------------------------------------


def look_references(looks_dir: Path, photos: list[str]) -> tuple[list[str], dict[str, list[np.ndarray]]]:
    """The look names and, per photo, its references: every look's output, then the photo itself."""
    if not (looks_dir / INPUT_LOOK).is_dir():
        raise MetricsError(f"{looks_dir}: no {INPUT_LOOK}/ folder; --looks takes the testA_looks/ (or valA_looks/) "
                           "folder of `nicegan data --task looks`")
    names = sorted(p.name for p in looks_dir.iterdir() if p.is_dir() and p.name != INPUT_LOOK)
    listed = {look: list_folder_images(looks_dir / look) for look in (*names, INPUT_LOOK)}
    missing = [photo for photo in photos if any(photo not in files for files in listed.values())]
    if missing:
        raise MetricsError(f"{looks_dir}: {len(missing)} of the {len(photos)} photos lack a look (e.g. {missing[0]}); "
                           "translate the same testA/ the looks were made for")
    return names, {photo: [read_rgb(listed[look][photo]) for look in (*names, INPUT_LOOK)] for photo in photos}


def identify_looks(images: np.ndarray, references: list[np.ndarray]) -> np.ndarray:
    """Each image's look: the index of its nearest reference (the last is the photo: NO_LOOK),
    AMBIGUOUS when the runner-up is not LOOK_MARGIN farther."""
    looks = []
    for image in images:
        if image.shape != references[0].shape:
            image = cv2.resize(image, references[0].shape[1::-1], interpolation=cv2.INTER_AREA)
        distances = np.array([np.abs(image.astype(np.float32) - ref).mean() for ref in references])
        first, second = np.sort(distances)[:2]
        nearest = int(np.argmin(distances))
        if second - first < LOOK_MARGIN * second:
            looks.append(AMBIGUOUS)
        else:
            looks.append(NO_LOOK if nearest == len(references) - 1 else nearest)
    return np.array(looks)


# --- figures --------------------------------------------------------------------------------------


@dataclass
class RealSet:
    features: np.ndarray
    bins: np.ndarray
    centres: np.ndarray
    kernel: np.ndarray


def coverage_figures(looks: np.ndarray, weights: np.ndarray, names: list[str]) -> dict[str, float]:
    """Mode coverage of (N, M) looks, each photo counted `weights[n]` times."""
    total = weights.sum() * looks.shape[1]
    shares = np.array([(weights[:, None] * (looks == k)).sum() / total for k in range(len(names))])
    other = 1 - shares.sum()
    uniform = np.append(np.full(len(names), 1 / len(names)), 0.0)
    distinct = np.array([len(set(row[row >= 0])) for row in looks])
    figures = {f"looks covered (of {len(names)})": float((shares >= COVERED_SHARE).sum()),
               "look shares, JSD to uniform": jensen_shannon(np.append(shares, other), uniform),
               "looks per photo": float(weights @ distinct / weights.sum()),
               "no look (the input, or ambiguous)": float(other)}
    figures.update({f"share: {name}": float(share) for name, share in zip(names, shares)})
    return figures


def set_figures(outputs: OutputSet, pairwise: dict[str, np.ndarray], kernels: dict[str, np.ndarray],
                real: RealSet, w_photo: np.ndarray, w_real: np.ndarray, names: list[str]) -> dict[str, float]:
    """Every figure of one output set for photo weights `w_photo` and real-image weights `w_real`."""
    m, k = outputs.samples, len(real.centres)
    w_out = np.repeat(w_photo, m)
    flat = outputs.features.reshape(-1, outputs.features.shape[-1])
    p_real = np.bincount(real.bins, weights=w_real, minlength=k) / w_real.sum()
    p_fake = np.bincount(outputs.bins.ravel(), weights=w_out, minlength=k) / w_out.sum()
    figures = coverage_figures(outputs.looks, w_photo, names) if outputs.looks is not None else {}
    figures.update({
        f"NDB (of {k} bins)": float(different_bins(p_real, w_real.sum(), p_fake, w_out.sum())),
        "NDB JSD": jensen_shannon(p_real, p_fake),
        "pairwise Inception distance": float(w_photo @ pairwise["features"] / w_photo.sum()),
        "pairwise pixel L1 (levels)": float(w_photo @ pairwise["pixels"] / w_photo.sum()),
        "FID": weighted_fid(real.features, w_real, flat, w_out),
        "KID x100": 100 * weighted_mmd2(real.kernel, w_real, kernels["ff"], w_out, kernels["rf"]),
    })
    return figures


@dataclass
class DiversityFigure:
    metric: str
    values: dict[str, float]                       # set -> full-set value
    intervals: dict[str, tuple[float, float]]      # set -> its percentile interval over the resamples
    vs_model: dict[str, tuple[float, float]] = field(default_factory=dict)  # baseline -> interval of model - it


@dataclass
class DiversityResult:
    n_photos: int
    samples: int
    n_real: int
    looks: list[str]
    ndb_bins: int
    noise_sigma: float
    resamples: int
    seed: int
    extractor: str
    extractor_sha256: str
    figures: list[DiversityFigure]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_figures(sets: list[OutputSet], pairwise: dict[str, dict[str, np.ndarray]],
                      kernels: dict[str, dict[str, np.ndarray]], real: RealSet, names: list[str],
                      full: dict[str, dict[str, float]], resamples: int, seed: int,
                      progress: bool) -> list[DiversityFigure]:
    n_photos, n_real = len(sets[0].images), len(real.features)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[dict[str, float]]] = {s.name: [] for s in sets}
    for _ in tqdm(range(resamples), desc="bootstrap", unit="resample", disable=not progress):
        w_photo = np.bincount(rng.integers(0, n_photos, n_photos), minlength=n_photos).astype(np.float64)
        w_real = np.bincount(rng.integers(0, n_real, n_real), minlength=n_real).astype(np.float64)
        for s in sets:
            draws[s.name].append(set_figures(s, pairwise[s.name], kernels[s.name], real, w_photo, w_real, names))
    figures = []
    for metric in full[MODEL]:
        table = {name: np.array([row[metric] for row in rows]) for name, rows in draws.items()}
        figures.append(DiversityFigure(
            metric, {name: full[name][metric] for name in full}, {name: percentile_interval(v) for name, v in table.items()},
            {name: percentile_interval(table[MODEL] - v) for name, v in table.items() if name != MODEL}))
    return figures


def evaluate_diversity(real_dir: Path, fake_dir: Path, baseline_dir: Path, looks_dir: Path | None = None,
                       inception_weights: Path | None = None, batch_size: int = 32, device: str = "cpu",
                       seed: int = 0, resamples: int = 1000, ndb_bins: int = 0,
                       progress: bool = True) -> DiversityResult:
    """The figures of the module docstring for FAKE_DIR's samples, the deterministic BASELINE_DIR and
    matched pixel noise, with bootstrap intervals."""
    groups = sample_groups(Path(fake_dir))
    photos = list(groups)
    model = read_set(MODEL, list(groups.values()))
    det_files = deterministic_files(Path(baseline_dir), photos)
    deterministic = read_set(DETERMINISTIC, [[det_files[p]] for p in photos])
    model_pixels = np.array([pairwise_pixel_distance(images) for images in model.images])
    noise_images, sigma = matched_noise(deterministic.images, model.samples, float(model_pixels.mean()), seed)
    noise = OutputSet(NOISE, noise_images)
    sets = [model, deterministic, noise]
    names: list[str] = []
    if looks_dir is not None:
        names, references = look_references(Path(looks_dir), photos)
        for s in sets:
            s.looks = np.stack([identify_looks(images, references[p]) for images, p in zip(s.images, photos)])

    extractor = load_extractor(inception_weights, device)
    real_files = list(list_folder_images(Path(real_dir)).values())
    real_features = extract_image_features(extractor, real_files, batch_size, "real features", progress)
    for s in sets:
        flat = [image for images in s.images for image in images]
        features = extract_image_features(extractor, flat, batch_size, f"{s.name} features", progress)
        s.features = features.reshape(len(photos), s.samples, -1)
    k = ndb_bins or auto_bins(len(real_features))
    centres = kmeans(real_features, k, seed)
    real = RealSet(real_features, nearest_centre(real_features, centres), centres,
                   polynomial_kernel(real_features, real_features))
    pairwise, kernels, full = {}, {}, {}
    for s in sets:
        flat = s.features.reshape(-1, s.features.shape[-1])
        s.bins = nearest_centre(flat, centres).reshape(len(photos), s.samples)
        pairwise[s.name] = {"pixels": np.array([pairwise_pixel_distance(images) for images in s.images]),
                            "features": np.array([pairwise_feature_distance(f) for f in s.features])}
        kernels[s.name] = {"ff": polynomial_kernel(flat, flat), "rf": polynomial_kernel(real_features, flat)}
        full[s.name] = set_figures(s, pairwise[s.name], kernels[s.name], real, np.ones(len(photos)),
                                   np.ones(len(real_features)), names)
    figures = bootstrap_figures(sets, pairwise, kernels, real, names, full, resamples, seed, progress)
    result = DiversityResult(len(photos), model.samples, len(real_features), names, k, sigma, resamples, seed,
                             str(extractor.path), extractor.sha256, figures)
    if len(real_features) < 10 * k:
        result.notes.append(f"{len(real_features)} real images for {k} NDB bins: fewer than 10 a bin, so NDB's "
                            "z-tests have little power (pass --ndb-bins)")
    return result


# --- output ---------------------------------------------------------------------------------------


def _cell(value: float, interval: tuple[float, float]) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def format_diversity(result: DiversityResult, fake_dir: Path, baseline_dir: Path) -> str:
    sets = (MODEL, DETERMINISTIC, NOISE)
    rows = [(f.metric, *(_cell(f.values[s], f.intervals[s]) for s in sets)) for f in result.figures]
    widths = [max(len(r[i]) for r in rows + [("metric", *sets)]) for i in range(4)]
    lines = [f"diversity of {fake_dir}: {result.n_photos} photos x {result.samples} samples; deterministic: "
             f"{baseline_dir}; pixel noise: the deterministic outputs + N(0, {result.noise_sigma:.2f}^2) levels, "
             "matched to the model's pairwise pixel L1",
             f"{CONFIDENCE:.0%} intervals over {result.resamples} bootstrap resamples of the photos and the "
             f"{result.n_real} real images (seed {result.seed}); NDB on {result.ndb_bins} k-means bins of the real "
             "images' Inception features",
             "  ".join(h.ljust(w) for h, w in zip(("metric", *sets), widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    if result.looks:
        lines.append(f"looks: {', '.join(result.looks)} (nearest reference, {LOOK_MARGIN:.0%} margin; covered: "
                     f">= {COVERED_SHARE:.0%} of the outputs)")
    lines.append(f"extractor: {result.extractor} (sha256 {result.extractor_sha256})")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def write_diversity_json(result: DiversityResult, path: Path) -> None:
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")

