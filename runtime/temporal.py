"""Temporal consistency at deploy time: `nicegan translate VIDEO --temporal`.

Frame-by-frame translation flickers: a network that normalises every frame by its own statistics
(NICE-GAN's ILN/adaILN, CycleGAN's InstanceNorm) changes tone and texture from one frame to the
next where the scene hardly changed. The filter blends each translated frame P_t with the previous
*output* O_{t-1}, warped onto frame t by optical flow computed on the *input* frames:

    O_t = P_t + a * c * (warp(O_{t-1}) - P_t)

where c in [0, 1] says where the flow can be trusted: forward and backward flows agree (Ruder et
al. 2016's test), the warped previous input matches the current one (Bonneel et al. 2015's
photometric weight) and the warp stays inside the frame. How strict that test is follows the
model: the filter measures the model's *flicker index*, its output's frame-to-frame change over
its input's where the flow is sure (about 1 for a model that does not flicker, tens for one that
does), and as it rises from 3 to 6 the confidence's one-pixel erosion is given up and the flow is
matched more finely, so thin moving things (walkers seen from afar) are steadied too; a stable
model keeps the strict test, which keeps its moving edges free of ghosts, and the faster flow
(docs/BENCHMARKS.md, section 6). Only past frames are used, so cameras and streams work; a frame
that the flow cannot explain (mean confidence below CUT_CONFIDENCE: a scene cut) restarts the
recursion. The network never sees O_{t-1}, so batching and backends are untouched.

`estimate_motion` needs only two input frames and is thread-safe (the pipeline's decode workers run
it, out of order); `TemporalFilter.blend` holds the state and must see the frames in order.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from nicegan.errors import NiceganError

# Steady state where c = 1: frame-to-frame energy of i.i.d. flicker x (1-a)^2/(1+a) (x0.05 at 0.7).
# 0.7 halved a flickering model's E_warp on 4 of 4 real clips and kept a stable model's output
# within 36.8 dB of its per-frame translation on moving pixels; 0.9 did not (docs/BENCHMARKS.md, 6).
DEFAULT_STRENGTH = 0.7
MAX_STRENGTH = 0.95         # above it, a wrong flow's ghost takes tens of frames to fade
FLOW_SIDE = 640             # flow is computed with the longest side at most this, then upsampled
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_FAST
# For a model that flickers, patches are matched down to half the flow's resolution, not FAST's
# quarter: thin moving things get their own motion (with the relaxed test, such a model's E_warp on
# the street clip 0.50 -> 0.44 of the per-frame output's). It costs 3.5x FAST's flow time (11.7 ->
# 41 ms at 640x360), and changes nothing measurable for a stable model, which keeps FAST's own scale.
FINE_FLOW_FINEST_SCALE = 1
PHOTOMETRIC_SIGMA = 13.0    # levels: Bonneel et al.'s 0.05 of full scale
CUT_CONFIDENCE = 0.25       # mean confidence below this: the frame does not follow from the last one
SURE_CONFIDENCE = 0.9       # where the flicker index is measured
# Flicker index at which the confidence starts to be relaxed and is fully relaxed. Measured on 4 real
# clips: 0.8 to 1.9 for the bundled model, 18 to 630 for a flickering one (docs/BENCHMARKS.md, 6).
RELAX_FROM, RELAX_FULLY_AT = 3.0, 6.0
INDEX_SMOOTHING = 0.3       # weight of each frame's ratio in the running flicker index
# Ruder et al.'s forward-backward test: |b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5 px^2.
_ROUND_TRIP_RELATIVE = 0.01
_ROUND_TRIP_ABSOLUTE = 0.5

_threads = threading.local()   # DIS instances per thread (fast, fine): calc() keeps buffers in the object


class TemporalError(NiceganError, ValueError):
    """--temporal asked of an input or with a value it cannot work with; the message says why."""


@dataclass(frozen=True)
class Motion:
    """How frame t moved from frame t-1, at flow size."""
    back: np.ndarray          # HxWx2 float32: frame t at x shows frame t-1 at x + back(x)
    confidence: np.ndarray    # HxW float32 in [0, 1]: how far that is to be trusted (strict test)
    loose: np.ndarray         # the same without the one-pixel erosion (for a model that flickers)
    input_change: float       # mean squared input residual after the warp where confidence > SURE (nan: none)
    frames: tuple[np.ndarray, np.ndarray]   # the gray frames t-1 and t at flow size, to refine it
    fine: bool = False        # patches matched at half the flow's resolution

    @property
    def cut(self) -> bool:
        return float(self.confidence.mean()) < CUT_CONFIDENCE

    def at(self, fine: bool) -> Motion:
        """The same motion from the fine flow (for a model that flickers) or the fast one."""
        return self if self.fine == fine else _motion(*self.frames, fine=fine)


def estimate_motion(previous: np.ndarray, current: np.ndarray, fine: bool = False) -> Motion:
    """Flow from `current` back to `previous` (uint8 BGR input frames of one size) and its confidence.
    `fine` is a hint (the decode workers pass TemporalFilter.fine_flow as they see it):
    `TemporalFilter.blend` recomputes, in order, a motion of the other kind, so the output never
    depends on how far the decode workers ran ahead, and in the steady state one flow is computed."""
    return _motion(_flow_gray(previous), _flow_gray(current), fine)


def _motion(before: np.ndarray, now: np.ndarray, fine: bool) -> Motion:
    dis = _dis(fine)
    back = dis.calc(now, before, None)
    forward = dis.calc(before, now, None)
    where = pixel_grid(*now.shape) + back
    residual = now.astype(np.float32) - warp(before.astype(np.float32), where)
    photometric = np.exp(residual * residual * np.float32(-0.5 / PHOTOMETRIC_SIGMA ** 2))
    photometric *= round_trip_agrees(back, warp(forward, where)) & inside_frame(where)
    # Rejected regions (occlusions, cuts' edges) grow by a pixel and get soft edges: no seams.
    confidence = cv2.GaussianBlur(cv2.erode(photometric, np.ones((3, 3), np.uint8)), (5, 5), 0)
    sure = confidence > SURE_CONFIDENCE
    input_change = float(np.mean(residual[sure] ** 2)) if sure.any() else float("nan")
    return Motion(back, confidence, cv2.GaussianBlur(photometric, (5, 5), 0), input_change, (before, now), fine)


def _dis(fine: bool) -> cv2.DISOpticalFlow:
    per_thread = getattr(_threads, "dis", None)
    if per_thread is None:
        per_thread = _threads.dis = {}
    if fine not in per_thread:
        per_thread[fine] = cv2.DISOpticalFlow_create(FLOW_PRESET)
        if fine:
            per_thread[fine].setFinestScale(FINE_FLOW_FINEST_SCALE)
    return per_thread[fine]


def _flow_gray(bgr: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    if max(h, w) <= FLOW_SIDE:
        return gray
    scale = FLOW_SIDE / max(h, w)
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def squared_length(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] * flow[..., 0] + flow[..., 1] * flow[..., 1]


def round_trip_agrees(flow: np.ndarray, reverse_there: np.ndarray) -> np.ndarray:
    """Ruder et al.'s forward-backward test, per pixel: following `flow`, then the reverse flow
    sampled where it lands, comes back to the start."""
    error = squared_length(flow + reverse_there)
    return error <= _ROUND_TRIP_RELATIVE * (squared_length(flow) + squared_length(reverse_there)) \
        + _ROUND_TRIP_ABSOLUTE


def inside_frame(where: np.ndarray) -> np.ndarray:
    """Pixels whose sampling position (HxWx2 x, y) lies inside the frame."""
    h, w = where.shape[:2]
    x, y = where[..., 0], where[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


@lru_cache(maxsize=8)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """HxWx2 float32 (x, y) of every pixel: add a flow to get cv2.remap's map (read-only, shared)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, where: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """image sampled at `where` (HxWx2 absolute x, y), bilinear by default, edges replicated."""
    return cv2.remap(image, where, None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def flow_to_size(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """A flow field resized to height x width, its vectors scaled with it."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    resized = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    resized *= np.array([width / w, height / h], np.float32)
    return resized


class TemporalFilter:
    """The recursion O_t = P_t + a c (warp(O_{t-1}) - P_t), fed translated frames in order."""

    def __init__(self, strength: float = DEFAULT_STRENGTH):
        if not 0 < strength <= MAX_STRENGTH:
            raise TemporalError(f"--temporal-strength {strength}: give a value above 0 and at most {MAX_STRENGTH} "
                                f"(default {DEFAULT_STRENGTH}; higher is steadier)")
        self.strength = strength
        self.frames = 0
        self.cuts: list[int] = []           # frames where the recursion restarted at a scene cut
        self.flicker_index: float | None = None   # running: the model's output change over its input's
        self._confidence_sum = 0.0
        self._previous: np.ndarray | None = None   # O_{t-1}, float32: no rounding drift between frames
        self._translated: np.ndarray | None = None  # P_{t-1}: what the model alone made of the last frame

    def blend(self, translated: np.ndarray, motion: Motion | None, frame: int | None = None) -> np.ndarray:
        """O_t for the uint8 frame P_t; `motion` from the input frame before (None: the first frame).
        `frame` is P_t's number in the input, as the summary names cuts (default: the frames blended
        so far; a resumed video's first frame is not the input's)."""
        index = self.frames if frame is None else frame
        self.frames += 1
        if motion is not None:
            motion = motion.at(self.fine_flow)
            self._confidence_sum += float(motion.confidence.mean())
            if motion.cut:
                self.cuts.append(index)
        fresh = translated.astype(np.float32)
        previous_translated, self._translated = self._translated, fresh
        if motion is None or motion.cut or self._previous is None or self._previous.shape != translated.shape:
            self._previous = fresh
            return translated
        h, w = translated.shape[:2]
        where = pixel_grid(h, w) + flow_to_size(motion.back, h, w)
        self._measure_flicker(fresh, previous_translated, where, motion)
        smoothed = self._blended(fresh, where, motion)
        self._previous = smoothed
        return np.clip(np.rint(smoothed), 0, 255).astype(np.uint8)

    def _measure_flicker(self, translated: np.ndarray, previous: np.ndarray, where: np.ndarray,
                         motion: Motion) -> None:
        """Update the flicker index: how much more the model's output changed than its input, on the
        pixels whose flow is sure (the +1 level^2 keeps a still, noiseless input from dividing by 0)."""
        h, w = translated.shape[:2]
        sure = cv2.resize((motion.confidence > SURE_CONFIDENCE).astype(np.uint8), (w, h),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
        if not sure.any() or np.isnan(motion.input_change):
            return
        change = np.square(translated - warp(previous, where)).mean(axis=2)
        ratio = float(change[sure].mean()) / (motion.input_change + 1.0)
        index = self.flicker_index
        self.flicker_index = ratio if index is None else index + INDEX_SMOOTHING * (ratio - index)

    @property
    def relaxed(self) -> float:
        """How far the confidence test is relaxed for this model, 0 (strict) to 1 (no erosion)."""
        if self.flicker_index is None:
            return 0.0
        return float(np.clip((self.flicker_index - RELAX_FROM) / (RELAX_FULLY_AT - RELAX_FROM), 0, 1))

    @property
    def fine_flow(self) -> bool:
        """Whether the next frame's motion should come from the fine flow: for a model that flickers."""
        return self.relaxed > 0

    def _blended(self, translated: np.ndarray, where: np.ndarray, motion: Motion) -> np.ndarray:
        h, w = translated.shape[:2]
        relaxed = self.relaxed
        confidence = motion.confidence + relaxed * (motion.loose - motion.confidence) if relaxed else motion.confidence
        confidence = cv2.resize(confidence, (w, h), interpolation=cv2.INTER_LINEAR)
        # Bicubic: the recursion re-warps its own memory every frame, and bilinear resampling
        # blurs it a little each time (a variance of up to 1/4 px^2 per axis per warp).
        warped = warp(self._previous, where, cv2.INTER_CUBIC)
        weight = (confidence * np.float32(self.strength))[..., None]
        return translated + weight * (warped - translated)

    def summary(self) -> str:
        """One line for the job's notes: what the filter did."""
        pairs = self.frames - 1
        trusted = f"; flow trusted on {100 * self._confidence_sum / pairs:.0f}% of the pixels" if pairs > 0 else ""
        if self.flicker_index is not None:
            trusted += (f"; the model's flicker index {self.flicker_index:.3g} (about 1 where it does not flicker), "
                        f"confidence test relaxed {self.relaxed:.0%}")
        cuts = (f"; restarted at {len(self.cuts)} scene cut(s) (frame {', '.join(map(str, self.cuts[:5]))}"
                f"{', ...' if len(self.cuts) > 5 else ''})") if self.cuts else ""
        return f"temporal filter: strength {self.strength}{trusted}{cuts}"
