"""The translate pipeline: decode -> infer -> encode in three stages with bounded queues.

The decode stage reads frames in order and hands file reading and the size policy to a few
worker threads; the calling thread batches frames of equal size and runs the backend (so
CUDA/TensorRT contexts stay in the thread that created them); the encode stage restores frames to
their own size and format and writes image files on worker threads, video frames in input order.
Queues hold a couple of batches, so memory stays flat however long the input.
With `--temporal` (videos, cameras, streams) the decode workers also compute the optical flow
between each frame and the one before, and the encode stage blends each translated frame with the
previous output in input order (runtime/temporal.py), timed as a stage of its own.
Ctrl-C (or SIGTERM) stops after the current batch: everything inferred so far is written and video
files are closed properly (kept as NAME.partial.EXT; for cameras and streams Ctrl-C is the normal end and
the video is final); a rerun resumes where the job stopped.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from nicegan.common import ImageReadError, StopSignals
from nicegan.runtime.backends.base import Backend
from nicegan.runtime.frames import FrameError, Placement, SizePolicy, from_bgr8, to_bgr8
from nicegan.runtime.sinks import ImageSink, SinkError, VideoSink, open_sink, open_video_sink
from nicegan.runtime.sources import Decoded, ImageSource, Item, Source, SourceError, VideoSource, open_source
from nicegan.runtime.temporal import DEFAULT_STRENGTH, Motion, TemporalError, TemporalFilter, estimate_motion

_END = object()       # end-of-stream marker passed through the queues
_POLL_S = 0.1         # how often blocked queue operations look at the stop flag


@dataclass
class TranslateOptions:
    batch_size: int = 0           # 0: auto (1 on CPU, where batching does not pay; 8 on GPUs)
    max_size: int | None = None   # light models: downscale so the longest side is at most this
    suffix: str = ""
    ext: str | None = None
    compare: bool = False         # write input | output side by side
    codec: str | None = None      # video fourcc (mp4v, MJPG, VP80, ...) or "h264" (ffmpeg)
    audio: str = "copy"           # "copy" (when possible) | "none"
    overwrite: bool = False
    progress: bool = True
    workers: int = 0              # decode and encode threads each; 0: min(4, CPU cores)
    temporal: bool = False        # videos: flow-guided blending with the previous output (runtime/temporal.py)
    temporal_strength: float = DEFAULT_STRENGTH
    tag: str = ""                 # appended to every output name (translate_samples: _s{seed})


@dataclass
class StageClock:
    """Busy time of one stage, queue waits excluded (work spread over N threads counts 1/N), so
    frames/seconds is what the stage could sustain alone: the lowest one limits throughput."""
    seconds: float = 0.0
    frames: int = 0

    def add(self, seconds: float, frames: int) -> None:
        self.seconds += seconds
        self.frames += frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class TranslateReport:
    output: str
    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    exit_status: int = 130    # the shell's status when interrupted: 130 by Ctrl-C, 143 by SIGTERM
    interrupted_line: str = "interrupted: rerun the same command to resume"   # the sink's own words
    wall_s: float = 0.0
    stages: dict[str, StageClock] = field(
        default_factory=lambda: {"decode": StageClock(), "infer": StageClock(), "temporal": StageClock(),
                                 "encode": StageClock()})

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def add(self, other: "TranslateReport", as_one_file: bool = False) -> None:
        """Take in another run's counts: a part of this job's images, or (`as_one_file`) one of its
        videos, which counts as one file written or skipped however many frames it has."""
        if as_one_file:
            self.written += int(other.written > 0 and other.ok)
            self.skipped += int(other.written == 0 and other.skipped > 0)
        else:
            self.written += other.written
            self.skipped += other.skipped
        self.failed += other.failed
        self.notes += other.notes
        self.wall_s += other.wall_s   # sequential parts; a caller that ran them in parallel sets its own
        if other.interrupted:
            self.interrupted, self.interrupted_line, self.exit_status = True, other.interrupted_line, other.exit_status
        for name, clock in other.stages.items():
            self.stages[name].add(clock.seconds, clock.frames)

    def to_dict(self) -> dict:
        """Plain data (JSON, Ray rows): counts, failures, notes, stage clocks."""
        return {"output": self.output, "written": self.written, "skipped": self.skipped, "failed": self.failed,
                "notes": self.notes, "interrupted": self.interrupted, "wall_s": self.wall_s,
                "stages": {name: [c.seconds, c.frames] for name, c in self.stages.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "TranslateReport":
        report = cls(data["output"], data["written"], data["skipped"], list(data["failed"]), list(data["notes"]),
                     data["interrupted"], wall_s=data["wall_s"])
        for name, (seconds, frames) in data["stages"].items():
            report.stages[name] = StageClock(seconds, frames)
        return report

    def throughput_line(self) -> str:
        rates = {name: clock.fps for name, clock in self.stages.items() if clock.frames}
        if not rates:
            return "throughput: nothing translated"
        parts = [f"{name} {rate:.1f}" for name, rate in rates.items()]
        end_to_end = self.written / self.wall_s if self.wall_s > 0 else float("inf")
        return (f"throughput (frames/s): {' | '.join(parts)} | end-to-end {end_to_end:.1f}"
                f"  (slowest stage: {min(rates, key=rates.get)})")

    def summary_lines(self) -> list[str]:
        lines = [f"{self.written} written, {self.skipped} already done (skipped), {len(self.failed)} failed"
                 f" -> {self.output}", self.throughput_line()]
        lines += [f"note: {note}" for note in self.notes]
        if self.failed:
            lines.append("failed inputs:")
            lines += [f"  {failure}" for failure in self.failed]
        if self.interrupted:
            lines.append(self.interrupted_line)
        return lines


@dataclass
class _Record:
    """One frame between the stages."""
    item: Item
    original: np.ndarray
    model_input: np.ndarray
    placement: Placement
    motion: Motion | None = None      # --temporal: the flow from the frame before
    motion_seconds: float = 0.0


def default_batch_size(backend: Backend) -> int:
    """The backend's own preference; else 1 on CPU, where batching does not pay, and 8 on GPUs, or
    the engine's largest batch if smaller."""
    if backend.preferred_batch:
        return backend.preferred_batch
    if backend.device.startswith("CPU"):
        return 1
    return min(8, backend.max_batch or 8)


def translate(input_spec: str, output_spec: str | None, backend: Backend,
              options: TranslateOptions | None = None,
              log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """Translate INPUT (file, folder, glob, list, video, camera, URL) into OUTPUT (folder, image,
    video; None = a default name next to the input) with an opened backend. Prints one line per
    failed input and the summary through `log`; the caller decides the exit status from `.ok`."""
    options = options or TranslateOptions()
    source = open_source(input_spec)
    try:
        sink = open_sink(source, output_spec, suffix=options.suffix, ext=options.ext, compare=options.compare,
                         codec=options.codec, audio=options.audio, overwrite=options.overwrite, tag=options.tag)
        for note in sink.start_notes:
            log(f"note: {note}")
        collection = isinstance(source, ImageSource) and isinstance(sink, ImageSink) and sink.folder is not None
        videos = list(source.video_paths()) if collection else []
        # --temporal filters the videos of a folder; its images have no order in time
        report = run_pipeline(source, sink, backend, replace(options, temporal=options.temporal and not videos), log)
        for video in videos:   # a folder of videos becomes a folder of videos
            if report.interrupted:
                break
            target = sink.video_target(source.relative_name(video))
            report.add(translate_video(video, target, backend, options, log), as_one_file=True)
    finally:
        source.close()
    for line in report.summary_lines():
        log(line)
    return report


def sample_tag(seed: int) -> str:
    """What `translate --samples` appends to the output names of `seed`'s variant."""
    return f"_s{seed}"


def translate_samples(input_spec: str, output_spec: str | None, backend: Backend, seeds: Sequence[int],
                      options: TranslateOptions | None = None,
                      log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """A latent model's variants: the whole job once per seed, with that seed's code for every image
    and frame (a video keeps one look), into outputs named NAME_s{seed}.EXT (sample_tag)."""
    options = options or TranslateOptions()
    report = TranslateReport(output=f"{len(seeds)} samples (seeds {', '.join(map(str, seeds))})")
    for seed in seeds:
        backend.use_seed(seed)
        log(f"seed {seed}:")
        part = translate(input_spec, output_spec, backend, replace(options, tag=sample_tag(seed)), log)
        report.add(part)
        if part.interrupted:
            break
    return report


def translate_video(video: Path, target: Path, backend: Backend, options: TranslateOptions,
                    log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    """One video file of a folder job into `target`; a video that cannot be opened is a failure
    of the job, not an error that stops it."""
    try:
        source = open_source(str(video))
    except SourceError as exc:
        return TranslateReport(output=str(target), failed=[str(exc)])
    try:
        sink = open_video_sink(source, target, options.codec, options.audio, options.overwrite)
        for note in sink.start_notes:
            log(f"note: {note}")
        return run_pipeline(source, sink, backend, options, log)
    finally:
        source.close()


def run_pipeline(source: Source, sink: ImageSink | VideoSink, backend: Backend,
                 options: TranslateOptions, log: Callable[[str], None] = tqdm.write) -> TranslateReport:
    if options.temporal and not isinstance(source, VideoSource):
        raise TemporalError(f"--temporal needs a video, camera or stream: {source.spec} is images, which have no "
                            "order in time (drop --temporal)")
    report = TranslateReport(output=sink.description)
    if sink.complete():
        report.skipped = 1
        report.notes.append(f"{sink.description} exists: nothing to do (--overwrite to redo it)")
        return report
    return _Pipeline(source, sink, backend, options, report, log).run()


class _Pipeline:
    def __init__(self, source: Source, sink: ImageSink | VideoSink, backend: Backend,
                 options: TranslateOptions, report: TranslateReport, log: Callable[[str], None]):
        self.source, self.sink, self.backend = source, sink, backend
        self.options, self.report, self.log = options, report, log
        self.policy = SizePolicy(backend.info, options.max_size)
        self.live = isinstance(source, VideoSource) and source.live
        self.temporal = TemporalFilter(options.temporal_strength) if options.temporal else None
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.workers = options.workers or min(4, os.cpu_count() or 1)
        batch = options.batch_size or default_batch_size(backend)
        self.batch_size = batch
        # One batch waiting while another is inferred keeps the backend busy; more only costs memory.
        self.decoded: queue.Queue = queue.Queue(maxsize=batch + self.workers)
        self.encoded: queue.Queue = queue.Queue(maxsize=2)
        self._count_lock = threading.Lock()
        self.encoder = threading.Thread(target=self._guarded, args=(self._encode,), name="encode", daemon=True)
        self.progress = tqdm(total=source.count(), unit="frame" if isinstance(source, VideoSource) else "img",
                             disable=not options.progress, dynamic_ncols=True, smoothing=0.1)

    def run(self) -> TranslateReport:
        decoder = threading.Thread(target=self._guarded, args=(self._decode,), name="decode", daemon=True)
        start = time.perf_counter()
        finished = False
        with StopSignals(self._stop_after_batch) as signals:
            try:
                decoder.start()
                self.encoder.start()
                self._infer_loop()
                finished = True
            finally:
                self.stop.set()
                self._put(self.encoded, _END, self.encoder)
                self.encoder.join()
                decoder.join(timeout=5)
                self.progress.close()
                self.report.wall_s = time.perf_counter() - start
                self.report.exit_status = signals.exit_status
                # A backend or writer error leaves a video as incomplete as Ctrl-C does: keep it as .partial.
                self.sink.close(interrupted=self.report.interrupted or bool(self.errors) or not finished)
                self.report.notes += self.source.notes + self.sink.notes
                if self.temporal is not None:
                    self.report.notes.append(self.temporal.summary())
                self.report.interrupted_line = self.sink.interrupted_line()
        if self.errors:
            raise self.errors[0]
        return self.report

    # --- stages ---------------------------------------------------------------------------

    def _decode(self) -> None:
        """Reads in order (video frames must be), reads files and fits frames on worker threads."""
        clock = self.report.stages["decode"]
        frames = self.source.frames(self.sink.done)
        in_flight: deque[Future] = deque()
        previous: Decoded | None = None
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            while not self.stop.is_set():
                began = time.perf_counter()
                decoded = next(frames, None)
                clock.add(time.perf_counter() - began, 0)
                if decoded is None:
                    break
                if decoded.skipped:
                    self._count(skipped=1)
                    previous = None     # --temporal restarts after the frames an earlier run wrote
                    continue
                in_flight.append(pool.submit(self._prepare, decoded, previous))
                previous = decoded if self.temporal is not None else None
                if len(in_flight) > 2 * self.workers and not self._deliver(in_flight.popleft()):
                    return
            while in_flight and not self.stop.is_set():
                if not self._deliver(in_flight.popleft()):
                    return
        self._put(self.decoded, _END)

    def _prepare(self, decoded: Decoded, previous: Decoded | None = None) -> tuple[_Record | None, float]:
        """Read and fit one frame; with --temporal also the flow from `previous` (timed apart)."""
        began = time.perf_counter()
        try:
            image = decoded.read()
            bgr = to_bgr8(image)
            record = _Record(decoded.item, image, *self.policy.fit(bgr))
            fitted = time.perf_counter()
            if previous is not None:
                record.motion = estimate_motion(to_bgr8(previous.read()), bgr, fine=self.temporal.fine_flow)
                record.motion_seconds = time.perf_counter() - fitted
        except ImageReadError as exc:
            self._fail(str(exc))
            return None, 0.0
        except FrameError as exc:
            self._fail(f"{decoded.item.path or decoded.item.name}: {exc}")
            return None, 0.0
        return record, fitted - began

    def _deliver(self, future: Future) -> bool:
        record, seconds = future.result()
        if record is None:
            return True
        self.report.stages["decode"].add(seconds / self.workers, 1)
        return self._put(self.decoded, record)

    def _infer_loop(self) -> None:
        """Batches frames of equal model-input shape. Folders of mixed sizes (portrait and
        landscape photos) are grouped by shape within a window of a few batches, so batches stay
        full; a video has one shape, so its frames keep their order."""
        buckets: dict[tuple[int, ...], list[_Record]] = {}
        held = 0
        while not self.stop.is_set():
            record = self._get(self.decoded)
            if record is _END:
                break
            bucket = buckets.setdefault(record.model_input.shape, [])
            bucket.append(record)
            held += 1
            if len(bucket) == self.batch_size:
                held -= self._infer(buckets.pop(record.model_input.shape))
            elif held > 4 * self.batch_size:          # the oldest shape waited long enough
                held -= self._infer(buckets.pop(next(iter(buckets))))
            elif self.live and self.decoded.empty():  # a camera frame should not wait for the next
                held -= self._infer(buckets.pop(record.model_input.shape))
        for shape in list(buckets):
            if self.stop.is_set():
                break
            self._infer(buckets.pop(shape))

    def _infer(self, records: list[_Record]) -> int:
        began = time.perf_counter()
        outputs = self.backend.infer(np.stack([r.model_input for r in records]))
        self.report.stages["infer"].add(time.perf_counter() - began, len(records))
        self._put(self.encoded, (records, outputs), self.encoder)
        return len(records)

    def _encode(self) -> None:
        """Restores frames (and writes image files) on worker threads; video frames are written
        here, in order."""
        in_flight: deque[Future] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="encode") as pool:
            while True:
                work = self.encoded.get()
                if work is _END:
                    break
                for record, output in zip(*work):
                    in_flight.append(pool.submit(self._finish, record, output))
                while in_flight and (len(in_flight) > 2 * self.workers or self.encoded.empty()):
                    self._complete(in_flight.popleft())
            while in_flight:
                self._complete(in_flight.popleft())

    def _finish(self, record: _Record, output: np.ndarray) -> tuple[_Record, np.ndarray | None, float]:
        """Restores the frame's size; without --temporal, nothing after that needs the frames before."""
        began = time.perf_counter()
        frame = self.policy.restore(output, record.placement)
        if self.temporal is None:
            frame = self._store(record, frame)
        return record, frame, time.perf_counter() - began

    def _store(self, record: _Record, bgr: np.ndarray) -> np.ndarray | None:
        """The frame in its input's pixel format (beside the input with --compare): image files are
        written here, video frames returned for the one ordered writer."""
        image = from_bgr8(bgr, record.original)
        if self.options.compare:
            image = np.hstack([record.original, image])
        if isinstance(self.sink, VideoSink):
            return image
        self._write_file(record.item, image)
        return None

    def _write_file(self, item: Item, image: np.ndarray) -> None:
        try:
            self.sink.write(item, image)
        except (SinkError, OSError) as exc:
            self._fail(str(exc))
            return
        self._count(written=1)

    def _complete(self, future: Future) -> None:
        record, frame, seconds = future.result()
        clock = self.report.stages["encode"]
        clock.add(seconds / self.workers, 1)
        if self.temporal is not None:            # the recursion needs the frames in order
            frame = self._smooth(record, frame)
            began = time.perf_counter()
            frame = self._store(record, frame)
            clock.add(time.perf_counter() - began, 0)
        if frame is not None:                    # video: one encoder, frames in order
            began = time.perf_counter()
            self.sink.write(record.item, frame)
            clock.add(time.perf_counter() - began, 0)
            self._count(written=1)

    def _smooth(self, record: _Record, frame: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        smoothed = self.temporal.blend(frame, record.motion, record.item.index)
        flow_seconds = record.motion_seconds / self.workers     # spread over the decode workers
        self.report.stages["temporal"].add(flow_seconds + time.perf_counter() - began, 1)
        return smoothed

    # --- plumbing -------------------------------------------------------------------------

    def _guarded(self, stage: Callable[[], None]) -> None:
        try:
            stage()
        except BaseException as exc:  # re-raised in the calling thread by run()
            self.errors.append(exc)
            self.stop.set()

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    def _put(self, q: queue.Queue, value, consumer: threading.Thread | None = None) -> bool:
        """Blocking put that gives up when the job stops (decode) or the consumer died (encode)."""
        while True:
            try:
                q.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                if consumer is None and self.stop.is_set():
                    return False
                if consumer is not None and not consumer.is_alive():
                    return False

    def _count(self, written: int = 0, skipped: int = 0) -> None:
        with self._count_lock:
            self.report.written += written
            self.report.skipped += skipped
            self.progress.update(written + skipped)

    def _fail(self, message: str) -> None:
        with self._count_lock:
            self.report.failed.append(message)
            self.progress.update(1)
        self.log(f"FAILED {message}")

    def _stop_after_batch(self, name: str) -> None:
        """The first Ctrl-C or SIGTERM: finish the current batch, write, close files (a second aborts)."""
        # A camera or stream has no end: a stop signal is how it ends, and its video is complete.
        self.report.interrupted = not self.live
        self.stop.set()
        self.log(f"{name}: finishing the current batch and closing the output (a second Ctrl-C or SIGTERM aborts)")
