"""Real files for the runtime tests: photo crops, numbered video clips, corrupt inputs; a backend
that stops its own process with a real signal."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np

from nicegan_testutils import real_photos


def photo(name: str, height: int, width: int) -> np.ndarray:
    """A BGR crop of one of scikit-image's photos (taken from the top-left corner)."""
    return np.ascontiguousarray(cv2.cvtColor(real_photos()[name], cv2.COLOR_RGB2BGR)[:height, :width])


def distinct_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Frames that all differ: a window sliding over a photo, with the frame number drawn on it."""
    scene = photo("astronaut", 512, 512)
    frames = []
    for i in range(count):
        frame = scene[40 + 7 * i:40 + 7 * i + height, 30 + 11 * i:30 + 11 * i + width].copy()
        cv2.putText(frame, str(i), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        frames.append(frame)
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 12.0, fourcc: str | None = None) -> Path:
    fourcc = fourcc or ("MJPG" if path.suffix == ".avi" else "mp4v")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} {path.suffix}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def read_clip(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def corrupt_mjpeg_frame(path: Path, frame_index: int) -> Path:
    """Zero the start of one frame's JPEG data inside an MJPG .avi (its decode fails, the rest plays)."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
    begin = starts[frame_index]
    data[begin:begin + 400] = bytes(400)
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def output_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def camera_pan(count: int, height: int = 180, width: int = 320, name: str = "coffee",
               step: tuple[float, float] = (2.3, 0.9)) -> list[np.ndarray]:
    """A camera panning over a real photo by a sub-pixel step per frame (no drawn overlay, so
    every pixel moves with the scene, as optical flow assumes)."""
    scene = cv2.cvtColor(real_photos()[name], cv2.COLOR_RGB2BGR)
    frames = []
    for i in range(count):
        shift = np.float32([[1, 0, -10 - step[0] * i], [0, 1, -10 - step[1] * i]])
        frames.append(cv2.warpAffine(scene, shift, (width, height), flags=cv2.INTER_LINEAR))
    return frames


def bundled_clip_frames(count: int) -> list[np.ndarray]:
    """The first `count` frames of the bundled Big Buck Bunny clip (320x180, real animation)."""
    from nicegan.runtime.demo import SAMPLE_VIDEO
    return read_clip(SAMPLE_VIDEO)[0][:count]


def stopped_at_call(tiny_onnx, call: int, signum: int = signal.SIGINT):
    """The ONNX Runtime backend, sent a real `signum` by its own process during its `call`-th batch."""
    from nicegan.runtime.backends import open_backend

    class StoppedAtCall(type(open_backend(tiny_onnx))):
        calls = 0

        def infer(self, frames):
            StoppedAtCall.calls += 1
            if StoppedAtCall.calls == call:
                os.kill(os.getpid(), signum)
            return super().infer(frames)

    return StoppedAtCall(tiny_onnx)
