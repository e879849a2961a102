"""Whether a video file holds an audio track, read from the container's headers.

OpenCV's pip wheels read no audio, and ffmpeg is optional, so the headers are parsed here:
ISO BMFF (.mp4, .mov, .m4v, .3gp: a track whose `hdlr` is `soun`), Matroska/WebM (a TrackEntry
whose TrackType is 2) and AVI (a stream header `strh` of type `auds`). Only the boxes and
elements on the way to the track list are read, never the media data.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

_MP4_EXTS = {".mp4", ".mov", ".m4v", ".3gp", ".m4a"}
_MATROSKA_EXTS = {".mkv", ".webm"}
_AVI_EXTS = {".avi"}
_HEADER_BYTES = 1 << 20   # AVI and Matroska put their track lists in the first kilobytes


def has_audio_track(path: Path) -> Optional[bool]:
    """True or False when the container says; None for other containers or unreadable headers."""
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            if suffix in _MP4_EXTS:
                return _mp4_has_audio(f, path.stat().st_size)
            if suffix in _MATROSKA_EXTS:
                return _matroska_has_audio(f.read(_HEADER_BYTES))
            if suffix in _AVI_EXTS:
                return _avi_has_audio(f.read(_HEADER_BYTES))
    except (OSError, struct.error, ValueError, IndexError):   # truncated or corrupt headers
        return None
    return None


# --- ISO BMFF -------------------------------------------------------------------------------


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes between start and end."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", f.read(8))[0], 16
        elif size == 0:          # the box runs to the end of its parent
            size = end - pos
        if size < header:
            raise ValueError("corrupt box size")
        yield kind, pos + header, pos + size
        pos += size


def _children(f: BinaryIO, parent: tuple[int, int], kind: bytes) -> Iterator[tuple[int, int]]:
    return ((start, end) for name, start, end in _boxes(f, *parent) if name == kind)


def _mp4_has_audio(f: BinaryIO, size: int) -> bool:
    for moov in _children(f, (0, size), b"moov"):
        for trak in _children(f, moov, b"trak"):
            for mdia in _children(f, trak, b"mdia"):
                for start, _ in _children(f, mdia, b"hdlr"):
                    f.seek(start + 8)   # version/flags, pre_defined, then the handler type
                    if f.read(4) == b"soun":
                        return True
    return False


# --- Matroska / WebM ------------------------------------------------------------------------

_SEGMENT, _TRACKS, _TRACK_ENTRY, _TRACK_TYPE, _CLUSTER = 0x18538067, 0x1654AE6B, 0xAE, 0x83, 0x1F43B675
_AUDIO_TRACK = 2


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int, int]:
    """An EBML variable-length integer at pos: (value, next pos, length). IDs keep their marker bit."""
    first = data[pos]
    length = 9 - first.bit_length()
    if not 1 <= length <= 8 or pos + length > len(data):
        raise ValueError("corrupt EBML")
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    return value, pos + length, length


def _elements(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(id, payload start, payload end) of the elements between start and end."""
    pos = start
    while pos < end:
        element, pos, _ = _vint(data, pos, keep_marker=True)
        size, pos, length = _vint(data, pos, keep_marker=False)
        unknown = size == (1 << (7 * length)) - 1     # live streams leave the segment's size open
        stop = min(end, len(data)) if unknown or pos + size > len(data) else pos + size
        yield element, pos, stop
        if element == _CLUSTER:
            return               # media data follows: the track list came before it
        pos = stop


def _matroska_has_audio(data: bytes) -> bool:
    for segment_id, start, end in _elements(data, 0, len(data)):
        if segment_id != _SEGMENT:
            continue
        for tracks_id, t_start, t_end in _elements(data, start, end):
            if tracks_id != _TRACKS:
                continue
            for entry_id, e_start, e_end in _elements(data, t_start, t_end):
                if entry_id == _TRACK_ENTRY and any(
                        kind == _TRACK_TYPE and data[s:e] == bytes([_AUDIO_TRACK])
                        for kind, s, e in _elements(data, e_start, e_end)):
                    return True
    return False


# --- AVI ------------------------------------------------------------------------------------


def _avi_has_audio(data: bytes) -> bool:
    if data[:4] != b"RIFF" or data[8:12] != b"AVI ":
        raise ValueError("not an AVI file")
    header = data[:data.find(b"movi")] if b"movi" in data else data   # stream headers precede the media
    pos = header.find(b"strh")
    while pos != -1:
        if header[pos + 8:pos + 12] == b"auds":   # chunk id, size, then the stream type
            return True
        pos = header.find(b"strh", pos + 4)
    return False
