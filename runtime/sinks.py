"""Outputs as one argument: a folder mirroring the input tree, one image file, or a video file.

Every output is written under a hidden temporary name, unique per writer, in its own folder and
renamed into place (nicegan.common.AtomicOutput), so a killed job never leaves a file that looks
finished; sinks know which outputs exist (resume).
Video: OpenCV writes `--codec` fourccs (default per container: DEFAULT_FOURCC); `--codec h264`
pipes raw frames to an ffmpeg executable (libx264, browser-playable); ffmpeg also copies the
input's audio track when it can.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from nicegan.common import AtomicOutput, ImageWriteError, quiet_opencv, remove_leftover_temporaries, write_image
from nicegan.errors import NiceganError
from nicegan.runtime.media import has_audio_track
from nicegan.runtime.sources import IMAGE_EXTS, VIDEO_EXTS, ImageSource, Item, Source, VideoSource

DEFAULT_SUFFIX = "_nicegan"
# MPEG-4 Part 2 (mp4v/XVID) is in every OpenCV wheel and keeps a translated video about the size
# of its input; Motion-JPEG in .avi made it 2.5x (7.5x for a CPU-friendly H.264 input).
DEFAULT_FOURCC = {".avi": "XVID", ".webm": "VP80"}   # everything else: mp4v
CODEC_HELP = ("video codec: a fourcc, by default mp4v (MPEG-4 Part 2) for .mp4/.mkv/.mov, XVID (the same) "
              "for .avi and VP80 (VP8) for .webm; browsers play H.264 only: --codec h264 (needs ffmpeg)")
H264_NAMES = ("h264", "x264", "avc1")
DEFAULT_CONTAINERS = {".mp4", ".avi", ".mkv", ".webm", ".mov"}
_SIXTEEN_BIT_EXTS = {".png", ".tif", ".tiff", ".pgm", ".ppm", ".pnm", ".jp2"}
_ALPHA_EXTS = {".png", ".tif", ".tiff", ".webp", ".jp2"}


class SinkError(NiceganError, ValueError):
    """An output that cannot be written; the message names it and says what to do."""


def write_output_image(path: Path, image: np.ndarray) -> None:
    try:
        write_image(path, _storable(image, path.suffix.lower()))
    except ImageWriteError as exc:
        raise SinkError(f"{exc}; choose another --ext") from None


def partial_path(path: Path) -> Path:
    """Where an interrupted video keeps the frames written so far."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def _storable(image: np.ndarray, suffix: str) -> np.ndarray:
    """Drop what the target format cannot hold (16-bit in JPEG, alpha in JPEG/BMP)."""
    if image.dtype == np.uint16 and suffix not in _SIXTEEN_BIT_EXTS:
        image = np.rint(image / 257.0).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4 and suffix not in _ALPHA_EXTS:
        image = np.ascontiguousarray(image[:, :, :3])
    return image


class ImageSink:
    """One image file per item, at `target_for(item)`. A folder sink (`folder` set) also places
    the videos of a folder input: `video_target(name)`, the same tree and suffix, the video's own
    container."""
    def __init__(self, target_for: Callable[[Item], Path], overwrite: bool, description: str,
                 folder: Path | None = None, suffix: str = ""):
        self.target_for = target_for
        self.overwrite = overwrite
        self.description = description
        self.folder = folder
        self.suffix = suffix
        self.notes: list[str] = []
        self.start_notes: list[str] = []
        self._seen: list[Path] = []   # this run's targets, whose killed writers' leftovers close() removes

    def video_target(self, name: str) -> Path:
        renamed = _renamed(name, self.suffix, None)
        container = renamed.suffix if renamed.suffix.lower() in DEFAULT_CONTAINERS else ".mp4"
        return self.folder / renamed.with_suffix(container)

    def complete(self) -> bool:
        return False

    def interrupted_line(self) -> str:
        return "interrupted: the images written so far are kept; rerun the same command to resume"

    def done(self, item: Item) -> bool:
        target = self.target_for(item)
        self._seen.append(target)
        return not self.overwrite and target.exists()

    def write(self, item: Item, image: np.ndarray) -> None:
        target = self.target_for(item)
        if item.path is not None and target.resolve() == item.path.resolve():
            raise SinkError(f"{target}: output would overwrite its input (use another folder or --suffix)")
        write_output_image(target, image)

    def close(self, interrupted: bool = False) -> None:
        # A writer SIGKILLed mid-image (an earlier run, a Ray worker) left a hidden temporary file; the
        # job is the one writer of its outputs and its own writes are over, so what remains is a leftover.
        seen, self._seen = self._seen, []
        remove_leftover_temporaries(seen)


class VideoSink:
    """A video file with the input's frame rate; size taken from the first frame written.

    An interrupted job keeps the frames written so far, properly closed, as NAME.partial.EXT. The
    rerun resumes after them where ffmpeg is found: the frames it translates go to a file of their
    own, joined to the kept ones without re-encoding when the video ends (or is interrupted again).
    Without ffmpeg, or when the kept frames' codec or size is not this run's, it translates the video
    again from its first frame and replaces the file when it ends. A live input never resumes."""
    def __init__(self, path: Path, fps: float, codec: str | None, overwrite: bool,
                 audio_from: Path | None = None, frame_count: int | None = None, live: bool = False):
        self.path = path
        self.fps = fps
        self.codec = (codec or DEFAULT_FOURCC.get(path.suffix.lower(), "mp4v"))
        self.overwrite = overwrite
        self.audio_from = audio_from
        self.frame_count = frame_count
        self.description = str(path)
        self.notes: list[str] = []
        self.start_notes: list[str] = []
        self.partial = partial_path(path)
        self.kept = 0                                  # the partial's frames this run resumes after
        self._kept_size: tuple[int, int] = (0, 0)
        self._output: AtomicOutput | None = None
        self._writer: _CvWriter | _FfmpegWriter | None = None
        if self.codec.lower() in H264_NAMES and find_ffmpeg() is None:
            raise SinkError(f"--codec {self.codec} needs an ffmpeg executable on PATH "
                            "(apt-get install ffmpeg, or pip install imageio-ffmpeg), or use --codec mp4v")
        self.live = live                               # a camera or stream: its frames cannot be found again
        self.resumable = not live and find_ffmpeg() is not None
        if self.partial.exists() and not self.complete():
            self.start_notes.append(self._take_partial())
        self.frames = self.kept

    def _take_partial(self) -> str:
        """Resume after the partial's frames if they can be joined to this run's; say what is done."""
        again = (f"{self.partial} is left from an interrupted run: translating the video again from its first "
                 "frame (the file is replaced when this run ends")
        if self.overwrite:
            return again + ", --overwrite)"
        if self.live:
            return again + ")"
        if not self.resumable:
            return again + "; with ffmpeg, e.g. pip install imageio-ffmpeg, a rerun resumes where it stopped)"
        count, size, family = _video_frames(self.partial)
        if count == 0 or family != _codec_family(self.codec):
            return again + f"; its frames are not {self.codec} video that this run can join)"
        self.kept, self._kept_size = count, size
        return f"{self.partial}: resuming after the {count} frames an interrupted run kept (joined without re-encoding)"

    def complete(self) -> bool:
        return not self.overwrite and self.path.exists()

    def done(self, item: Item) -> bool:
        return item.index < self.kept

    def interrupted_line(self) -> str:
        total = f" of {self.frame_count}" if self.frame_count else ""
        rerun = ("resumes after them" if self.resumable else "translates the video again from its first frame"
                 + ("" if self.live else " (with ffmpeg it would resume after them)"))
        return f"interrupted: {self.frames}{total} frames kept in {self.partial}; rerunning the same command {rerun}"

    def write(self, item: Item, image: np.ndarray) -> None:
        if self._writer is None:
            self._writer = self._open(image.shape[1], image.shape[0])
        self._writer.write(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        self.frames += 1

    def close(self, interrupted: bool = False) -> None:
        try:
            self._finish(interrupted)
        finally:   # a run SIGKILLed mid-video left its temporary file, as large as the video
            remove_leftover_temporaries([self.path])

    def _finish(self, interrupted: bool) -> None:
        if self._writer is None:
            if self.kept and not interrupted:   # the interrupted run had written every frame
                video = AtomicOutput(self.path)
                video.adopt(self.partial)
                self._commit_with_audio(video)
            return
        output, self._output = self._output, None
        try:
            self._writer.close()
        except BaseException:
            output.discard()
            raise
        finally:
            self._writer = None
        if self.frames == 0:
            output.discard()
            return
        if self.kept:
            output = self._joined_to_kept(output)
        if interrupted:
            output.commit(self.partial)
        else:
            self._commit_with_audio(output)
            self.partial.unlink(missing_ok=True)   # an earlier interrupted run's frames: superseded

    def _joined_to_kept(self, frames_after: AtomicOutput) -> AtomicOutput:
        joined = AtomicOutput(self.path)
        try:
            _join_videos(self.partial, self.kept / self.fps, frames_after.tmp, joined.tmp)
        except BaseException:
            joined.discard()
            raise
        finally:
            frames_after.discard()
        return joined

    def _open(self, width: int, height: int) -> "_CvWriter | _FfmpegWriter":
        stored = (width, height) if self.codec.lower() in H264_NAMES else (width - width % 2, height - height % 2)
        if self.kept and stored != self._kept_size:
            raise SinkError(f"{self.partial}: its frames are {self._kept_size[0]}x{self._kept_size[1]}, this run's "
                            f"{stored[0]}x{stored[1]} (another model or --max-size?); remove it, or add --overwrite, "
                            "to translate the video from its first frame")
        self._output = AtomicOutput(self.path)
        if self.codec.lower() in H264_NAMES:
            # muxed while encoding; when resuming, after the join (one audio track for the whole video)
            audio, self.audio_from = (None, self.audio_from) if self.kept else (self.audio_from, None)
            return _FfmpegWriter(self._output.tmp, self.fps, width, height, audio)
        if width % 2 or height % 2:
            self.notes.append(f"{self.codec} stores 4:2:0 video with even sides only: {width}x{height} is written "
                              f"as {stored[0]}x{stored[1]}; --codec h264 keeps the exact size")
        return _CvWriter(self._output.tmp, self.codec, self.fps, width, height)

    def _commit_with_audio(self, video: AtomicOutput) -> None:
        """Commit the video, with the input's audio muxed in by ffmpeg when it was asked for."""
        if self.audio_from is None:
            video.commit()
            return
        muxed = AtomicOutput(self.path)
        result = subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-i", str(video.tmp),
                                 "-i", str(self.audio_from), "-map", "0:v:0", "-map", "1:a?",
                                 "-c", "copy", str(muxed.tmp)], capture_output=True, text=True)
        if result.returncode == 0:
            video.discard()
            muxed.commit()
        else:
            muxed.discard()
            video.commit()
            reason = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            self.notes.append(f"audio not copied into {self.path.suffix} ({reason}); video written without it")


class _CvWriter:
    def __init__(self, path: Path, codec: str, fps: float, width: int, height: int):
        if len(codec) != 4:
            raise SinkError(f"--codec {codec}: give a four-character code (mp4v, XVID, MJPG, VP80, VP90) or h264")
        with quiet_opencv():   # a refused codec is reported below, in one line
            self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if not self._writer.isOpened():
            raise SinkError(f"OpenCV cannot write codec {codec} to {path.suffix} "
                            "(pip wheels have no H.264: use --codec mp4v, or --codec h264 with ffmpeg installed)")

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()


class _FfmpegWriter:
    """Raw BGR frames piped to ffmpeg's libx264 (browser-playable .mp4), audio copied if given."""

    def __init__(self, path: Path, fps: float, width: int, height: int, audio_from: Path | None):
        # yuv420p (what browsers play) needs even sides; odd sizes keep full chroma instead.
        pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        command = [find_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
                   "-s", f"{width}x{height}", "-r", f"{fps:.6f}", "-i", "-"]
        if audio_from is not None:
            command += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a?", "-c:a", "copy"]
        command += ["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", pix_fmt, str(path)]
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._log)
        self._path = path

    def write(self, frame: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError as exc:
            raise SinkError(f"ffmpeg stopped while writing {self._path}: {self._error()}") from exc

    def close(self) -> None:
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        if self._process.wait() != 0:
            raise SinkError(f"ffmpeg failed writing {self._path}: {self._error()}")
        self._log.close()

    def _error(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {self._process.poll()}"


# MPEG-4 Part 2 under its fourccs, and H.264: what OpenCV reports for a file we wrote with each.
_CODEC_FAMILIES = {**dict.fromkeys(("mp4v", "xvid", "divx", "dx50", "fmp4"), "fmp4"),
                   **dict.fromkeys(H264_NAMES, "h264")}


def _codec_family(fourcc: str) -> str:
    return _CODEC_FAMILIES.get(fourcc.lower(), fourcc.lower())


def _video_frames(path: Path) -> tuple[int, tuple[int, int], str]:
    """A video's decodable frames, their size and codec family (0 frames if it cannot be read)."""
    with quiet_opencv():
        capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.grab():
            count += 1
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        return count, size, _codec_family("".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)))
    finally:
        capture.release()


def _join_videos(first: Path, first_seconds: float, second: Path, into: Path) -> None:
    """`first`'s video then `second`'s, of the same codec and size, packets copied (no
    re-encoding): ffmpeg's concat demuxer. `first_seconds` is its video's length (the file's may be
    its audio's, longer); audio is left out (the caller muxes the input's)."""
    with tempfile.TemporaryDirectory(prefix="nicegan-join-") as scratch:
        listing = Path(scratch) / "parts.txt"
        listing.write_text(f"file '{_quoted(first)}'\nduration {first_seconds:.9f}\nfile '{_quoted(second)}'\n",
                           encoding="utf-8")
        result = subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                                 "-i", str(listing), "-map", "0:v:0", "-c", "copy", str(into)],
                                capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
        raise SinkError(f"{first}: ffmpeg could not join this run's frames to it ({reason}); remove it, or add "
                        "--overwrite, to translate the video from its first frame")


def _quoted(path: Path) -> str:
    """A path inside single quotes of an ffconcat listing: each ' closes, is escaped, reopens."""
    return str(path.resolve()).replace("'", "'\\''")


def find_ffmpeg() -> str | None:
    """An ffmpeg executable: on PATH, else the one bundled by the imageio-ffmpeg package."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def default_output(source: Source, compare: bool) -> str:
    """Where results go when OUTPUT is omitted: next to the input, named after it."""
    tag = "_compare" if compare else DEFAULT_SUFFIX
    if isinstance(source, VideoSource):
        if source.path is None:
            return f"{source.stem}{tag}.mp4"
        suffix = source.path.suffix if source.path.suffix.lower() in DEFAULT_CONTAINERS else ".mp4"
        return str(source.path.with_name(f"{source.path.stem}{tag}{suffix}"))
    if source.single:
        path = next(source.items()).path
        return str(path.with_name(f"{path.stem}{tag}{path.suffix}"))
    root = source.root.resolve()
    listed = Path(source.spec)
    name = listed.stem if listed.suffix.lower() == ".txt" else root.name or "images"
    return str(root.parent / f"{name}{tag}")


def open_sink(source: Source, output: str | None, *, suffix: str = "", ext: str | None = None,
              compare: bool = False, codec: str | None = None, audio: str = "copy",
              overwrite: bool = False, tag: str = "") -> ImageSink | VideoSink:
    """The sink for OUTPUT given the source; refuses outputs that would overwrite the inputs.
    `tag` goes at the end of every output name, a single output file's too (`translate --samples`:
    `_s{seed}`)."""
    output = output or default_output(source, compare)
    target = Path(output).expanduser()
    out_ext = target.suffix.lower()
    ext = _normalised_ext(ext)
    if out_ext in VIDEO_EXTS:
        if not isinstance(source, VideoSource):
            raise SinkError(f"{output}: image inputs go to a folder or an image file, not a video")
        return open_video_sink(source, _tagged(target, tag), codec, audio, overwrite)
    if isinstance(source, ImageSource) and source.single and out_ext in IMAGE_EXTS:
        return _single_image_sink(source, _tagged(target, tag), overwrite)
    if out_ext in IMAGE_EXTS:
        raise SinkError(f"{output}: several frames cannot go to one image file; give a folder")
    suffix += tag
    if isinstance(source, VideoSource):
        return ImageSink(lambda item: target / _renamed(item.name, suffix, ext), overwrite, f"{target}/")
    return _folder_sink(source, target, suffix, ext, overwrite)


def open_video_sink(source: VideoSource, target: Path, codec: str | None, audio: str, overwrite: bool) -> VideoSink:
    if source.path is not None and target.resolve() == source.path.resolve():
        raise SinkError(f"{target}: output would overwrite the input video; choose another name")
    audio_from, note = _audio_source(source, audio)
    sink = VideoSink(target, source.fps, codec, overwrite, audio_from, source.frame_count, live=source.live)
    if note:
        sink.notes.append(note)
    return sink


def _audio_source(source: VideoSource, audio: str) -> tuple[Path | None, str | None]:
    """The file to copy audio from (or None) and a note for the user when audio is lost.
    Live inputs are never copied from; a note only when the input has an audio track."""
    if audio == "none" or source.path is None:
        return None, None
    if find_ffmpeg() is not None:
        return source.path, None    # ffmpeg copies the audio if there is one ("-map 1:a?")
    tracks = has_audio_track(source.path)
    if tracks is False:
        return None, None
    which = "the input's audio track" if tracks else "the input's audio (if it has any)"
    return None, (f"{which} is not copied: that needs an ffmpeg executable (apt-get install ffmpeg, or "
                  "pip install imageio-ffmpeg); --audio none silences this note")


def _single_image_sink(source: ImageSource, target: Path, overwrite: bool) -> ImageSink:
    path = next(source.items()).path
    if target.resolve() == path.resolve():
        raise SinkError(f"{target}: output would overwrite the input image; choose another name")
    return ImageSink(lambda item: target, overwrite, str(target))


def _folder_sink(source: ImageSource, target: Path, suffix: str, ext: str | None, overwrite: bool) -> ImageSink:
    root = target.resolve()
    in_root = source.root.resolve()
    if source.single:
        return ImageSink(lambda item: target / _renamed(item.name, suffix, ext), overwrite, f"{target}/")
    if root == in_root:
        if not suffix:
            raise SinkError(f"{target}: output folder is the input folder; choose another folder or add --suffix")
        source.exclude(lambda path: path.stem.endswith(suffix))
    elif in_root in root.parents:
        source.exclude(lambda path: root in path.resolve().parents)
    return ImageSink(lambda item: target / _renamed(item.name, suffix, ext), overwrite, f"{target}/",
                     folder=target, suffix=suffix)


def _normalised_ext(ext: str | None) -> str | None:
    if not ext:
        return None
    ext = ext if ext.startswith(".") else f".{ext}"
    if ext.lower() not in IMAGE_EXTS:
        raise SinkError(f"--ext {ext}: not an image format OpenCV writes ({', '.join(sorted(IMAGE_EXTS))})")
    return ext


def _tagged(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.stem}{tag}{path.suffix}")


def _renamed(name: str, suffix: str, ext: str | None) -> Path:
    relative = Path(name)
    return relative.with_name(f"{relative.stem}{suffix}{ext or relative.suffix}")
