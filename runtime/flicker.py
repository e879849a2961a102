"""How much a translated video flickers: `nicegan flicker INPUT OUT1 [OUT2 ...]`.

The warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"): each frame of
a video is compared with the next one warped back by the optical flow of the *input* video, over
the pixels that the flow can follow (Ruder et al. 2016's occlusion and motion-boundary tests):

    E_warp(V) = mean over t of  sum_x M_t(x) |V_t(x) - V_{t+1}(x + f_t(x))|^2 / (3 sum_x M_t(x))

in squared levels (0-255) per channel. The input's own E_warp is the floor that flow errors,
noise and lighting leave. The flow is Farneback's, not the DIS flow that `--temporal` uses, so the
filter is never graded on its own warp. A blurred or washed-out video also scores a low E_warp,
so each video is compared with a reference (by default the first output: the per-frame
translation) for sharpness (mean squared gradient, as a ratio) and PSNR, over all pixels and over
the pixels where the input moved.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest

import cv2
import numpy as np

from nicegan.errors import NiceganError
from nicegan.runtime.sources import SourceError, VideoSource, open_source
from nicegan.runtime.temporal import inside_frame, pixel_grid, round_trip_agrees, squared_length, warp

MOVING_LEVELS = 12          # a pixel "moved" where the input's gray level changed by more than this
# A pair of frames whose *input* cannot be warped one onto the other (its own E_warp above this,
# an RMS of 32 levels; a few hundred at most for fast real motion) straddles a scene cut: the
# flow means nothing there, so the pair is left out of every video's E_warp, and reported.
CUT_WARP_ERROR = 1000.0
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


class FlickerError(NiceganError, ValueError):
    """Videos that cannot be compared; the message names the file and the fix."""


@dataclass
class FlickerScores:
    name: str
    e_warp: float                      # squared levels; nan when no pair of frames had a trackable pixel
    flicker_left: float | None = None  # (E - E_input) / (E_reference - E_input): 1 = as much as the reference
    sharpness: float | None = None     # mean squared gradient over the reference's
    psnr: float | None = None          # dB against the reference
    psnr_moving: float | None = None   # dB against the reference where the input moved


@dataclass
class FlickerResult:
    rows: list[FlickerScores]      # the input first
    pairs: int                     # pairs of consecutive frames in E_warp
    cuts: list[int]                # frames t whose pair (t-1, t) was left out as a scene cut


@dataclass
class _Pair:
    """What the input says about frames t-1 and t: where t-1's pixels went, which to count."""
    where: np.ndarray     # HxWx2: frame t-1 at x is frame t at where(x)
    tracked: np.ndarray   # HxW bool: not occluded, not on a motion boundary, inside the frame
    moving: np.ndarray    # HxW bool: the input changed by more than MOVING_LEVELS


def _input_pair(before: np.ndarray, after: np.ndarray) -> _Pair:
    """Farneback flows both ways between two input frames, and Lai et al.'s mask."""
    gray_before = cv2.cvtColor(before, cv2.COLOR_BGR2GRAY)
    gray_after = cv2.cvtColor(after, cv2.COLOR_BGR2GRAY)
    forward = cv2.calcOpticalFlowFarneback(gray_before, gray_after, None, **_FARNEBACK)
    backward = cv2.calcOpticalFlowFarneback(gray_after, gray_before, None, **_FARNEBACK)
    where = pixel_grid(*gray_before.shape) + forward
    agrees = round_trip_agrees(forward, warp(backward, where))
    du_dy, du_dx = np.gradient(forward[..., 0])
    dv_dy, dv_dx = np.gradient(forward[..., 1])
    boundary = du_dx ** 2 + du_dy ** 2 + dv_dx ** 2 + dv_dy ** 2 > 0.01 * squared_length(forward) + 0.002
    moving = np.abs(gray_after.astype(np.int16) - gray_before) > MOVING_LEVELS
    return _Pair(where, agrees & ~boundary & inside_frame(where), moving)


def _sharpness(frame: np.ndarray) -> float:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    return float(np.mean(gx * gx + gy * gy))


@dataclass
class _Tally:
    """Running sums for one video."""
    warp_errors: list[float] = field(default_factory=list)   # one per pair of frames
    gradient_energy: float = 0.0
    squared_error: float = 0.0
    values: int = 0
    moving_squared_error: float = 0.0
    moving_values: int = 0

    def add_against(self, frame: np.ndarray, reference: np.ndarray, moving: np.ndarray | None) -> None:
        self.gradient_energy += _sharpness(frame)
        squared = np.square(frame.astype(np.float32) - reference)
        self.squared_error += float(squared.sum())
        self.values += squared.size
        if moving is not None and moving.any():
            self.moving_squared_error += float(squared[moving].sum())
            self.moving_values += int(moving.sum()) * squared.shape[2]

    @property
    def e_warp(self) -> float:
        return float(np.mean(self.warp_errors)) if self.warp_errors else float("nan")


def _warp_error(before: np.ndarray, after: np.ndarray, pair: _Pair) -> float:
    """E_warp of one pair of frames: mean squared difference over the tracked pixel-channels."""
    difference = before.astype(np.float32) - warp(after.astype(np.float32), pair.where)
    return float(np.square(difference[pair.tracked]).sum()) / (3 * int(pair.tracked.sum()))


def measure_flicker(frames: Iterable[Sequence[np.ndarray]], names: Sequence[str],
                    reference: int = 1) -> FlickerResult:
    """Scores for each video of `names` (the input first), fed as one sequence of frames per time
    step, [input_t, video1_t, ...] (uint8 BGR, one size). `reference` indexes `names` (>= 1)."""
    tallies = [_Tally() for _ in names]
    cuts: list[int] = []
    before: Sequence[np.ndarray] | None = None
    for t, now in enumerate(frames):
        pair = _input_pair(before[0], now[0]) if before is not None else None
        if pair is not None:
            if pair.tracked.any() and _warp_error(before[0], now[0], pair) <= CUT_WARP_ERROR:
                for i, tally in enumerate(tallies):
                    tally.warp_errors.append(_warp_error(before[i], now[i], pair))
            else:
                cuts.append(t)
        against = now[reference].astype(np.float32)
        for i, tally in enumerate(tallies[1:], 1):
            tally.add_against(now[i], against, None if pair is None else pair.moving)
        before = now
    return FlickerResult(_scores(names, tallies, reference), len(tallies[0].warp_errors), cuts)


def _scores(names: Sequence[str], tallies: list[_Tally], reference: int) -> list[FlickerScores]:
    floor, ref = tallies[0].e_warp, tallies[reference]
    rows = [FlickerScores(names[0], floor)]
    for name, tally in zip(names[1:], tallies[1:]):
        excess = ref.e_warp - floor
        rows.append(FlickerScores(
            name, tally.e_warp,
            flicker_left=(tally.e_warp - floor) / excess if excess > 0 else None,
            sharpness=tally.gradient_energy / ref.gradient_energy if ref.gradient_energy > 0 else None,
            psnr=psnr(tally.squared_error, tally.values),
            psnr_moving=psnr(tally.moving_squared_error, tally.moving_values) if tally.moving_values else None))
    return rows


def psnr(squared_error: float, values: int) -> float:
    """dB for 8-bit values from a sum of squared errors over `values` values (inf when equal)."""
    if squared_error <= 0:
        return float("inf")
    return 10 * math.log10(255.0 ** 2 * values / squared_error)


# --- video files ------------------------------------------------------------------------------


@dataclass
class FlickerReport:
    input: str
    frames: int
    size: tuple[int, int]        # (width, height)
    reference: str
    result: FlickerResult
    notes: list[str]


def measure_videos(input_video: str, outputs: Sequence[str], reference: str | None = None) -> FlickerReport:
    """`measure_flicker` on video files read in step, one frame of each in memory at a time.
    `reference` defaults to the first output; another file is measured as one more row."""
    reference = reference or outputs[0]
    names = [input_video, *outputs] + ([] if reference in outputs else [reference])
    sources = [_open_video(spec) for spec in names]
    try:
        _check_counts(sources)
        steps = _InStep(sources)
        result = measure_flicker(steps, names, names.index(reference, 1))
    finally:
        for source in sources:
            source.close()
    if steps.frames < 2:
        raise FlickerError(f"{input_video}: {steps.frames} frame(s) read; the warping error needs at least 2")
    return FlickerReport(input_video, steps.frames, steps.size, reference, result,
                         [note for source in sources for note in source.notes])


def _open_video(spec: str) -> VideoSource:
    try:
        source = open_source(spec)
    except SourceError as exc:
        raise FlickerError(str(exc)) from None
    if not isinstance(source, VideoSource) or source.live:
        source.close()
        raise FlickerError(f"{spec}: not a video file (nicegan flicker compares video files of one clip)")
    return source


def _check_counts(sources: list[VideoSource]) -> None:
    """Frame counts from the containers, where they state them: a mismatch is refused before any work."""
    expected = sources[0].count()
    for source in sources[1:]:
        count = source.count()
        if expected is not None and count is not None and count != expected:
            raise FlickerError(f"{source.spec} has {count} frames, {sources[0].spec} {expected}: compare "
                               "translations of the whole input video (same frames, no --compare view)")


class _InStep:
    """[input_t, video1_t, ...] for every t, refusing videos of other sizes or lengths."""

    def __init__(self, sources: list[VideoSource]):
        self.sources = sources
        self.frames = 0
        self.size: tuple[int, int] = (0, 0)

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        streams = [source.frames(lambda item: False) for source in self.sources]
        for decoded in zip_longest(*streams):
            ended = [s.spec for s, d in zip(self.sources, decoded) if d is None]
            if ended:
                raise FlickerError(f"{ended[0]} ended after {self.frames} frames while "
                                   f"{next(s.spec for s, d in zip(self.sources, decoded) if d is not None)} goes on: "
                                   "compare translations of the whole input video")
            step = [_bgr(d.image) for d in decoded]
            if not self.frames:
                self._check_sizes(step)
            self.frames += 1
            yield step

    def _check_sizes(self, step: list[np.ndarray]) -> None:
        height, width = step[0].shape[:2]
        self.size = (width, height)
        for source, frame in zip(self.sources[1:], step[1:]):
            if frame.shape[:2] != (height, width):
                raise FlickerError(f"{source.spec} is {frame.shape[1]}x{frame.shape[0]}, {self.sources[0].spec} "
                                   f"{width}x{height}: compare translations at the input's size (no --compare view)")


def _bgr(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def format_report(report: FlickerReport) -> str:
    """The table `nicegan flicker` prints, with what each column means."""
    width, height = report.size
    lines = [f"input: {report.input} ({report.frames} frames, {width}x{height}); reference: {report.reference}",
             "E_warp: warping error (Lai et al. 2018) with Farneback flow on the input and its occlusion mask, "
             "squared levels per channel; lower is steadier, the input's own is the floor",
             "flicker left: (E_warp - input's) / (reference's - input's); sharpness: mean squared gradient over "
             "the reference's; PSNR against the reference, over all pixels and where the input moved"]
    header = ("video", "E_warp", "flicker left", "sharpness", "PSNR dB", "PSNR moving dB")
    cells = [header] + [(_label(row.name, report), _number(row.e_warp), _number(row.flicker_left),
                         _number(row.sharpness), _number(row.psnr), _number(row.psnr_moving))
                        for row in report.result.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
              for row in cells]
    if report.result.cuts:
        lines.append(f"note: E_warp leaves out {len(report.result.cuts)} pair(s) of frames across a scene cut "
                     f"(before frame {', '.join(map(str, report.result.cuts))}): the input's own warp error is above "
                     f"{CUT_WARP_ERROR:.0f} there")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def _label(name: str, report: FlickerReport) -> str:
    if name == report.input:
        return f"{name} (input)"
    return f"{name} (reference)" if name == report.reference else name


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
