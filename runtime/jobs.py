"""A folder job cut into units of work, for `--shard` and the distributed engine.

A unit is a part of the input's image listing (`part_size` files) or one video, whose frames
must stay in order. Every engine plans the units the same way from the same listing (sorted,
videos largest first, then the image parts), so `--shard I/N`, which takes units I, I+N, I+2N, ...,
needs no coordination: the shards' union is the whole input and no two overlap. A unit runs the
ordinary pipeline into the ordinary folder sink, so outputs have the same tree, names and skip
rules as `--engine local`: an output that exists is done, and a rerun resumes.

Each shard writes its summary (counts, failures) to OUT/.nicegan/shards/; `translate --report`
merges them.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from tqdm import tqdm

from nicegan.common import write_text_atomic
from nicegan.errors import NiceganError
from nicegan.runtime.backends.base import Backend
from nicegan.runtime.pipeline import TranslateOptions, TranslateReport, run_pipeline, translate_video
from nicegan.runtime.sinks import ImageSink, open_sink
from nicegan.runtime.sources import ImageSource, open_source

DEFAULT_PART_SIZE = 256   # images per unit: a retry redoes at most this many, and the progress bar moves per unit
STATE_DIR = ".nicegan"    # hidden: the input walker never lists it, a folder sink never writes there


class JobError(NiceganError, ValueError):
    """A job that cannot be planned (wrong input kind, bad --shard); the message says what to change."""


@dataclass(frozen=True)
class Unit:
    kind: str                 # "images" | "video"
    paths: tuple[str, ...]    # input files; names in the output come from the source's root, as locally

    @property
    def size(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def file_name(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}.json"


def parse_shard(text: str, count: int | None = None, env: Mapping[str, str] = os.environ) -> Shard:
    """`I/N`, or `auto`: a SLURM array task (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT, ids from
    SLURM_ARRAY_TASK_MIN) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, whose count Kubernetes
    does not expose: give it as --shard-count or NICEGAN_SHARD_COUNT)."""
    if text == "auto":
        return _shard_from_env(count, env)
    try:
        index, total = (int(v) for v in text.split("/"))
    except ValueError:
        raise JobError(f"--shard {text}: give I/N (e.g. 0/4) or auto") from None
    return _checked(index, total, f"--shard {text}")


def _shard_from_env(count: int | None, env: Mapping[str, str]) -> Shard:
    if "SLURM_ARRAY_TASK_ID" in env:
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        total = count or int(env.get("SLURM_ARRAY_TASK_COUNT", "0"))
        return _checked(int(env["SLURM_ARRAY_TASK_ID"]) - first, total, "--shard auto (SLURM array)")
    if "JOB_COMPLETION_INDEX" in env:
        total = count or int(env.get("NICEGAN_SHARD_COUNT", "0"))
        if not total:
            raise JobError("--shard auto in a Kubernetes Indexed Job: give the job's completions as --shard-count N "
                           "(or NICEGAN_SHARD_COUNT); Kubernetes does not tell a pod how many indexes there are")
        return _checked(int(env["JOB_COMPLETION_INDEX"]), total, "--shard auto (Indexed Job)")
    raise JobError("--shard auto: no SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment; "
                   "give --shard I/N")


def _checked(index: int, total: int, what: str) -> Shard:
    if total < 1 or not 0 <= index < total:
        raise JobError(f"{what}: shard {index} of {total} is out of range (0 <= I < N)")
    return Shard(index, total)


def open_collection(input_spec: str, output_spec: str | None,
                    options: TranslateOptions) -> tuple[ImageSource, ImageSink]:
    """The source and folder sink of a job that can be cut into units: a folder, glob or list."""
    source = open_source(input_spec)
    if not isinstance(source, ImageSource) or source.single:
        source.close()
        raise JobError(f"{input_spec}: --shard and --engine ray split a folder, glob or .txt list of images or "
                       "videos; translate a single file or a camera without them")
    sink = open_sink(source, output_spec, suffix=options.suffix, ext=options.ext, compare=options.compare,
                     codec=options.codec, audio=options.audio, overwrite=options.overwrite)
    if not isinstance(sink, ImageSink) or sink.folder is None:
        raise JobError(f"{output_spec}: a split job writes into a folder; give a folder as OUTPUT")
    return source, sink


def plan_units(source: ImageSource, part_size: int = DEFAULT_PART_SIZE) -> list[Unit]:
    """Videos first, largest first (the longest tasks start early), then the images in parts."""
    if part_size < 1:
        raise JobError(f"--part-size {part_size}: must be at least 1")
    videos = sorted(source.video_paths(), key=lambda p: (-p.stat().st_size, str(p)))
    units = [Unit("video", (str(video),)) for video in videos]
    part: list[str] = []
    for item in source.items():
        part.append(str(item.path))
        if len(part) == part_size:
            units.append(Unit("images", tuple(part)))
            part = []
    if part:
        units.append(Unit("images", tuple(part)))
    return units


def units_of(units: Sequence[Unit], shard: Shard) -> list[Unit]:
    return list(units[shard.index::shard.count])


def run_unit(unit: Unit, source: ImageSource, sink: ImageSink, backend: Backend, options: TranslateOptions,
             log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """One unit through the ordinary pipeline, no progress bar of its own."""
    quiet = replace(options, progress=False)
    if unit.kind == "video":
        video = Path(unit.paths[0])
        report = TranslateReport(output=sink.description)
        report.add(translate_video(video, sink.video_target(source.relative_name(video)), backend, quiet, log),
                   as_one_file=True)
        return report
    part = ImageSource(source.spec, source.root, lambda: (Path(p) for p in unit.paths))
    # The sink removes what a worker killed mid-write left for this unit's outputs (their one writer).
    return run_pipeline(part, sink, backend, replace(quiet, temporal=False), log)   # --temporal is for videos


def run_units(units: Sequence[Unit], source: ImageSource, sink: ImageSink, backend: Backend,
              options: TranslateOptions, log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """Units one after another in this process, with one progress bar over all their files."""
    report = TranslateReport(output=sink.description)
    began = time.perf_counter()
    with tqdm(total=sum(u.size for u in units), unit="file", disable=not options.progress,
              dynamic_ncols=True) as bar:
        for unit in units:
            report.add(run_unit(unit, source, sink, backend, options, log))
            bar.update(unit.size)
            if report.interrupted:
                break
    report.wall_s = time.perf_counter() - began
    return report


def translate_shard(input_spec: str, output_spec: str | None, backend: Backend, shard: Shard,
                    options: TranslateOptions, part_size: int = DEFAULT_PART_SIZE,
                    log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """This shard's units of the job, then its summary in OUT/.nicegan/shards/."""
    source, sink = open_collection(input_spec, output_spec, options)
    units = units_of(plan_units(source, part_size), shard)
    log(f"shard {shard}: {len(units)} units, {sum(u.size for u in units)} files")
    report = run_units(units, source, sink, backend, options, log)
    write_shard_summary(sink.folder, shard, report)
    for line in report.summary_lines():
        log(line)
    return report


def shard_summary_dir(out_root: Path) -> Path:
    return out_root / STATE_DIR / "shards"


def write_shard_summary(out_root: Path, shard: Shard, report: TranslateReport) -> Path:
    return write_text_atomic(shard_summary_dir(out_root) / shard.file_name,
                             json.dumps({"shard": [shard.index, shard.count], **report.to_dict()}, indent=1))


def merge_shard_reports(out_root: Path) -> tuple[TranslateReport, list[str]]:
    """All shards' summaries as one report, and the shards that have not written one yet."""
    summaries = [json.loads(p.read_text(encoding="utf-8")) for p in _summary_files(out_root)]
    if not summaries:
        raise JobError(f"{out_root}: no shard summaries in {shard_summary_dir(out_root)}; run the shards "
                       "(translate ... --shard I/N) first")
    counts = {s["shard"][1] for s in summaries}
    if len(counts) != 1:
        raise JobError(f"{shard_summary_dir(out_root)}: summaries of jobs split {sorted(counts)} ways; "
                       "remove the old ones")
    total = counts.pop()
    done = {s["shard"][0] for s in summaries}
    merged = TranslateReport(output=f"{out_root}/")
    for summary in sorted(summaries, key=lambda s: s["shard"][0]):
        merged.add(TranslateReport.from_dict(summary))
    return merged, [f"{i}/{total}" for i in range(total) if i not in done]


def _summary_files(out_root: Path) -> Iterator[Path]:
    folder = shard_summary_dir(out_root)
    return iter(sorted(folder.glob("shard-*-of-*.json"))) if folder.is_dir() else iter(())
