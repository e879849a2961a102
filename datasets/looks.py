"""The multi-look task with known modes (`nicegan data --task looks`): one photo can become any of
K real third-party "looks", so a multimodal model can be asked which of them it covers.

- Domain A: crops of real photos, as for the vintage task (nicegan.datasets.offline_data).
- Domain B: disjoint crops, each passed through one of the LOOKS, assigned in equal numbers in a
  seeded order and recorded in `looks.json`. The looks differ in texture and tone, not only in
  colour: three of OpenCV's non-photorealistic filters and vintagify's CycleGAN (the vintage
  task's teacher). Like the teacher, every look runs on the window at `teacher_scale` x the crop
  size and is area-downscaled.
- For every testA and valA crop, all K looks' outputs are kept, in `testA_looks/LOOK/NAME.png`
  (`valA_looks/...`), with the crop itself as `input/` (the "no look" reference), so the look of
  any translation can be identified: the nearest of them (nicegan.evaluation.diversity).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from nicegan.common import write_text_atomic
from nicegan.datasets.offline_data import (
    PLANNED_DIRS,
    Crop,
    PlannedCrops,
    Source,
    Transform,
    base_manifest,
    count_images,
    load_inputs,
    plan_dataset,
    prepare_folders,
    resize_square,
    run_teacher,
    sources_markdown,
    split_counts,
    write_crops,
)

INPUT_LOOK = "input"    # the crop itself, beside the looks' outputs: an unchanged photo has no look
LOOKS_FILE = "looks.json"
PAIRED_LOOK_DIRS = {"testA": "testA_looks", "valA": "valA_looks"}
VINTAGE = "vintage"
# OpenCV's filters with their documented default parameters, on BGR images.
OPENCV_LOOKS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "stylization": ("cv2.stylization(sigma_s=60, sigma_r=0.45): flat watercolour regions, dark edges",
                    lambda bgr: cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)),
    "pencil": ("cv2.pencilSketch(sigma_s=60, sigma_r=0.07, shade_factor=0.05), its colour output: strokes on paper",
               lambda bgr: cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)[1]),
    "detail": ("cv2.detailEnhance(sigma_s=10, sigma_r=0.15): boosted local contrast, saturation and texture",
               lambda bgr: cv2.detailEnhance(bgr, sigma_s=10, sigma_r=0.15)),
}
VINTAGE_DESCRIPTION = "vintagify 0.1.2's CycleGAN (the vintage task's teacher): warm tones, lifted blacks, grain"


def opencv_look(apply: Callable[[np.ndarray], np.ndarray], size: int, work_size: int) -> Transform:
    """An OpenCV filter run at `work_size` on RGB windows, area-downscaled to `size`."""
    def transform(windows: Sequence[np.ndarray]) -> list[np.ndarray]:
        outputs = []
        for window in windows:
            bgr = cv2.cvtColor(resize_square(window, work_size), cv2.COLOR_RGB2BGR)
            outputs.append(resize_square(cv2.cvtColor(apply(bgr), cv2.COLOR_BGR2RGB), size))
        return outputs
    return transform


def assign_looks(crops: Sequence[Crop], looks: Sequence[str], seed: int) -> dict[tuple[str, int], str]:
    """(B folder, crop index) -> look: each B folder's crops split into equal shares of the looks
    (the first ones one more where the count does not divide), in an order drawn from the seed."""
    assigned = {}
    for folder_index, folder in enumerate(f for f in PLANNED_DIRS if f.endswith("B")):
        indices = sorted(c.index for c in crops if c.folder == folder)
        shares = np.resize(np.arange(len(looks)), len(indices))
        order = np.random.default_rng([seed, 29, folder_index]).permutation(len(indices))
        assigned.update({(folder, indices[i]): looks[int(shares[rank])] for rank, i in enumerate(order)})
    return assigned


def looks_targets(assigned: dict[tuple[str, int], str], looks: Sequence[str]) -> Callable[[Crop], list]:
    """B crops through their assigned look; testA and valA crops as they are and through every look."""
    def targets(crop: Crop) -> list[tuple[str, str | None]]:
        own = f"{crop.folder}/{crop.file_name}"
        if crop.folder.endswith("B"):
            return [(own, assigned[crop.folder, crop.index])]
        if crop.folder not in PAIRED_LOOK_DIRS:
            return [(own, None)]
        paired = PAIRED_LOOK_DIRS[crop.folder]
        return [(own, None), (f"{paired}/{INPUT_LOOK}/{crop.file_name}", None),
                *((f"{paired}/{look}/{crop.file_name}", look) for look in looks)]
    return targets


def look_folders(looks: Sequence[str]) -> list[str]:
    return list(PLANNED_DIRS) + [f"{paired}/{look}" for paired in PAIRED_LOOK_DIRS.values()
                                 for look in (INPUT_LOOK, *looks)]


def looks_record(planned: PlannedCrops, assigned: dict[tuple[str, int], str], descriptions: dict[str, str]) -> dict:
    """looks.json: each look's description, and the look of every B image by folder and file name."""
    record: dict = {"looks": descriptions, "input_look": INPUT_LOOK}
    for crop in planned.crops:
        if (crop.folder, crop.index) in assigned:
            record.setdefault(crop.folder, {})[crop.file_name] = assigned[crop.folder, crop.index]
    return record


def build_looks_dataset(out_root: Path, size: int = 128, train_count: int = 1000, test_count: int = 150,
                        seed: int = 0, teacher_path: Path | None = None, device: str = "cpu",
                        teacher_scale: int = 2, sources: Sequence[Source] | None = None,
                        progress: bool = True, val_count: int = 150) -> dict[str, int]:
    """Build (or resume) the multi-look dataset in `out_root`: the split folders, `testA_looks/`,
    `valA_looks/`, looks.json and SOURCES.md. Returns the number of images per folder."""
    teacher_path, sources, teacher = load_inputs(size, teacher_path, sources, device)
    work_size = size * teacher_scale
    transforms = {name: opencv_look(apply, size, work_size) for name, (_, apply) in OPENCV_LOOKS.items()}
    transforms[VINTAGE] = lambda windows: run_teacher(teacher, windows, size, work_size, device)
    descriptions = {name: text for name, (text, _) in OPENCV_LOOKS.items()} | {VINTAGE: VINTAGE_DESCRIPTION}
    names = list(transforms)
    counts = split_counts(train_count, test_count, val_count)
    planned = plan_dataset(sources, counts, seed, progress)
    assigned = assign_looks(planned.crops, names, seed)
    manifest = {"task": "looks", "looks": names, "opencv": cv2.__version__,
                **base_manifest(size, teacher_scale, seed, counts, sources, teacher_path)}
    folders = look_folders(names)
    prepare_folders(out_root, manifest, folders)
    write_text_atomic(out_root / LOOKS_FILE, json.dumps(looks_record(planned, assigned, descriptions), indent=1) + "\n")
    write_crops(out_root, planned, size, transforms, looks_targets(assigned, names), progress)
    domain_b = (f"Domain B: a disjoint set of crops, each through one of {len(names)} looks in equal shares, recorded "
                f"in `{LOOKS_FILE}`: " + "; ".join(f"`{n}`: {d}" for n, d in descriptions.items())
                + f" (teacher `{teacher_path}`, sha256 {manifest['teacher_sha256']}; OpenCV {cv2.__version__}). "
                "`testA_looks/LOOK/` and `valA_looks/LOOK/` hold every look's output for each `testA/` and `valA/` "
                f"crop (same file name), and `{INPUT_LOOK}/` the crop itself: the references a translation's look "
                "is identified by.")
    write_text_atomic(out_root / "SOURCES.md", sources_markdown(planned, domain_b, manifest))
    return count_images(out_root, folders)
