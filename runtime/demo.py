"""`nicegan demo`: the embedded default model on the sample video and photos shipped with the package."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nicegan.errors import NiceganError
from nicegan.runtime.backends import choose_backend, open_backend
from nicegan.runtime.pipeline import TranslateOptions, TranslateReport, translate

ASSETS = Path(__file__).with_name("assets")
DEFAULT_MODEL = ASSETS / "models" / "vintage_a2b.onnx"
DEFAULT_MODEL_DESCRIPTION = "the bundled photo->vintage model"
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
             overwrite: bool = False, progress: bool = True,
             log: Callable[[str], None] = print) -> list[TranslateReport]:
    """Translate the samples into `out_dir` with the best available backend; one report per job."""
    if not Path(model).is_file():
        raise DemoError(f"{model}: model file not found; reinstall nicegan or pass --model MODEL")
    _, why = choose_backend(str(model), backend)
    reports = []
    with open_backend(str(model), backend, device=device) as opened:
        log(f"backend: {opened.name} on {opened.device} ({why})")
        for job in demo_jobs(Path(out_dir)):
            # The sample clip has no audio track: asking ffmpeg to copy one only prints a note.
            options = TranslateOptions(compare=job.compare, overwrite=overwrite, progress=progress,
                                       audio="none")
            reports.append(translate(job.source, job.output, opened, options, log=log))
            log(f"wrote {job.output}")
    return reports
