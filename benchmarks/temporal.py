"""`nicegan translate --temporal` on real clips: how much flicker it removes, what it costs.

For each clip and model: the per-frame translation P (the backend, frame by frame), the filter's
output O (computed in memory as the pipeline does: DIS flow on the input frames, blending in
order), the low-band-only variant, and the controls (Gaussian blur of P, sigma 1.5; a flow-less
moving average, a = 0.6; the first frame frozen), all scored by `nicegan flicker`'s code
(runtime/flicker.py: Farneback evaluation flow, occlusion mask, reference = P). Then the cost at
640x360: the filter's busy time per frame against the model's, and whole `translate` jobs with
and without --temporal (end-to-end frames/s, median of --repeats).

    python benchmarks/temporal.py --clip bikes.mp4 --clip vtest.avi      # and the bundled clip

Two models: the bundled one (ch 32, --residual: a model that hardly flickers) and the default
light NICE-GAN (ch 64) with random weights made to look trained (harness.trained_like_checkpoint),
which flickers. Nothing here asserts a figure.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from harness import (
    format_table,
    fp32_onnx,
    load_average,
    print_environment,
    trained_like_checkpoint,
    workdir,
)
from nicegan.runtime.backends import open_backend
from nicegan.runtime.demo import DEFAULT_MODEL, SAMPLE_VIDEO
from nicegan.runtime.flicker import FlickerScores, measure_flicker
from nicegan.runtime.pipeline import TranslateOptions, translate
from nicegan.runtime.temporal import DEFAULT_STRENGTH, Motion, TemporalFilter, estimate_motion

COST_SIZE = (640, 360)


class LowBandFilter(TemporalFilter):
    """The alternative the design left open: only the low band of the correction is applied, so
    fine detail always comes from P (cannot smear texture; leaves texture flicker)."""

    def _blended(self, translated: np.ndarray, where: np.ndarray, motion: Motion) -> np.ndarray:
        correction = super()._blended(translated, where, motion) - translated
        h, w = translated.shape[:2]
        small = cv2.resize(correction, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 1.25)     # sigma about the longest side / 64 at full size
        return translated + cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# --- clips and per-frame translations ------------------------------------------------------------


def read_frames(path: Path, count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    if len(frames) < 2:
        raise SystemExit(f"{path}: fewer than 2 frames readable")
    return frames


def per_frame(backend, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
    """P_t, one frame per call (the CPU default), and the seconds of each call."""
    outputs, seconds = [], []
    for frame in frames:
        began = time.perf_counter()
        outputs.append(backend.infer(frame[None])[0])
        seconds.append(time.perf_counter() - began)
    return outputs, seconds


def filtered(inputs: list[np.ndarray], translated: list[np.ndarray],
             temporal: TemporalFilter) -> tuple[list[np.ndarray], list[float], list[float]]:
    """O_t as the pipeline computes it, with the seconds of each flow and each blend."""
    out, flow_s, blend_s = [], [], []
    for i, frame in enumerate(translated):
        began = time.perf_counter()
        motion = estimate_motion(inputs[i - 1], inputs[i], fine=temporal.fine_flow) if i else None
        flowed = time.perf_counter()
        out.append(temporal.blend(frame, motion))
        if i:
            flow_s.append(flowed - began)
            blend_s.append(time.perf_counter() - flowed)
    return out, flow_s, blend_s


def moving_average(frames: list[np.ndarray], a: float = 0.6) -> list[np.ndarray]:
    state, out = frames[0].astype(np.float32), [frames[0]]
    for frame in frames[1:]:
        state = a * state + (1 - a) * frame
        out.append(np.clip(np.rint(state), 0, 255).astype(np.uint8))
    return out


# --- quality -------------------------------------------------------------------------------------


def quality_rows(clip: str, model: str, inputs: list[np.ndarray], translated: list[np.ndarray],
                 strengths: list[float]) -> tuple[list[list[object]], dict[str, FlickerScores], dict[str, float], list[int]]:
    """The table rows of one clip and model, the scores by video name, the filters' ms per frame and
    the frames whose pair E_warp left out as a scene cut."""
    videos: dict[str, list[np.ndarray]] = {"per-frame P": translated}
    cost: dict[str, float] = {}
    variants = [(f"temporal a={a}", TemporalFilter(a)) for a in strengths]
    variants.append((f"low band only a={DEFAULT_STRENGTH}", LowBandFilter(DEFAULT_STRENGTH)))
    for name, temporal in variants:
        videos[name], flow_s, blend_s = filtered(inputs, translated, temporal)
        cost[name] = 1e3 * (statistics.median(flow_s) + statistics.median(blend_s))
    videos["control: blur sigma 1.5"] = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in translated]
    videos["control: moving average a=0.6"] = moving_average(translated)
    videos["control: frozen first frame"] = [translated[0]] * len(translated)
    result = measure_flicker(zip(inputs, *videos.values()), ["input", *videos], reference=1)
    table = [[clip, model, row.name, row.e_warp, _or_dash(row.flicker_left), _or_dash(row.psnr),
              _or_dash(row.psnr_moving), _or_dash(row.sharpness), _or_dash(cost.get(row.name))]
             for row in result.rows]
    return table, {row.name: row for row in result.rows}, cost, result.cuts


def _or_dash(value: float | None) -> object:
    return "-" if value is None else value


# --- cost at 640x360 -----------------------------------------------------------------------------


def filter_cost(backend, frames: list[np.ndarray]) -> tuple[float, float, float]:
    """Median ms per frame of inference, flow and blend, each run alone, one after the other."""
    translated, infer_s = per_frame(backend, frames)
    _, flow_s, blend_s = filtered(frames, translated, TemporalFilter())
    return (1e3 * statistics.median(infer_s[1:]), 1e3 * statistics.median(flow_s),
            1e3 * statistics.median(blend_s))


def job_fps(model: Path, clip: Path, out: Path, repeats: int) -> tuple[float, float, str]:
    """Median end-to-end frames/s of `translate` without and with --temporal (runs interleaved, the
    model opened once), and the throughput line of the last run with it."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    line = ""
    with open_backend(str(model)) as backend:
        for _ in range(repeats):
            for temporal in (False, True):
                report = translate(str(clip), str(out), backend, log=lambda _: None,
                                   options=TranslateOptions(temporal=temporal, overwrite=True, progress=False))
                rates[temporal].append(report.written / report.wall_s)
                line = report.throughput_line()
    return statistics.median(rates[False]), statistics.median(rates[True]), line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", action="append", default=[], type=Path, help="A real clip (besides the bundled one).")
    parser.add_argument("--frames", type=int, default=48, help="Frames of each clip.")
    parser.add_argument("--strength", action="append", type=float, default=None,
                        help=f"More filter strengths to measure (besides the default {DEFAULT_STRENGTH}).")
    parser.add_argument("--cost-clip", type=Path, default=None,
                        help="Clip resized to 640x360 for the cost [default: the first --clip, else the bundled one].")
    parser.add_argument("--cost-frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="Whole translate jobs per variant (median).")
    parser.add_argument("--skip-quality", action="store_true", help="Only the cost (e.g. again on a quieter machine).")
    parser.add_argument("--workdir", default=None, help="Where the ch-64 model is built and reused.")
    args = parser.parse_args()
    print_environment("temporal filter: flicker, fidelity and cost on real clips")
    folder = workdir(args.workdir)
    models = {"bundled ch32": DEFAULT_MODEL, "random ch64": fp32_onnx(trained_like_checkpoint(folder), folder)}
    if not args.skip_quality:
        quality_section(models, [SAMPLE_VIDEO, *args.clip], args.frames,
                        sorted(set(args.strength or []) | {DEFAULT_STRENGTH}))
    cost_section(models, args.cost_clip or (args.clip[0] if args.clip else SAMPLE_VIDEO), args.cost_frames,
                 args.repeats, folder)


def quality_section(models: dict[str, Path], clips: list[Path], frames: int, strengths: list[float]) -> None:
    headers = ["clip", "model", "video", "E_warp", "flicker left", "PSNR vs P dB", "PSNR moving dB",
               "sharpness vs P", "filter ms/frame"]
    table, targets, cut_notes = [], [], []
    for name, path in models.items():
        with open_backend(str(path)) as backend:
            print(f"   {name}: {backend.name} on {backend.device}", flush=True)
            for clip in clips:
                inputs = read_frames(clip, frames)
                translated, infer_s = per_frame(backend, inputs)
                rows, scores, cost, cuts = quality_rows(clip.name, name, inputs, translated, strengths)
                table += rows
                if cuts:
                    cut_notes.append(f"{clip.name}, {name}: pair before frame {', '.join(map(str, cuts))}")
                targets.append(_target_row(clip.name, name, inputs[0].shape, scores, cost,
                                           1e3 * statistics.median(infer_s[1:])))
    print(f"\n### Flicker and fidelity ({frames} frames per clip; load {load_average()})\n")
    print(format_table(headers, table))
    if cut_notes:
        print(f"\nE_warp left out as scene cuts: {'; '.join(cut_notes)}")
    print("\n### Targets\n")
    print(format_table(["clip", "model", "size", "E_warp P", f"E_warp O (a={DEFAULT_STRENGTH})", "O / P",
                        "PSNR O vs P dB", "PSNR moving dB", "filter ms/frame", "infer ms/frame", "filter / infer"],
                       targets))


def cost_section(models: dict[str, Path], clip: Path, count: int, repeats: int, folder: Path) -> None:
    frames = read_frames(clip, count, COST_SIZE)
    clip_640 = folder / "temporal_cost_640x360.mp4"
    writer = cv2.VideoWriter(str(clip_640), cv2.VideoWriter_fourcc(*"mp4v"), 25, COST_SIZE)
    for frame in frames:
        writer.write(frame)
    writer.release()
    cost_rows, job_rows = [], []
    for name, path in models.items():
        with open_backend(str(path)) as backend:
            infer_ms, flow_ms, blend_ms = filter_cost(backend, frames)
        cost_rows.append([name, infer_ms, flow_ms, blend_ms, f"{100 * (flow_ms + blend_ms) / infer_ms:.1f}%"])
        plain, steady, steady_line = job_fps(path, clip_640, folder / "temporal_cost_out.mp4", repeats)
        job_rows.append([name, plain, steady, f"{100 * (1 - steady / plain):.1f}%", steady_line])
    print(f"\n### Cost at 640x360 ({clip.name} resized, {len(frames)} frames; load {load_average()})\n")
    print(format_table(["model", "infer ms/frame", "flow ms/frame", "blend ms/frame", "filter / infer"], cost_rows))
    print()
    print(format_table(["model", "translate fps", "with --temporal fps", "cost", "throughput line with --temporal"],
                       job_rows))
    print(f"\n   load average after: {load_average()}")


def _target_row(clip: str, model: str, shape: tuple[int, ...], scores: dict[str, FlickerScores],
                cost: dict[str, float], infer_ms: float) -> list[object]:
    name = f"temporal a={DEFAULT_STRENGTH}"
    p, o = scores["per-frame P"], scores[name]
    return [clip, model, f"{shape[1]}x{shape[0]}", p.e_warp, o.e_warp, f"{o.e_warp / p.e_warp:.2f}",
            o.psnr, _or_dash(o.psnr_moving), cost[name], infer_ms, f"{100 * cost[name] / infer_ms:.1f}%"]


if __name__ == "__main__":
    main()
