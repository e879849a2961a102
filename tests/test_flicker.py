"""`nicegan flicker`: the warping error and its companions on real clips, and its one-line errors."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.runtime.flicker import FlickerError, measure_flicker, measure_videos
from runtime_fixtures import bundled_clip_frames, camera_pan, photo, write_clip


def lifted(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Levels squeezed into 20..234, so that adding +-10 never clips."""
    return [np.rint(20 + f * 0.84).astype(np.uint8) for f in frames]


@pytest.mark.parametrize("clip", [lambda: camera_pan(16), lambda: bundled_clip_frames(16)], ids=["pan", "bunny"])
def test_an_alternating_offset_adds_four_times_its_square(clip):
    """V_t = I_t +- d alternately: every warped difference gains 2d, so E_warp(V) = E_warp(I) + 4 d^2
    (in squared levels), whatever the flow's own error."""
    inputs = lifted(clip())
    d = 5
    offset = [np.clip(f.astype(int) + (d if t % 2 else -d), 0, 255).astype(np.uint8) for t, f in enumerate(inputs)]
    rows = measure_flicker(zip(inputs, inputs, offset), ["input", "same", "offset"], reference=1).rows
    floor, same, flickering = (row.e_warp for row in rows)
    assert same == pytest.approx(floor)
    assert flickering - floor == pytest.approx(4 * d * d, rel=0.1)
    assert floor < 0.5 * 4 * d * d


def test_psnr_and_sharpness_are_against_the_reference():
    inputs = lifted(camera_pan(8))
    brighter = [f + np.uint8(3) for f in inputs]
    blurred = [cv2.GaussianBlur(f, (0, 0), 2) for f in inputs]
    names = ["input", "ref", "brighter", "blurred"]
    rows = measure_flicker(zip(inputs, inputs, brighter, blurred), names, reference=1).rows
    _, ref, bright, blur = rows
    assert ref.psnr == math.inf and ref.sharpness == 1
    assert ref.flicker_left is None          # the reference is the input: no flicker above the floor to share
    assert bright.psnr == pytest.approx(20 * math.log10(255 / 3), abs=1e-6)
    assert bright.psnr_moving == pytest.approx(bright.psnr, abs=1e-6)     # a constant offset, moving or not
    assert bright.sharpness == pytest.approx(1.0, abs=1e-6)
    assert blur.sharpness < 0.5 and blur.psnr < 35


def test_pairs_across_a_scene_cut_are_left_out():
    """Across a cut the input's flow means nothing: that pair would swamp every E_warp."""
    inputs = camera_pan(8) + bundled_clip_frames(8)
    offset = [np.clip(f.astype(int) + (4 if t % 2 else -4), 0, 255).astype(np.uint8) for t, f in enumerate(inputs)]
    result = measure_flicker(zip(inputs, offset), ["input", "offset"])
    assert result.cuts == [8] and result.pairs == 14
    floor, flickering = (row.e_warp for row in result.rows)
    assert floor < 30 and flickering - floor == pytest.approx(4 * 4 * 4, rel=0.25)


def test_the_command_prints_one_row_per_video(tmp_path):
    frames = camera_pan(10, 90, 160)
    clip = write_clip(tmp_path / "clip.avi", frames)
    first = write_clip(tmp_path / "first.avi", [cv2.GaussianBlur(f, (0, 0), 1) for f in frames])
    second = write_clip(tmp_path / "second.avi", frames[::-1])
    result = CliRunner().invoke(cli, ["flicker", str(clip), str(first), str(second)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if "avi" in line.split()[0]}
    assert rows[str(clip)][1] == "(input)" and rows[str(first)][1] == "(reference)"
    e_clip, e_first, e_second = (float(rows[str(path)][-5]) for path in (clip, first, second))
    assert e_second > 10 * max(e_clip, e_first)      # played backwards: nothing follows the input's flow
    report = measure_videos(str(clip), [str(first), str(second)], reference=str(second))
    assert report.reference == str(second) and report.frames == 10 and report.size == (160, 90)
    assert report.result.rows[2].psnr == math.inf and report.result.pairs == 9 and not report.result.cuts


def test_videos_that_cannot_be_compared_are_refused_in_one_line(tmp_path):
    frames = camera_pan(6, 48, 64)
    clip = write_clip(tmp_path / "clip.avi", frames)
    shorter = write_clip(tmp_path / "short.avi", frames[:4])
    wider = write_clip(tmp_path / "wide.avi", [np.hstack([f, f]) for f in frames])
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), photo("coffee", 48, 64))
    cases = {str(shorter): "short.avi has 4 frames", str(wider): "wide.avi is 128x48",
             str(image): "still.png: not a video file", str(tmp_path / "none.mp4"): "input not found"}
    for output, message in cases.items():
        result = CliRunner().invoke(cli, ["flicker", str(clip), output])
        assert result.exit_code == 1 and message in result.output, (output, result.output)
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    with pytest.raises(FlickerError, match="needs at least 2"):
        measure_videos(str(write_clip(tmp_path / "one.avi", frames[:1])), [str(tmp_path / "one.avi")])
