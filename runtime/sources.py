"""Inputs as one argument, like jetson-inference's videoSource.

`open_source(spec)` accepts an image file, a folder (recursive), a glob, a .txt file listing
paths, a video file, a camera (`0`, `/dev/video0`, `v4l2:///dev/video0`, `csi://0`), a network
stream (`rtsp://...`) or a GStreamer pipeline (any string with `!`). Image lists are streamed
lazily so a 100,000-file folder costs no memory; frames are read only by the decode stage.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Union

import cv2
import numpy as np

from nicegan.common import quiet_opencv, read_image
from nicegan.errors import NiceganError

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2",
                        ".pgm", ".ppm", ".pnm", ".pbm", ".sr", ".ras"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                        ".wmv", ".flv", ".ts", ".3gp", ".ogv", ".gif"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "rtp://")
# A corrupt packet mid-stream makes cv2 fail one read and recover on the next; this many
# failures in a row means the stream really ended (or the file is truncated).
MAX_BAD_FRAMES_IN_A_ROW = 8


class SourceError(NiceganError, ValueError):
    """An input that cannot be opened; the message names it and says what to do."""


@dataclass(frozen=True)
class Item:
    """One unit of work: an image file (`name` = its path relative to the input root) or a frame."""
    index: int
    name: str
    path: Path | None = None


@dataclass
class Decoded:
    item: Item
    image: np.ndarray | None = None
    skipped: bool = False                             # its output already exists (resume)
    load: Callable[[], np.ndarray] | None = None      # image files: read later, by a decode worker

    def read(self) -> np.ndarray:
        """The frame, reading the file now if it is one; raises ImageReadError when unreadable."""
        return self.image if self.load is None else self.load()


class ImageSource:
    """Image files (and, for a folder, glob or list, the videos among them: `video_paths`), listed
    lazily in sorted order; `items` are the images."""

    def __init__(self, spec: str, root: Path, paths: Callable[[], Iterator[Path]], single: bool = False,
                 videos: Callable[[], Iterator[Path]] | None = None):
        self.spec = spec
        self.root = root
        self.single = single
        self._paths = paths
        self._videos = videos or (lambda: iter(()))
        self.notes: list[str] = []

    def video_paths(self) -> Iterator[Path]:
        """The videos of a folder, glob or list: each is translated to a video of its own."""
        return self._videos()

    def relative_name(self, path: Path) -> str:
        return _relative_name(path, self.root)

    def items(self) -> Iterator[Item]:
        for index, path in enumerate(self._paths()):
            yield Item(index, _relative_name(path, self.root), path)

    def count(self) -> int:
        return sum(1 for _ in self._paths())

    def frames(self, skip: Callable[[Item], bool]) -> Iterator[Decoded]:
        """Work in order; files are not read here, so decode workers can read them in parallel."""
        for item in self.items():
            yield Decoded(item, skipped=True) if skip(item) else Decoded(item, load=partial(read_image, item.path))

    def exclude(self, written_here: Callable[[Path], bool]) -> None:
        """Never read back what this job writes (outputs inside the input folder)."""
        paths, videos = self._paths, self._videos
        self._paths = lambda: (p for p in paths() if not written_here(p))
        self._videos = lambda: (p for p in videos() if not written_here(p))

    def close(self) -> None:
        pass


class VideoSource:
    def __init__(self, spec: str, capture: cv2.VideoCapture, path: Path | None, live: bool):
        self.spec = spec
        self.path = path
        self.live = live
        self._cap = capture
        self.notes: list[str] = []
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 and fps < 1000 else 25.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 and not live else None
        self.stem = path.stem if path else _stream_stem(spec)

    def count(self) -> int | None:
        return self.frame_count

    def frames(self, skip: Callable[[Item], bool]) -> Iterator[Decoded]:
        """Every frame in order; those that `skip` (a resumed video's kept frames) without their
        image. A frame that fails to decode mid-stream is replaced by the previous good one (noted),
        so the output keeps the input's frame count and timing."""
        index, bad_run, previous = 0, 0, None
        while True:
            ok, frame = self._cap.read()
            if not ok:
                bad_run += 1
                if self.live or bad_run > MAX_BAD_FRAMES_IN_A_ROW or (
                        self.frame_count is not None and index + bad_run > self.frame_count):
                    break
                continue
            for _ in range(bad_run):
                self.notes.append(f"{self.spec}: frame {index} unreadable, previous frame repeated")
                yield self._decoded(index, previous if previous is not None else frame, skip)
                index += 1
            bad_run = 0
            yield self._decoded(index, frame, skip)
            previous = frame
            index += 1
        if self.frame_count is not None and index < self.frame_count:
            self.notes.append(f"{self.spec}: ended after {index} of {self.frame_count} frames (truncated file?)")

    def _decoded(self, index: int, frame: np.ndarray, skip: Callable[[Item], bool]) -> Decoded:
        item = Item(index, self._frame_name(index))
        return Decoded(item, skipped=True) if skip(item) else Decoded(item, frame)

    def _frame_name(self, index: int) -> str:
        return f"{self.stem}_{index:06d}.png"

    def close(self) -> None:
        self._cap.release()


Source = Union[ImageSource, VideoSource]


def is_live(spec: str) -> bool:
    """A camera, stream or GStreamer pipeline: frames arrive in real time and should not wait."""
    return _camera(spec) is not None or spec.startswith(("csi://", *STREAM_SCHEMES)) or "!" in spec


def open_source(spec: str) -> Source:
    """Parse one input argument; raises SourceError with the fix when it cannot be opened."""
    camera = _camera(spec)
    if camera is not None:
        return _open_capture(spec, camera, cv2.CAP_ANY, live=True)
    if spec.startswith("csi://"):
        return _open_capture(spec, _csi_pipeline(spec), cv2.CAP_GSTREAMER, live=True)
    if spec.startswith(STREAM_SCHEMES):
        return _open_capture(spec, spec, cv2.CAP_FFMPEG, live=True)
    if "!" in spec:
        return _open_capture(spec, spec, cv2.CAP_GSTREAMER, live=True)
    path = Path(spec[len("file://"):] if spec.startswith("file://") else spec).expanduser()
    if path.is_dir():
        return ImageSource(spec, path, lambda: _walk_files(path, IMAGE_EXTS), videos=lambda: _walk_files(path, VIDEO_EXTS))
    if path.is_file():
        return _open_file(spec, path)
    if glob.has_magic(spec):
        root = _glob_root(spec)
        return ImageSource(spec, root, lambda: _glob_files(spec, IMAGE_EXTS),
                           videos=lambda: _glob_files(spec, VIDEO_EXTS))
    raise SourceError(f"input not found: {spec} (give an image, folder, glob, .txt list, video, camera index or URL)")


def _open_file(spec: str, path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return ImageSource(spec, path.parent, lambda: _listed_files(path, videos=False),
                           videos=lambda: _listed_files(path, videos=True))
    if suffix in IMAGE_EXTS:
        return ImageSource(spec, path.parent, lambda: iter([path]), single=True)
    if suffix in VIDEO_EXTS:
        return _open_capture(spec, str(path), cv2.CAP_ANY, live=False, path=path)
    raise SourceError(f"{path}: unknown input type '{suffix}' (images: {', '.join(sorted(IMAGE_EXTS))}; "
                      f"videos: {', '.join(sorted(VIDEO_EXTS))}; lists: .txt)")


def _open_capture(spec: str, target: str | int, api: int, live: bool, path: Path | None = None) -> VideoSource:
    if api == cv2.CAP_GSTREAMER and not _has_gstreamer():
        raise SourceError(f"{spec}: this OpenCV build has no GStreamer (pip wheels do not); "
                          "install the system OpenCV (e.g. python3-opencv) and use --system-site-packages")
    with quiet_opencv():
        capture = cv2.VideoCapture(target, api)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open {spec}: check that the file/device/URL exists and is a video")
    return VideoSource(spec, capture, path, live)


def _camera(spec: str) -> int | None:
    """Camera index for `0`, `/dev/video0`, `v4l2:///dev/video0` (OpenCV's V4L2 opens by index only)."""
    match = re.fullmatch(r"(?:v4l2://)?(?:/dev/video)?(\d+)", spec)
    return int(match.group(1)) if match else None


def _csi_pipeline(spec: str) -> str:
    sensor = spec[len("csi://"):] or "0"
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width=1280,height=720,"
            "framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR "
            "! appsink drop=true max-buffers=2")


def _has_gstreamer() -> bool:
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


def _stream_stem(spec: str) -> str:
    camera = _camera(spec)
    return "stream" if camera is None else f"camera{camera}"


def _walk_files(root: Path, extensions: frozenset[str]) -> Iterator[Path]:
    """Files with these extensions under root in sorted order, one directory listing in memory at
    a time; hidden files and folders (this tool's temporary files and .nicegan/) are left out."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in extensions:
                yield Path(folder) / name


def _glob_files(pattern: str, extensions: frozenset[str]) -> Iterator[Path]:
    for name in sorted(glob.iglob(pattern, recursive=True)):
        path = Path(name)
        if path.suffix.lower() in extensions and path.is_file() and not path.name.startswith("."):
            yield path


def _glob_root(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _listed_files(listing: Path, videos: bool) -> Iterator[Path]:
    """The listed videos, or every other listed path (an unreadable one is then reported as such)."""
    with open(listing, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line).expanduser()
                if (path.suffix.lower() in VIDEO_EXTS) is videos:
                    yield path if path.is_absolute() else listing.parent / path


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
