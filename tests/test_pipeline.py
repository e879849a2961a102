"""The threaded pipeline on real files with the exported tiny model (ONNX Runtime)."""
from __future__ import annotations

import os
import signal
import subprocess
import tracemalloc

import cv2
import numpy as np
import pytest

from nicegan.runtime.backends import open_backend
from nicegan.runtime.pipeline import TranslateOptions, translate
from nicegan.runtime.sinks import SinkError, find_ffmpeg
from runtime_fixtures import (corrupt_mjpeg_frame, distinct_frames, output_files, photo, read_clip, stopped_at_call,
                              truncate, write_clip)

QUIET = dict(progress=False)


@pytest.fixture(scope="module")
def backend(tiny_onnx):
    with open_backend(tiny_onnx) as opened:
        yield opened


def quiet(line: str) -> None:
    pass


def test_video_frames_stay_in_order_under_batching(backend, tmp_path):
    """Batch 4 over 11 distinct frames (last batch partial): output frame i is frame i translated."""
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(11))
    inputs, _ = read_clip(clip)                        # what the decoder sees (MJPG is lossy)
    report = translate(str(clip), str(tmp_path / "frames"), backend,
                       TranslateOptions(batch_size=4, **QUIET), log=quiet)
    assert report.ok and report.written == 11
    outputs = [cv2.imread(str(p)) for p in output_files(tmp_path / "frames")]
    assert [p.name for p in output_files(tmp_path / "frames")][:2] == ["clip_000000.png", "clip_000001.png"]
    expected = [backend.infer(frame[None])[0] for frame in inputs]   # one frame at a time
    for i, out in enumerate(outputs):
        distances = [np.abs(out.astype(int) - e).mean() for e in expected]
        assert int(np.argmin(distances)) == i and distances[i] < 0.01


def test_video_output_keeps_frame_count_fps_and_size(backend, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(7, 50, 70), fps=15)
    out = tmp_path / "out.mp4"
    report = translate(str(clip), str(out), backend, TranslateOptions(batch_size=3, **QUIET), log=quiet)
    frames, fps = read_clip(out)
    assert report.ok and len(frames) == 7 and fps == pytest.approx(15) and frames[0].shape == (50, 70, 3)
    assert [p.name for p in output_files(tmp_path)] == ["clip.mp4", "out.mp4"]


def test_compare_video_is_twice_as_wide_with_the_input_on_the_left(backend, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(3))
    report = translate(str(clip), None, backend, TranslateOptions(compare=True, **QUIET), log=quiet)
    frames, _ = read_clip(tmp_path / "clip_compare.avi")
    inputs, _ = read_clip(clip)
    assert report.ok and len(frames) == 3 and frames[0].shape == (48, 128, 3)
    assert np.abs(frames[1][:, :64].astype(int) - inputs[1]).mean() < 4      # MJPG re-encoding only
    assert np.abs(frames[1][:, 64:].astype(int) - inputs[1]).mean() > 10     # the translated half


def test_a_corrupt_frame_does_not_end_the_video(backend, tmp_path):
    clip = corrupt_mjpeg_frame(write_clip(tmp_path / "clip.avi", distinct_frames(8)), 3)
    report = translate(str(clip), str(tmp_path / "out.avi"), backend, TranslateOptions(**QUIET), log=quiet)
    assert report.written == 8 and len(read_clip(tmp_path / "out.avi")[0]) == 8
    assert any("frame 3 unreadable" in note for note in report.notes)


@pytest.fixture
def mixed_folder(tmp_path):
    """Real photos of many sizes and pixel formats, nested, plus broken files."""
    root = tmp_path / "in"
    (root / "nested").mkdir(parents=True)
    images = {
        "wide.jpg": photo("chelsea", 40, 90),
        "nested/odd.png": photo("coffee", 37, 51),
        "gray.png": photo("coffee", 30, 30)[:, :, 1].copy(),
        "alpha.png": np.dstack([photo("rocket", 28, 36), np.tile(np.arange(36, dtype=np.uint8) * 7, (28, 1))]),
        "deep.png": photo("astronaut", 33, 29).astype(np.uint16) * 257,
        "tiny.png": photo("astronaut", 5, 7),
        "nested/same_a.png": photo("chelsea", 44, 44),
        "nested/same_b.png": photo("rocket", 44, 44),
    }
    for name, image in images.items():
        assert cv2.imwrite(str(root / name), image)
    cv2.imwrite(str(root / "cut.png"), photo("coffee", 64, 64))
    truncate(root / "cut.png")
    cv2.imwrite(str(root / "cut.jpg"), photo("coffee", 64, 64))
    truncate(root / "cut.jpg")
    (root / "nested" / "junk.jpg").write_bytes(b"definitely not a jpeg")
    return root, images


def test_any_size_and_pixel_format_comes_back_with_its_own_shape(backend, mixed_folder, tmp_path):
    root, images = mixed_folder
    report = translate(str(root), str(tmp_path / "out"), backend, TranslateOptions(batch_size=2, **QUIET), log=quiet)
    assert report.written == len(images) and len(report.failed) == 3 and not report.ok
    assert sorted(f.split(":")[0].rsplit("/", 1)[-1] for f in report.failed) == ["cut.jpg", "cut.png", "junk.jpg"]
    for name, image in images.items():
        out = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert out.shape == image.shape and out.dtype == image.dtype, name
    alpha = cv2.imread(str(tmp_path / "out" / "alpha.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(alpha[:, :, 3], images["alpha.png"][:, :, 3])
    assert np.abs(alpha[:, :, :3].astype(int) - images["alpha.png"][:, :, :3]).mean() > 5
    deep = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert np.all(deep % 257 == 0)                       # 8-bit model output, scaled to 16 bits
    expected = backend.infer(np.stack([images["nested/same_a.png"][:, :, :3]]))[0][:, :, :3]
    written = cv2.imread(str(tmp_path / "out" / "nested" / "same_a.png"))
    assert np.abs(written.astype(int) - expected).max() <= 1   # 44 -> padded 44: batch of two equals alone


def test_compare_images_are_twice_as_wide(backend, mixed_folder, tmp_path):
    root, images = mixed_folder
    translate(str(root), str(tmp_path / "cmp"), backend,
              TranslateOptions(compare=True, suffix="_cmp", ext="png", **QUIET), log=quiet)
    out = cv2.imread(str(tmp_path / "cmp" / "wide_cmp.png"))
    assert out.shape == (40, 180, 3)
    assert np.array_equal(out[:, :90], cv2.imread(str(root / "wide.jpg")))
    assert cv2.imread(str(tmp_path / "cmp" / "gray_cmp.png"), cv2.IMREAD_UNCHANGED).shape == (30, 60)


def test_rerun_skips_finished_outputs_and_overwrite_redoes_them(backend, mixed_folder, tmp_path):
    root, images = mixed_folder
    out = tmp_path / "out"
    translate(str(root), str(out), backend, TranslateOptions(**QUIET), log=quiet)
    (out / "gray.png").unlink()
    stamp = os.stat(out / "wide.jpg").st_mtime_ns
    again = translate(str(root), str(out), backend, TranslateOptions(**QUIET), log=quiet)
    assert again.written == 1 and again.skipped == len(images) - 1
    assert os.stat(out / "wide.jpg").st_mtime_ns == stamp
    redo = translate(str(root), str(out), backend, TranslateOptions(overwrite=True, **QUIET), log=quiet)
    assert redo.written == len(images) and redo.skipped == 0
    assert not [p for p in output_files(out) if p.name.startswith(".")]
    assert sorted(p.name for p in output_files(root)) == sorted(
        ["cut.jpg", "cut.png", "junk.jpg"] + [n.rsplit("/", 1)[-1] for n in images])   # inputs untouched


def test_max_size_runs_smaller_and_restores_the_size(backend, tmp_path):
    cv2.imwrite(str(tmp_path / "big.png"), photo("astronaut", 300, 400))
    report = translate(str(tmp_path / "big.png"), str(tmp_path / "small_run.png"), backend,
                       TranslateOptions(max_size=64, **QUIET), log=quiet)
    assert report.ok and cv2.imread(str(tmp_path / "small_run.png")).shape == (300, 400, 3)


@pytest.mark.parametrize("signum, name, status", [(signal.SIGINT, "Ctrl-C", 130), (signal.SIGTERM, "SIGTERM", 143)])
def test_ctrl_c_or_sigterm_stops_after_the_current_batch_and_closes_the_video(tiny_onnx, tmp_path, signum, name,
                                                                              status):
    """A real SIGINT (or SIGTERM, SLURM's and Kubernetes' stop) during the second batch: that batch
    is still written, nothing after it."""
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(20))
    lines: list[str] = []
    report = translate(str(clip), str(tmp_path / "out.avi"), stopped_at_call(tiny_onnx, 2, signum),
                       TranslateOptions(batch_size=3, **QUIET), log=lines.append)
    assert report.interrupted and not report.ok and report.written == 6 and report.exit_status == status
    assert not (tmp_path / "out.avi").exists()
    assert len(read_clip(tmp_path / "out.partial.avi")[0]) == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handlers restored
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert f"{name}: finishing the current batch and closing the output (a second Ctrl-C or SIGTERM aborts)" in lines
    # one story: what was kept, and what a rerun does (the tests below)
    said = [line for line in lines if "interrupt" in line.lower() or "partial" in line or "resume" in line]
    assert len(said) == 1 and said[0].startswith(f"interrupted: 6 of 20 frames kept in {tmp_path / 'out.partial.avi'}; "
                                                 "rerunning the same command ")


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable (pip install imageio-ffmpeg)")
@pytest.mark.parametrize("codec", [None, "h264"])
def test_an_interrupted_video_resumes_after_its_kept_frames(tiny_onnx, backend, tmp_path, codec):
    """Stopped twice, at frames 6 and 12 of 20: each rerun translates only the frames after the
    kept ones and joins them without re-encoding (the kept frames decode as they were)."""
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(20))
    folder = tmp_path / "it's here"   # a quote and a space in the joined parts' paths
    out, partial = folder / "out.mp4", folder / "out.partial.mp4"
    options = TranslateOptions(batch_size=3, codec=codec, **QUIET)
    first = translate(str(clip), str(out), stopped_at_call(tiny_onnx, 2), options, log=quiet)
    assert first.interrupted and first.interrupted_line.endswith("rerunning the same command resumes after them")
    kept_first = read_clip(partial)[0]

    lines: list[str] = []
    second = translate(str(clip), str(out), stopped_at_call(tiny_onnx, 2), options, log=lines.append)
    assert lines[0] == f"note: {partial}: resuming after the 6 frames an interrupted run kept (joined without re-encoding)"
    assert second.interrupted and second.written == 6 and second.skipped == 6 and not out.exists()
    kept_second = read_clip(partial)[0]
    assert len(kept_second) == 12
    assert all(np.array_equal(a, b) for a, b in zip(kept_first, kept_second[:6]))

    third = translate(str(clip), str(out), backend, options, log=quiet)
    assert third.ok and third.written == 8 and third.skipped == 12 and not partial.exists()
    resumed, fps = read_clip(out)
    assert len(resumed) == 20 and fps == pytest.approx(12.0)
    assert all(np.array_equal(a, b) for a, b in zip(kept_second, resumed[:12]))
    whole = translate(str(clip), str(tmp_path / "whole.mp4"), backend, options, log=quiet)
    assert whole.ok
    # the same frames as an uninterrupted run, each encoded from another key frame: the closest to its own
    uninterrupted = read_clip(tmp_path / "whole.mp4")[0]
    closest = [max(range(20), key=lambda j: cv2.PSNR(frame, uninterrupted[j])) for frame in resumed]
    assert closest == list(range(20))


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable (pip install imageio-ffmpeg)")
def test_a_video_stopped_during_its_last_batch_is_finished_by_the_rerun(tiny_onnx, backend, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(8))
    out, partial = tmp_path / "out.avi", tmp_path / "out.partial.avi"
    options = TranslateOptions(batch_size=4, **QUIET)
    assert translate(str(clip), str(out), stopped_at_call(tiny_onnx, 2), options, log=quiet).interrupted
    kept = read_clip(partial)[0]
    rerun = translate(str(clip), str(out), backend, options, log=quiet)
    assert rerun.ok and rerun.written == 0 and rerun.skipped == 8 and not partial.exists()
    assert all(np.array_equal(a, b) for a, b in zip(read_clip(out)[0], kept)) and len(kept) == 8


def test_without_ffmpeg_an_interrupted_video_is_translated_again(tiny_onnx, backend, tmp_path, monkeypatch):
    monkeypatch.setattr("nicegan.runtime.sinks.find_ffmpeg", lambda: None)
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(20))
    out, partial = tmp_path / "out.avi", tmp_path / "out.partial.avi"
    first = translate(str(clip), str(out), stopped_at_call(tiny_onnx, 2), TranslateOptions(batch_size=3, **QUIET),
                      log=quiet)
    assert first.interrupted_line == (f"interrupted: 6 of 20 frames kept in {partial}; rerunning the same command "
                                      "translates the video again from its first frame (with ffmpeg it would resume "
                                      "after them)")
    lines: list[str] = []
    rerun = translate(str(clip), str(out), backend, TranslateOptions(batch_size=3, **QUIET), log=lines.append)
    assert rerun.ok and rerun.written == 20 and len(read_clip(out)[0]) == 20
    assert lines[0] == (f"note: {partial} is left from an interrupted run: translating the video again from its "
                        "first frame (the file is replaced when this run ends; with ffmpeg, e.g. pip install "
                        "imageio-ffmpeg, a rerun resumes where it stopped)")
    assert not partial.exists()   # superseded by the complete video


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable (pip install imageio-ffmpeg)")
def test_kept_frames_of_another_codec_or_size_are_not_joined(tiny_onnx, backend, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(20))
    out, partial = tmp_path / "out.avi", tmp_path / "out.partial.avi"
    write_clip(partial, distinct_frames(5), fourcc="MJPG")          # not this run's XVID: translated again
    lines: list[str] = []
    again = translate(str(clip), str(out), backend, TranslateOptions(**QUIET), log=lines.append)
    assert again.ok and again.written == 20 and len(read_clip(out)[0]) == 20 and not partial.exists()
    assert lines[0].startswith(f"note: {partial} is left from an interrupted run: translating the video again")
    assert "its frames are not XVID video that this run can join" in lines[0]

    out.unlink()
    write_clip(partial, distinct_frames(5, 24, 32), fourcc="XVID")  # another size (e.g. another --max-size)
    with pytest.raises(SinkError, match=f"{partial}: its frames are 32x24, this run's 64x48 .*remove it, or add "
                                        "--overwrite"):
        translate(str(clip), str(out), backend, TranslateOptions(**QUIET), log=quiet)
    assert len(read_clip(partial)[0]) == 5 and not out.exists()   # the kept frames stay


def test_memory_stays_flat_as_the_folder_grows(backend, tmp_path):
    """Bounded queues: 10x more images must not raise the peak of traced allocations."""
    def peak_for(count: int) -> int:
        root = tmp_path / f"in{count}"
        root.mkdir()
        base = photo("coffee", 64, 64)
        for i in range(count):
            cv2.imwrite(str(root / f"{i:04d}.png"), np.roll(base, i, axis=1))
        tracemalloc.start()
        report = translate(str(root), str(tmp_path / f"out{count}"), backend,
                           TranslateOptions(batch_size=4, **QUIET), log=quiet)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.written == count
        return peak

    small, large = peak_for(20), peak_for(200)
    print(f"peak traced memory: 20 images {small / 1e6:.2f} MB, 200 images {large / 1e6:.2f} MB")
    assert large < 2 * small          # holding every image would make it ~10x


def _clip_with_audio(path):
    import subprocess
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:v", "mpeg4", "-c:a", "aac",
                    "-shortest", str(path)], check=True)
    return path


def _has_audio(path) -> bool:
    import subprocess
    probe = subprocess.run([find_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return "Audio:" in probe.stderr


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable")
@pytest.mark.parametrize("codec", [None, "h264"])
def test_a_resumed_video_keeps_the_whole_audio_track(tiny_onnx, backend, tmp_path, codec):
    clip = _clip_with_audio(tmp_path / "talk.mp4")
    out = tmp_path / "out.mp4"
    options = TranslateOptions(batch_size=3, codec=codec, **QUIET)
    assert translate(str(clip), str(out), stopped_at_call(tiny_onnx, 2), options, log=quiet).interrupted
    assert translate(str(clip), str(out), backend, options, log=quiet).ok
    assert len(read_clip(out)[0]) == 10 and _has_audio(out)
    probe = subprocess.run([find_ffmpeg(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Duration: 00:00:01.0" in probe   # no gap: an h264 partial holds the whole audio track


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable")
@pytest.mark.parametrize("codec", [None, "h264"])
def test_audio_is_copied_with_ffmpeg(backend, tmp_path, codec):
    clip = _clip_with_audio(tmp_path / "talk.mp4")
    out = tmp_path / "out.mp4"
    report = translate(str(clip), str(out), backend, TranslateOptions(codec=codec, **QUIET), log=quiet)
    assert report.ok and _has_audio(out) and len(read_clip(out)[0]) == len(read_clip(clip)[0])
    silent = translate(str(clip), str(tmp_path / "silent.mp4"), backend,
                       TranslateOptions(codec=codec, audio="none", **QUIET), log=quiet)
    assert silent.ok and not _has_audio(tmp_path / "silent.mp4")


def test_ctrl_c_ends_a_live_stream_with_a_finished_video(tiny_onnx, tmp_path):
    """A camera has no end: Ctrl-C finishes the video under its real name (a file stands in for it)."""
    from nicegan.runtime.pipeline import run_pipeline
    from nicegan.runtime.sinks import VideoSink
    from nicegan.runtime.sources import VideoSource

    class StoppedByUser(type(open_backend(tiny_onnx))):
        calls = 0

        def infer(self, frames):
            StoppedByUser.calls += 1
            if StoppedByUser.calls == 5:
                os.kill(os.getpid(), signal.SIGINT)
            return super().infer(frames)

    clip = write_clip(tmp_path / "clip.avi", distinct_frames(30))
    camera = VideoSource("0", cv2.VideoCapture(str(clip)), path=None, live=True)
    sink = VideoSink(tmp_path / "camera.avi", camera.fps, None, overwrite=False)
    report = run_pipeline(camera, sink, StoppedByUser(tiny_onnx), TranslateOptions(batch_size=2, **QUIET), quiet)
    camera.close()
    assert report.ok and not report.interrupted and 5 <= report.written < 30
    assert len(read_clip(tmp_path / "camera.avi")[0]) == report.written


def test_mixed_sizes_are_grouped_into_full_batches(tiny_onnx, tmp_path):
    """Alternating portrait/landscape files: batches hold one shape and stay full."""
    class Recording(type(open_backend(tiny_onnx))):
        shapes: list = []

        def infer(self, frames):
            Recording.shapes.append(frames.shape)
            return super().infer(frames)

    root = tmp_path / "in"
    root.mkdir()
    for i in range(12):
        cv2.imwrite(str(root / f"{i:02d}.png"), photo("coffee", 40, 56) if i % 2 else photo("chelsea", 56, 40))
    report = translate(str(root), str(tmp_path / "out"), Recording(tiny_onnx),
                       TranslateOptions(batch_size=3, **QUIET), log=quiet)
    assert report.ok and report.written == 12
    assert sorted(s[0] for s in Recording.shapes) == [3, 3, 3, 3]
    for i in range(12):
        assert cv2.imread(str(tmp_path / "out" / f"{i:02d}.png")).shape == ((40, 56, 3) if i % 2 else (56, 40, 3))


def test_a_backend_failure_keeps_the_video_as_partial_and_raises(tiny_onnx, tmp_path):
    class FailsOnThirdBatch(type(open_backend(tiny_onnx))):
        calls = 0

        def infer(self, frames):
            FailsOnThirdBatch.calls += 1
            if FailsOnThirdBatch.calls == 3:
                raise RuntimeError("device lost")
            return super().infer(frames)

    clip = write_clip(tmp_path / "clip.avi", distinct_frames(12))
    with pytest.raises(RuntimeError, match="device lost"):
        translate(str(clip), str(tmp_path / "out.avi"), FailsOnThirdBatch(tiny_onnx),
                  TranslateOptions(batch_size=2, **QUIET), log=quiet)
    assert not (tmp_path / "out.avi").exists()
    assert len(read_clip(tmp_path / "out.partial.avi")[0]) == 4
