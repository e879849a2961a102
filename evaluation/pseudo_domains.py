"""`nicegan eval LABELLED_DIR --model RUN/latest.pt`: a TUNIT model against a labelled folder (one
sub-folder per class, images found recursively below each).

- Cluster accuracy: the guiding network's pseudo-domain (argmax C.iic, eval mode, as the official
  cluster_eval) against the classes, after the Hungarian matching of pseudo-domains to classes
  (scipy's linear_sum_assignment; with K != the number of classes, the unmatched ones count as
  wrong). Beside it, the same matching for k-means with K clusters on the pixels and on the
  Inception features, each with a bootstrap interval over the images.
- Per-domain FID of reference-guided translations, as the official mFID builds them: for each
  class c, every image of the other classes translated in the style of one image of c (the
  references taken in turn), against the real images of c; the mean over classes is the mFID.
  The Inception input is the standard one (bilinear resize, [-1, 1]); `official_mfid` reproduces
  the official input's double normalisation instead, which is not a standard FID.
- How often a translation takes its reference's class: a k-nearest-neighbour vote over the real
  images' Inception features; the same vote's accuracy on the real images (leave-one-out) says how
  far that classifier can be trusted.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from nicegan.common import write_text_atomic
from nicegan.evaluation.bootstrap import CONFIDENCE, percentile_interval
from nicegan.evaluation.diversity import kmeans, nearest_centre
from nicegan.evaluation.metrics import MetricsError, extract_image_features, fid_from_features, load_extractor
from nicegan.models.architecture import read_any_checkpoint
from nicegan.trainer.data import IMAGE_EXTENSIONS, eval_transform

BATCH = 32
NEIGHBOURS = 10
STANDARD = "standard FID input (bilinear resize to 299, [-1, 1])"
OFFICIAL = ("TUNIT's official mFID input (nearest resize, ImageNet mean/std, then [-1, 1] again): a double "
            "normalisation, not a standard FID")


@dataclass(frozen=True)
class LabelledSet:
    files: list[Path]
    labels: np.ndarray      # class index of each file
    classes: list[str]      # the sub-folder names, sorted


def labelled_images(folder: Path) -> LabelledSet:
    """The images under each first-level sub-folder of `folder`, labelled by it."""
    if not folder.is_dir():
        raise MetricsError(f"{folder}: no such folder; pass a folder with one sub-folder of images per class")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        files += found
        labels += [index] * len(found)
    if len(classes) < 2 or not files:
        raise MetricsError(f"{folder}: found {len(classes)} class folder(s) and {len(files)} images; pass a folder "
                           "with one sub-folder of images per class (at least two)")
    return LabelledSet(files, np.array(labels), classes)


def hungarian_matching(predicted: np.ndarray, labels: np.ndarray, k: int, n_classes: int) -> dict[int, int]:
    """Pseudo-domain -> class, the one-to-one matching with the most images in agreement."""
    counts = np.zeros((k, n_classes), dtype=np.int64)
    np.add.at(counts, (predicted, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    return dict(zip(rows.tolist(), cols.tolist()))


@dataclass(frozen=True)
class ClusterScore:
    method: str
    accuracy: float
    low: float
    high: float


def cluster_score(method: str, predicted: np.ndarray, labels: np.ndarray, k: int, n_classes: int,
                  resamples: int, seed: int) -> ClusterScore:
    """Hungarian accuracy and its bootstrap interval over the images (the matching kept fixed)."""
    matching = hungarian_matching(predicted, labels, k, n_classes)
    correct = np.array([matching.get(int(p), -1) == int(y) for p, y in zip(predicted, labels)], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(resamples)]
    return ClusterScore(method, float(correct.mean()), *percentile_interval(np.array(draws)))


def kmeans_labels(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    return nearest_centre(points, kmeans(points, k, seed))


def load_tensors(files: list[Path], size: int) -> torch.Tensor:
    """The images as training saw them: square bilinear resize, [-1, 1]."""
    transform = eval_transform(size, Image.Resampling.BILINEAR)
    tensors = []
    for path in files:
        with Image.open(path) as image:
            tensors.append(transform(image.convert("RGB")))
    return torch.stack(tensors)


def to_rgb_uint8(images: torch.Tensor) -> list[np.ndarray]:
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return list(pixels)


@dataclass
class DomainScore:
    domain: str
    n_real: int
    n_fake: int
    fid: float
    reference_class_rate: float   # translations voted into the reference's class
    source_class_rate: float      # ... into the source's


@dataclass
class PseudoDomainResult:
    model: str
    images: int
    classes: list[str]
    k: int
    clusters: list[ClusterScore]
    domains: list[DomainScore] = field(default_factory=list)
    mfid: float | None = None
    fid_input: str = STANDARD
    classifier_accuracy: float | None = None   # the k-NN vote on the real images, leave-one-out
    confidence: float = CONFIDENCE
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class EvaluatedModel:
    """The evaluated checkpoint's guiding network, style encoder and translator, in eval mode."""

    def __init__(self, path: Path):
        architecture, ckpt = read_any_checkpoint(path)
        if architecture.name != "tunit":
            raise MetricsError(f"--model {path}: a {architecture.title} checkpoint; the pseudo-domain evaluation "
                               "takes a TUNIT run's latest.pt")
        from nicegan.models.tunit.checkpoint import load_networks
        self.guiding = load_networks(ckpt, path, ("C",))["C"]
        # All three from the one checkpoint read above (load_translator would read it twice more).
        self.encoder, self.img_size = architecture.style_encoder(ckpt, path)
        self.translator, info = architecture.translator(ckpt, path, "a2b", self.img_size)
        self.k = info.domains

    @torch.no_grad()
    def pseudo_domains(self, images: torch.Tensor) -> np.ndarray:
        return torch.cat([torch.argmax(self.guiding.iic(chunk), 1) for chunk in images.split(BATCH)]).numpy()

    @torch.no_grad()
    def translate(self, sources: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """Source i in the style of reference i mod len(references)."""
        styles = torch.cat([self.encoder(chunk) for chunk in references.split(BATCH)])
        chosen = styles[torch.arange(len(sources)) % len(styles)]
        return torch.cat([self.translator(x, s) for x, s in zip(sources.split(BATCH), chosen.split(BATCH))])


def knn_vote(features: np.ndarray, real: np.ndarray, labels: np.ndarray, skip_self: bool = False) -> np.ndarray:
    """The majority class of each feature's NEIGHBOURS nearest real images."""
    squared = (features ** 2).sum(1)[:, None] - 2 * features @ real.T + (real ** 2).sum(1)[None]
    if skip_self:
        np.fill_diagonal(squared, np.inf)
    nearest = np.argsort(squared, axis=1)[:, :NEIGHBOURS]
    return np.array([np.bincount(labels[row]).argmax() for row in nearest])


def evaluate_pseudo_domains(labelled_dir: Path, model_path: Path, fid_real_dir: Path | None = None,
                            inception_weights: Path | None = None, official_mfid: bool = False,
                            per_class: int = 0, resamples: int = 1000, seed: int = 0, device: str = "cpu",
                            progress: bool = True, clusters_only: bool = False) -> PseudoDomainResult:
    """Cluster accuracy against k-means, and (unless `clusters_only`) the per-domain FID of
    reference-guided translations (`per_class` > 0: at most that many images of each class)."""
    data = limited(labelled_images(labelled_dir), per_class)
    model = EvaluatedModel(model_path)
    images = load_tensors(data.files, model.img_size)
    extractor = load_extractor(inception_weights, device)
    real_rgb = to_rgb_uint8(images)
    features = extract_image_features(extractor, real_rgb, desc="real features", progress=progress)
    n_classes, k = len(data.classes), model.k
    clusters = [cluster_score("TUNIT guiding network", model.pseudo_domains(images), data.labels, k, n_classes,
                              resamples, seed),
                cluster_score("k-means on pixels", kmeans_labels(images.flatten(1).double().numpy(), k, seed),
                              data.labels, k, n_classes, resamples, seed),
                cluster_score("k-means on Inception features", kmeans_labels(features, k, seed), data.labels, k,
                              n_classes, resamples, seed)]
    result = PseudoDomainResult(str(model_path), len(data.files), data.classes, k, clusters,
                                fid_input=OFFICIAL if official_mfid else STANDARD)
    if k != n_classes:
        result.notes.append(f"K = {k} pseudo-domains for {n_classes} classes: the official code reports the "
                            "accuracy only when they are equal; here the unmatched ones count as wrong")
    if clusters_only:
        return result
    real = data if fid_real_dir is None else limited(labelled_images(fid_real_dir), per_class)
    if real.classes != data.classes:
        raise MetricsError(f"--fid-real {fid_real_dir}: its classes {real.classes} are not those of {labelled_dir} "
                           f"({data.classes})")
    real_rgb = real_rgb if fid_real_dir is None else to_rgb_uint8(load_tensors(real.files, model.img_size))
    votes_of = features if fid_real_dir is None else extract_image_features(extractor, real_rgb, desc="FID real",
                                                                           progress=progress)
    fid_reals = votes_of if not official_mfid else extract_image_features(extractor, real_rgb, desc="FID real",
                                                                         progress=progress, official_mfid=True)
    result.classifier_accuracy = float((knn_vote(votes_of, votes_of, real.labels, True) == real.labels).mean())
    votes = RealVotes(votes_of, real.labels)
    for index, name in enumerate(tqdm(data.classes, desc="per-domain FID", disable=not progress)):
        result.domains.append(domain_score(model, extractor, images, data.labels, index, name,
                                           fid_reals[real.labels == index], votes, official_mfid))
    result.mfid = float(np.mean([d.fid for d in result.domains]))
    return result


def limited(data: LabelledSet, per_class: int) -> LabelledSet:
    """At most `per_class` images of each class (the first ones; 0: all)."""
    if not per_class:
        return data
    keep = [i for c in range(len(data.classes)) for i in np.flatnonzero(data.labels == c)[:per_class]]
    return LabelledSet([data.files[i] for i in keep], data.labels[keep], data.classes)


@dataclass(frozen=True)
class RealVotes:
    """The real images' standard Inception features and classes, for the k-NN vote."""
    features: np.ndarray
    labels: np.ndarray


def domain_score(model: EvaluatedModel, extractor, images: torch.Tensor, labels: np.ndarray, target: int, name: str,
                 reals: np.ndarray, votes_of: RealVotes, official_mfid: bool) -> DomainScore:
    """One class's FID (against `reals`, its real images' features) of the other classes' images in
    the style of its images, and the class votes of those translations."""
    sources, source_labels = images[labels != target], labels[labels != target]
    fakes = to_rgb_uint8(model.translate(sources, images[labels == target]))
    standard = extract_image_features(extractor, fakes, progress=False)
    fid_fakes = standard if not official_mfid else extract_image_features(extractor, fakes, progress=False,
                                                                           official_mfid=True)
    votes = knn_vote(standard, votes_of.features, votes_of.labels)
    return DomainScore(name, len(reals), len(fakes), fid_from_features(reals, fid_fakes),
                       float((votes == target).mean()), float((votes == source_labels).mean()))


def format_pseudo_domains(result: PseudoDomainResult) -> str:
    lines = [f"{result.model}: K = {result.k} pseudo-domains, {result.images} images of {len(result.classes)} "
             f"classes ({', '.join(result.classes)})", "",
             f"cluster accuracy (Hungarian matching), {result.confidence:.0%} bootstrap interval:"]
    lines += [f"  {c.method:<32} {100 * c.accuracy:5.1f}%  [{100 * c.low:.1f}, {100 * c.high:.1f}]"
              for c in result.clusters]
    if result.domains:
        lines += ["", f"per-domain FID of reference-guided translations ({result.fid_input}):",
                  f"  {'class':<16} {'FID':>8} {'real':>5} {'fake':>5}  {'ref class':>9} {'src class':>9}"]
        lines += [f"  {d.domain:<16} {d.fid:8.2f} {d.n_real:5d} {d.n_fake:5d}  {100 * d.reference_class_rate:8.1f}% "
                  f"{100 * d.source_class_rate:8.1f}%" for d in result.domains]
        lines.append(f"  mean (mFID)      {result.mfid:8.2f}")
        lines.append(f"class votes: {NEIGHBOURS}-NN on the real images' Inception features; that vote classifies "
                     f"the real images (leave-one-out) {100 * result.classifier_accuracy:.1f}% right")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def write_pseudo_domain_json(result: PseudoDomainResult, path: Path) -> None:
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
