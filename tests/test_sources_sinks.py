"""Inputs and outputs on real files: parsing, lazy listing, corrupt files, atomic writes, video."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nicegan.common import ImageReadError, read_image
from nicegan.runtime import sinks
from nicegan.runtime.media import has_audio_track
from nicegan.runtime.sinks import SinkError, VideoSink, default_output, find_ffmpeg, open_sink, write_output_image
from nicegan.runtime.sources import ImageSource, SourceError, VideoSource, open_source
from runtime_fixtures import corrupt_mjpeg_frame, distinct_frames, output_files, photo, read_clip, truncate, write_clip


@pytest.fixture
def image_tree(tmp_path):
    root = tmp_path / "photos"
    (root / "b" / "deep").mkdir(parents=True)
    (root / ".cache").mkdir()
    cv2.imwrite(str(root / "z.png"), photo("coffee", 40, 48))
    cv2.imwrite(str(root / "a.jpg"), photo("chelsea", 40, 48))
    cv2.imwrite(str(root / "b" / "deep" / "c.png"), photo("rocket", 40, 48))
    cv2.imwrite(str(root / ".hidden.png"), photo("rocket", 8, 8))
    cv2.imwrite(str(root / ".cache" / "x.png"), photo("rocket", 8, 8))
    (root / "notes.txt").write_text("not an image")
    return root


def names(source):
    return [item.name for item in source.items()]


def test_folder_is_listed_recursively_sorted_without_hidden_files(image_tree):
    source = open_source(str(image_tree))
    assert isinstance(source, ImageSource)
    assert names(source) == ["a.jpg", "z.png", "b/deep/c.png"]
    assert source.count() == 3


def test_listing_is_lazy(image_tree):
    items = open_source(str(image_tree)).items()
    first = next(items)
    cv2.imwrite(str(image_tree / "b" / "added.png"), photo("coffee", 8, 8))  # appears after the walk started
    assert first.name == "a.jpg"
    assert [i.name for i in items] == ["z.png", "b/added.png", "b/deep/c.png"]


def test_glob_and_text_list(image_tree, tmp_path):
    # sorted, whatever order the file system lists: every node and shard sees one listing
    assert names(open_source(str(image_tree / "**" / "*.png"))) == ["b/deep/c.png", "z.png"]
    listing = image_tree / "list.txt"
    listing.write_text(f"# chosen\nz.png\n\n{image_tree / 'b' / 'deep' / 'c.png'}\nmissing.png\n")
    source = open_source(str(listing))
    assert names(source) == ["z.png", "b/deep/c.png", "missing.png"]
    decoded = list(source.frames(skip=lambda item: False))
    assert decoded[0].read().shape == (40, 48, 3)
    with pytest.raises(ImageReadError, match="missing.png"):
        decoded[2].read()


def test_single_image_and_unknown_inputs(image_tree):
    source = open_source(str(image_tree / "z.png"))
    assert source.single and names(source) == ["z.png"]
    with pytest.raises(SourceError, match="not found"):
        open_source(str(image_tree / "nope"))
    (image_tree / "data.bin").write_bytes(b"\0")
    with pytest.raises(SourceError, match="unknown input type"):
        open_source(str(image_tree / "data.bin"))


def test_gstreamer_pipeline_without_gstreamer_names_the_fix():
    if "GStreamer:                   YES" in cv2.getBuildInformation():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match="GStreamer"):
        open_source("videotestsrc num-buffers=3 ! videoconvert ! appsink")


def test_corrupt_and_truncated_images_are_errors_not_garbage(tmp_path):
    jpg, png = tmp_path / "t.jpg", tmp_path / "t.png"
    cv2.imwrite(str(jpg), photo("coffee", 64, 64))
    cv2.imwrite(str(png), photo("coffee", 64, 64))
    assert read_image(jpg).shape == (64, 64, 3)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for bad in (truncate(jpg), truncate(png), tmp_path / "junk.png", tmp_path / "empty.jpg"):
        with pytest.raises(ImageReadError, match=bad.name):
            read_image(bad)


def test_gray_alpha_and_sixteen_bit_files_are_read_unchanged(tmp_path):
    gray = photo("coffee", 20, 24)[:, :, 0].copy()
    bgra = np.dstack([photo("coffee", 20, 24), np.full((20, 24), 77, np.uint8)])
    deep = photo("coffee", 20, 24).astype(np.uint16) * 257
    for name, image in (("g.png", gray), ("a.png", bgra), ("d.png", deep)):
        cv2.imwrite(str(tmp_path / name), image)
        assert np.array_equal(read_image(tmp_path / name), image)


def test_video_source_reports_fps_count_and_frames(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(9), fps=12)
    source = open_source(str(clip))
    assert isinstance(source, VideoSource) and source.fps == pytest.approx(12) and source.count() == 9
    frames = [d.image for d in source.frames(skip=lambda item: False)]
    assert len(frames) == 9 and frames[0].shape == (48, 64, 3)
    source.close()


def test_a_corrupt_frame_mid_video_is_replaced_and_the_count_kept(tmp_path):
    clip = corrupt_mjpeg_frame(write_clip(tmp_path / "clip.avi", distinct_frames(10)), 4)
    source = open_source(str(clip))
    decoded = list(source.frames(skip=lambda item: False))
    assert [d.item.index for d in decoded] == list(range(10))
    assert np.array_equal(decoded[4].image, decoded[3].image)          # the previous good frame
    assert not np.array_equal(decoded[5].image, decoded[4].image)
    assert any("frame 4 unreadable" in note for note in source.notes)


def test_a_truncated_video_ends_with_a_note(tmp_path):
    clip = truncate(write_clip(tmp_path / "clip.avi", distinct_frames(10)))
    source = open_source(str(clip))
    decoded = list(source.frames(skip=lambda item: False))
    assert 0 < len(decoded) < 10
    assert any("truncated" in note for note in source.notes)


def test_images_are_written_atomically_and_formats_degrade_gracefully(tmp_path):
    deep_alpha = np.dstack([photo("coffee", 10, 12), np.full((10, 12), 9, np.uint8)]).astype(np.uint16) * 257
    write_output_image(tmp_path / "sub" / "x.jpg", deep_alpha)   # JPEG: 8-bit, no alpha
    written = cv2.imread(str(tmp_path / "sub" / "x.jpg"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint8 and written.shape == (10, 12, 3)
    write_output_image(tmp_path / "x.png", deep_alpha)
    assert cv2.imread(str(tmp_path / "x.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert sorted(p.name for p in output_files(tmp_path)) == ["x.jpg", "x.png"]   # no temporary files left
    with pytest.raises(SinkError, match="cannot write"):
        write_output_image(tmp_path / "x.unknownext", deep_alpha)
    assert sorted(p.name for p in output_files(tmp_path)) == ["x.jpg", "x.png"]


def test_default_output_names(image_tree, tmp_path):
    assert default_output(open_source(str(image_tree)), compare=False) == str(tmp_path / "photos_nicegan")
    assert default_output(open_source(str(image_tree / "z.png")), compare=True).endswith("photos/z_compare.png")
    clip = write_clip(tmp_path / "clip.avi", distinct_frames(2))
    assert default_output(open_source(str(clip)), compare=False) == str(tmp_path / "clip_nicegan.avi")


def test_outputs_may_not_overwrite_inputs(image_tree, tmp_path):
    folder = open_source(str(image_tree))
    with pytest.raises(SinkError, match="input folder"):
        open_sink(folder, str(image_tree))
    with pytest.raises(SinkError, match="overwrite the input"):
        open_sink(open_source(str(image_tree / "z.png")), str(image_tree / "z.png"))
    clip = write_clip(tmp_path / "clip.mp4", distinct_frames(2))
    with pytest.raises(SinkError, match="overwrite the input"):
        open_sink(open_source(str(clip)), str(clip))


def test_same_folder_with_a_suffix_never_reads_its_own_outputs(image_tree):
    source = open_source(str(image_tree))
    sink = open_sink(source, str(image_tree), suffix="_out")
    cv2.imwrite(str(image_tree / "z_out.png"), photo("coffee", 8, 8))    # an output of an earlier run
    assert names(source) == ["a.jpg", "z.png", "b/deep/c.png"]
    assert sink.target_for(next(source.items())) == image_tree / "a_out.jpg"


def test_output_folder_inside_the_input_folder_is_not_read_back(image_tree):
    source = open_source(str(image_tree))
    open_sink(source, str(image_tree / "out"), ext="png")
    (image_tree / "out").mkdir()
    cv2.imwrite(str(image_tree / "out" / "a.png"), photo("coffee", 8, 8))
    assert names(source) == ["a.jpg", "z.png", "b/deep/c.png"]


def test_video_sink_writes_atomically_and_keeps_interrupted_work_as_partial(tmp_path):
    frames = distinct_frames(6)
    sink = VideoSink(tmp_path / "out.mp4", 10.0, None, overwrite=False)
    for i, frame in enumerate(frames):
        sink.write(None, frame)
        if i == 2:
            assert not (tmp_path / "out.mp4").exists()                   # only a hidden temp file so far
    sink.close()
    read, fps = read_clip(tmp_path / "out.mp4")
    assert len(read) == 6 and fps == pytest.approx(10.0) and read[0].shape == frames[0].shape
    assert [p.name for p in output_files(tmp_path)] == ["out.mp4"]

    stopped = VideoSink(tmp_path / "stop.avi", 10.0, None, overwrite=False)
    for frame in frames[:3]:
        stopped.write(None, frame)
    stopped.close(interrupted=True)
    assert len(read_clip(tmp_path / "stop.partial.avi")[0]) == 3
    assert not (tmp_path / "stop.avi").exists() and "stop.partial.avi" in stopped.interrupted_line()


def test_an_unwritable_codec_names_the_fix(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", 10.0, "av01", overwrite=False)
    with pytest.raises(SinkError, match="mp4v"):
        sink.write(None, distinct_frames(1)[0])


@pytest.mark.skipif(find_ffmpeg() is None, reason="no ffmpeg executable")
def test_h264_through_ffmpeg(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", 12.0, "h264", overwrite=False)
    for frame in distinct_frames(5):
        sink.write(None, frame)
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").lower() in (b"h264", b"avc1")


@pytest.mark.parametrize("spec", ["7", "/dev/video7", "v4l2:///dev/video7"])
def test_cameras_are_opened_by_index_and_a_missing_one_is_named(spec):
    with pytest.raises(SourceError, match=f"cannot open {spec}"):
        open_source(spec)


AUDIO = Path(__file__).parent / "data" / "audio"


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
def test_audio_tracks_are_read_from_the_container(tmp_path, suffix):
    """Files with a tone track (made once by ffmpeg, shipped in tests/data) and silent ones written here."""
    assert has_audio_track(AUDIO / f"audio{suffix}") is True
    fourcc = {".webm": "VP80", ".avi": "XVID"}.get(suffix, "mp4v")
    silent = write_clip(tmp_path / f"silent{suffix}", distinct_frames(3), fourcc=fourcc)
    assert has_audio_track(silent) is False
    assert has_audio_track(truncate(tmp_path / f"silent{suffix}", 0.02)) in (False, None)   # never raises
    assert has_audio_track(AUDIO / "audio.mp4".replace(".mp4", ".flv")) is None            # unknown, absent


def test_the_audio_note_is_only_for_inputs_with_audio(tmp_path, monkeypatch):
    monkeypatch.setattr(sinks, "find_ffmpeg", lambda: None)
    silent = open_source(str(write_clip(tmp_path / "silent.mp4", distinct_frames(3))))
    assert open_sink(silent, str(tmp_path / "out.mp4")).notes == []
    loud = open_source(str(AUDIO / "audio.mp4"))
    notes = open_sink(loud, str(tmp_path / "loud.mp4")).notes
    assert len(notes) == 1 and notes[0].startswith("the input's audio track is not copied: that needs an ffmpeg")
    assert open_sink(loud, str(tmp_path / "quiet.mp4"), audio="none").notes == []


def test_avi_output_is_mpeg4_not_motion_jpeg(tmp_path):
    """Motion-JPEG made a translated .avi 2.5x the size of the same frames as .mp4 (7.5x an H.264 input)."""
    frames = distinct_frames(30, 96, 128)
    sizes = {}
    for suffix in (".mp4", ".avi"):
        sink = VideoSink(tmp_path / f"out{suffix}", 12.0, None, overwrite=False)
        for frame in frames:
            sink.write(None, frame)
        sink.close()
        sizes[suffix] = (tmp_path / f"out{suffix}").stat().st_size
        assert len(read_clip(tmp_path / f"out{suffix}")[0]) == 30
    assert sink.codec == "XVID" and sizes[".avi"] < 1.3 * sizes[".mp4"]


def test_a_camera_that_cannot_be_opened_is_one_line(capfd):
    with pytest.raises(SourceError, match="cannot open 57"):
        open_source("57")
    err = capfd.readouterr().err
    assert "WARN" not in err and "ERROR" not in err and "VIDEOIO" not in err
