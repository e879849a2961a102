"""`--temporal`: the flow-guided blending filter (runtime/temporal.py) on real frames.

The main gate is synthetic flicker on real clips: a clean video C (the input itself), a per-frame
"translation" P that flickers (random per-frame gain, offset and smooth field, as per-frame
normalisation does), and the filter's output O. The evaluation uses the Farneback flow of
`nicegan flicker`, not the filter's DIS flow. A controls test proves that the gate's thresholds
reject a no-op, a blur, a flow-less moving average and a frozen frame.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from nicegan.cli import TEMPORAL_STRENGTH, cli
from nicegan.runtime.backends import open_backend
from nicegan.runtime.flicker import measure_flicker, measure_videos, psnr
from nicegan.runtime.pipeline import TranslateOptions, translate
from nicegan.runtime.sinks import find_ffmpeg
from nicegan.runtime.temporal import (
    DEFAULT_STRENGTH,
    RELAX_FROM,
    RELAX_FULLY_AT,
    TemporalError,
    TemporalFilter,
    estimate_motion,
    pixel_grid,
    warp,
)
from runtime_fixtures import bundled_clip_frames, camera_pan, output_files, photo, read_clip, stopped_at_call, write_clip

CLIPS = {"bunny": lambda: bundled_clip_frames(24), "pan": lambda: camera_pan(24)}
CONTROLS = ("no-op", "blur", "moving average", "frozen")


def flickered(frames: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Per-frame tone flicker: per-channel gain N(1, 0.06) and offset N(0, 6 levels), plus a
    random smooth field of +-8 levels."""
    rng = np.random.default_rng(seed)
    h, w = frames[0].shape[:2]
    out = []
    for frame in frames:
        field = cv2.resize(rng.uniform(-8, 8, (3, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        changed = frame * rng.normal(1, 0.06, 3) + rng.normal(0, 6, 3) + field[..., None]
        out.append(np.clip(np.rint(changed), 0, 255).astype(np.uint8))
    return out


class StrictFilter(TemporalFilter):
    """The filter that never relaxes its confidence test, whatever the model's flicker index."""

    @property
    def relaxed(self) -> float:
        return 0.0


def smoothed(inputs: list[np.ndarray], translated: list[np.ndarray], strength: float = DEFAULT_STRENGTH,
             kind: type[TemporalFilter] = TemporalFilter) -> tuple[list[np.ndarray], TemporalFilter]:
    """What the pipeline does, frame by frame in order."""
    temporal = kind(strength)
    out = [temporal.blend(p, estimate_motion(inputs[i - 1], inputs[i]) if i else None)
           for i, p in enumerate(translated)]
    return out, temporal


def blurred(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames]


def moving_average(frames: list[np.ndarray], a: float = 0.6) -> list[np.ndarray]:
    """O_t = a O_{t-1} + (1 - a) P_t: the filter without flow."""
    state = frames[0].astype(np.float32)
    out = [frames[0]]
    for frame in frames[1:]:
        state = a * state + (1 - a) * frame
        out.append(np.clip(np.rint(state), 0, 255).astype(np.uint8))
    return out


def gate(scores: dict, name: str) -> dict[str, bool]:
    """The checks a real de-flicker must pass (scores against the clean video)."""
    out, per_frame = scores[name], scores["per-frame"]
    return {"steadier": out.e_warp <= 0.6 * per_frame.e_warp,
            "closer to the clean video": out.psnr >= per_frame.psnr + 2,
            "no ghosts where the input moved": out.psnr_moving >= per_frame.psnr_moving - 0.5,
            "as sharp": out.sharpness >= 0.85 * per_frame.sharpness}


@pytest.fixture(scope="module", params=sorted(CLIPS))
def synthetic(request):
    inputs = CLIPS[request.param]()
    translated = flickered(inputs, seed=1)
    videos = {"clean": inputs, "per-frame": translated, "temporal": smoothed(inputs, translated)[0],
              "no-op": translated, "blur": blurred(translated), "moving average": moving_average(translated),
              "frozen": [translated[0]] * len(translated)}
    rows = measure_flicker(zip(inputs, *videos.values()), ["input", *videos], reference=1).rows
    return inputs, {row.name: row for row in rows}


def test_the_clips_move(synthetic):
    """The gate's ghost check needs motion: a fair share of pixels change by more than 12 levels."""
    inputs, _ = synthetic
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(int) for f in inputs]
    assert np.mean([np.mean(np.abs(b - a) > 12) for a, b in zip(gray, gray[1:])]) > 0.05


def test_the_filter_passes_the_synthetic_flicker_gate(synthetic):
    _, scores = synthetic
    checks = gate(scores, "temporal")
    assert all(checks.values()), (checks, scores["temporal"], scores["per-frame"])


def test_each_control_fails_the_gate(synthetic):
    """The thresholds discriminate: each wrong answer fails the check made for it."""
    _, scores = synthetic
    failed = {name: {check for check, ok in gate(scores, name).items() if not ok} for name in CONTROLS}
    assert "steadier" in failed["no-op"], failed
    assert "as sharp" in failed["blur"], failed
    assert "no ghosts where the input moved" in failed["moving average"], failed
    assert "closer to the clean video" in failed["frozen"], failed


# --- building blocks ----------------------------------------------------------------------------


def test_a_known_shift_is_recovered_and_undone():
    before = photo("chelsea", 180, 320)      # fur: texture everywhere (the coffee crop is a smooth table top)
    dx, dy = 2.6, -1.4
    after = cv2.warpAffine(before, np.float32([[1, 0, dx], [0, 1, dy]]), (320, 180), flags=cv2.INTER_LINEAR)
    motion = estimate_motion(before, after)
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(np.median(motion.back[inner][..., 0]) + dx) < 0.15
    assert np.abs(np.median(motion.back[inner][..., 1]) + dy) < 0.15
    assert motion.confidence[inner].mean() > 0.8
    rebuilt = warp(before.astype(np.float32), pixel_grid(180, 320) + motion.back)
    error = np.square(rebuilt[inner] - after[inner]).sum()
    assert psnr(error, rebuilt[inner].size) > 30


def test_a_static_input_does_not_drift():
    frame = photo("astronaut", 180, 320)
    out, temporal = smoothed([frame] * 30, [frame] * 30)
    assert max(np.abs(o.astype(int) - frame).max() for o in out) <= 1
    assert not temporal.cuts


def test_a_scene_cut_restarts_the_filter():
    inputs = bundled_clip_frames(10) + camera_pan(10)
    translated = flickered(inputs, seed=2)
    out, temporal = smoothed(inputs, translated)
    assert np.array_equal(out[0], translated[0])                       # the first frame is P_0
    assert np.abs(out[9].astype(int) - translated[9]).mean() > 1       # blending before the cut...
    assert np.array_equal(out[10], translated[10]) and temporal.cuts == [10]   # ...none across it
    assert np.abs(out[11].astype(int) - translated[11]).mean() > 1     # and again after it
    assert "restarted at 1 scene cut(s) (frame 10)" in temporal.summary()


def test_the_flicker_index_tells_a_flickering_model_from_a_stable_one():
    """A model that passes its input through has an index near 1 and keeps the strict test (its
    output is what the strict filter makes); one that flickers is past RELAX_FULLY_AT and gets the
    relaxed one, which blends more of the frame (so its output differs from the strict filter's)."""
    inputs = bundled_clip_frames(16)
    stable, stable_filter = smoothed(inputs, inputs)
    assert 0.5 < stable_filter.flicker_index < RELAX_FROM and stable_filter.relaxed == 0
    assert all(np.array_equal(a, b) for a, b in zip(stable, smoothed(inputs, inputs, kind=StrictFilter)[0]))
    assert f"flicker index {stable_filter.flicker_index:.3g}" in stable_filter.summary()
    translated = flickered(inputs, seed=3)
    steadied, flicker_filter = smoothed(inputs, translated)
    strict, _ = smoothed(inputs, translated, kind=StrictFilter)
    assert flicker_filter.flicker_index > RELAX_FULLY_AT and flicker_filter.relaxed == 1
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(steadied[2:], strict[2:])]) > 0.05
    assert "confidence test relaxed 100%" in flicker_filter.summary()


def test_strength_out_of_range_is_refused():
    for strength in (0, -0.5, 0.99):
        with pytest.raises(TemporalError, match="--temporal-strength"):
            TemporalFilter(strength)
    assert TEMPORAL_STRENGTH == DEFAULT_STRENGTH       # the CLI's default, kept without an import


# --- in the pipeline and through the CLI ----------------------------------------------------------


def test_the_pipeline_blends_frames_in_order_under_batching(tiny_onnx, tmp_path):
    clip = write_clip(tmp_path / "pan.avi", camera_pan(9, 48, 64))
    inputs, _ = read_clip(clip)
    with open_backend(tiny_onnx) as backend:
        report = translate(str(clip), str(tmp_path / "frames"), backend,
                           TranslateOptions(batch_size=4, temporal=True, progress=False), log=lambda _: None)
        expected, _ = smoothed(inputs, [backend.infer(frame[None])[0] for frame in inputs])
    assert report.ok and report.written == 9 and report.stages["temporal"].frames == 9
    assert "temporal" in report.throughput_line() and f"temporal filter: strength {DEFAULT_STRENGTH}" in " ".join(report.notes)
    outputs = [cv2.imread(str(p)) for p in output_files(tmp_path / "frames")]
    for i, out in enumerate(outputs):
        distances = [np.abs(out.astype(int) - e).mean() for e in expected]
        assert int(np.argmin(distances)) == i and distances[i] < 0.05


def test_translate_temporal_keeps_the_video_and_steadies_it(tmp_path):
    """The bundled model through `nicegan translate --temporal` and `nicegan flicker`."""
    clip = write_clip(tmp_path / "bunny.mp4", bundled_clip_frames(16), fps=25)
    runner = CliRunner()
    for name, extra in (("per_frame.mp4", []), ("steady.mp4", ["--temporal"])):
        result = runner.invoke(cli, ["translate", str(clip), str(tmp_path / name), "--no-progress", *extra])
        assert result.exit_code == 0, result.output
    assert "| temporal " in result.output and f"temporal filter: strength {DEFAULT_STRENGTH}" in result.output
    per_frame, fps = read_clip(tmp_path / "per_frame.mp4")
    steady, steady_fps = read_clip(tmp_path / "steady.mp4")
    assert len(steady) == len(per_frame) == 16 and steady_fps == fps == 25
    assert steady[0].shape == per_frame[0].shape == (180, 320, 3)
    report = measure_videos(str(clip), [str(tmp_path / "per_frame.mp4"), str(tmp_path / "steady.mp4")])
    _, unsmoothed, smoothed_row = report.result.rows
    assert smoothed_row.e_warp <= unsmoothed.e_warp and smoothed_row.psnr >= 30
    printed = runner.invoke(cli, ["flicker", str(clip), str(tmp_path / "per_frame.mp4"), str(tmp_path / "steady.mp4")])
    assert printed.exit_code == 0, printed.output
    assert "bunny.mp4 (input)" in printed.output and "per_frame.mp4 (reference)" in printed.output
    assert f"{smoothed_row.e_warp:.3g}" in printed.output


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable (pip install imageio-ffmpeg)")
def test_a_resumed_video_names_its_scene_cut_by_the_input_frame(tiny_onnx, tmp_path):
    """Resumed after 6 kept frames, the filter starts afresh at frame 6 and names the cut frame 10."""
    clip = write_clip(tmp_path / "cut.avi", bundled_clip_frames(10) + camera_pan(10), fourcc="MJPG")
    options = TranslateOptions(batch_size=3, temporal=True, progress=False)
    out = tmp_path / "out.avi"
    assert translate(str(clip), str(out), stopped_at_call(tiny_onnx, 2), options, log=lambda _: None).interrupted
    with open_backend(tiny_onnx) as backend:
        resumed = translate(str(clip), str(out), backend, options, log=lambda _: None)
    assert resumed.ok and resumed.written == 14 and len(read_clip(out)[0]) == 20
    assert any("restarted at 1 scene cut(s) (frame 10)" in note for note in resumed.notes)


def test_temporal_is_refused_for_images_in_one_line(tiny_onnx, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), photo("coffee", 40, 52))
    result = CliRunner().invoke(cli, ["translate", str(root), "-m", str(tiny_onnx), "--temporal"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: --temporal needs a video, camera or stream")
    assert not (tmp_path / "photos_nicegan").exists()
    bad = CliRunner().invoke(cli, ["translate", str(write_clip(tmp_path / "c.avi", camera_pan(3, 48, 64))),
                                   "-m", str(tiny_onnx), "--temporal", "--temporal-strength", "1.5"])
    assert bad.exit_code == 1 and "--temporal-strength 1.5" in bad.output
