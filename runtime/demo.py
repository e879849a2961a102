"""`nicegan demo`: the embedded default model on the sample video and photos shipped with the package,
and the embedded multi-look model's seeds beside the default model's translation of each photo."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from nicegan.common import pairwise_pixel_distance, read_image, write_image
from nicegan.errors import NiceganError
from nicegan.runtime.backends import Backend, choose_backend, open_backend
from nicegan.runtime.pipeline import TranslateOptions, TranslateReport, sample_tag, translate, translate_samples

ASSETS = Path(__file__).with_name("assets")
DEFAULT_MODEL = ASSETS / "models" / "vintage_a2b.onnx"
DEFAULT_MODEL_DESCRIPTION = "the bundled photo->vintage model"
# MSGAN's mode-seeking term on the multi-look task (docs/MODEL.md, "Many looks from one photo").
LOOKS_MODEL = ASSETS / "models" / "looks_a2b.onnx"
LOOKS_SEEDS = (0, 1, 2)
CAPTION_HEIGHT = 18
SAMPLE_VIDEO = ASSETS / "bigbuckbunny_320x180.mp4"
SAMPLE_IMAGES = str(ASSETS / "*.jpg")


class DemoError(NiceganError, RuntimeError):
    pass


@dataclass(frozen=True)
class DemoJob:
    source: str
    output: str
    compare: bool


def demo_jobs(out_dir: Path) -> list[DemoJob]:
    """The translated video and photos, and a side-by-side comparison of each."""
    stem = SAMPLE_VIDEO.stem
    return [
        DemoJob(str(SAMPLE_VIDEO), str(out_dir / f"{stem}_vintage.mp4"), compare=False),
        DemoJob(str(SAMPLE_VIDEO), str(out_dir / f"{stem}_compare.mp4"), compare=True),
        DemoJob(SAMPLE_IMAGES, str(out_dir / "photos"), compare=False),
        DemoJob(SAMPLE_IMAGES, str(out_dir / "photos_compare"), compare=True),
    ]


def run_demo(out_dir: Path, model: Path = DEFAULT_MODEL, backend: str = "auto", device: str | None = None,
             overwrite: bool = False, progress: bool = True, log: Callable[[str], None] = print,
             looks_model: Path | None = LOOKS_MODEL) -> list[TranslateReport]:
    """Translate the samples into `out_dir` with the best available backend; one report per job.
    With `looks_model` (a model with a random latent code), also the sheets of `show_looks`."""
    for path, option in ((model, "--model MODEL"), (looks_model, "--looks-model MODEL, or --no-looks")):
        if path is not None and not Path(path).is_file():
            raise DemoError(f"{path}: model file not found; reinstall nicegan or pass {option}")
    _, why = choose_backend(str(model), backend)
    reports = []
    with open_backend(str(model), backend, device=device) as opened, \
            (open_backend(str(looks_model), backend, device=device) if looks_model else nullcontext()) as looks:
        if looks is not None and (not looks.info.latent_dim or looks.info.code != "latent"):
            raise DemoError(f"{looks_model}: not a model with a random latent code, so it has one look a photo; "
                            "pass --looks-model with a model trained with --latent-dim, or --no-looks")
        log(f"backend: {opened.name} on {opened.device} ({why})")
        for job in demo_jobs(Path(out_dir)):
            reports.append(translate(job.source, job.output, opened, demo_options(job.compare, overwrite, progress),
                                     log=log))
            log(f"wrote {job.output}")
        if looks is not None and all(report.ok for report in reports):
            log(f"looks: {Path(looks_model).name} on {looks.name}")
            reports.append(show_looks(Path(out_dir), looks, overwrite, progress, log))
    return reports


def demo_options(compare: bool, overwrite: bool, progress: bool) -> TranslateOptions:
    # The sample clip has no audio track: asking ffmpeg to copy one only prints a note.
    return TranslateOptions(compare=compare, overwrite=overwrite, progress=progress, audio="none")


def show_looks(out_dir: Path, looks: Backend, overwrite: bool = False, progress: bool = True,
               log: Callable[[str], None] = print, seeds: Sequence[int] = LOOKS_SEEDS) -> TranslateReport:
    """A latent model's translation of each sample photo with each seed (into looks_samples/,
    NAME_s{SEED}.jpg), then one sheet a photo in looks/: the photo, the default model's translation
    (photos/, written first by run_demo) and the seeds' looks, side by side."""
    samples_dir = out_dir / "looks_samples"
    report = translate_samples(SAMPLE_IMAGES, str(samples_dir), looks, seeds, demo_options(False, overwrite, progress),
                               log=log)
    if not report.ok:
        return report
    changes = []
    captions = ["photo", "default model", *(f"seed {seed}" for seed in seeds)]
    for photo in sorted(ASSETS.glob("*.jpg")):
        variants = [read_image(samples_dir / f"{photo.stem}{sample_tag(seed)}{photo.suffix}") for seed in seeds]
        changes.append(pairwise_pixel_distance(np.stack(variants)))
        panels = [read_image(photo), read_image(out_dir / "photos" / photo.name), *variants]
        write_image(out_dir / "looks" / photo.name, captioned_row(panels, captions))
    log(f"wrote {out_dir / 'looks'}: {' | '.join(captions)}; the seeds differ by a mean of "
        f"{np.mean(changes):.1f} levels")
    return report


def captioned_row(images: Sequence[np.ndarray], captions: Sequence[str]) -> np.ndarray:
    """Equal-height BGR images side by side, each under a black strip with its caption."""
    panels = []
    for image, caption in zip(images, captions):
        strip = np.zeros((CAPTION_HEIGHT, image.shape[1], 3), np.uint8)
        cv2.putText(strip, caption, (4, CAPTION_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        panels.append(np.vstack([strip, image]))
    return np.hstack(panels)
