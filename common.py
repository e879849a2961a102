"""Small helpers that training, export and the runtime share, with no torch import (the Jetson
runtime install has none): file hashing, the free-core count, stop signals, atomic writes and image
reading."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

import cv2
import numpy as np

from nicegan.errors import NiceganError

PathLike = Union[str, os.PathLike]
PROC_STAT = "/proc/stat"


# --- hashing --------------------------------------------------------------------------------


def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# --- CPU threads ----------------------------------------------------------------------------


def cpu_threads(requested: int = 0) -> int:
    """`requested`, or (0) the cores not already busy: on a shared machine, threads that
    outnumber the free cores spin against each other and a forward gets many times slower."""
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, round((os.cpu_count() or cores) - busy_cores())))


def busy_cores(window_s: float = 0.1) -> float:
    """How many of the machine's cores are busy now, measured over `window_s` from /proc/stat.

    Not the load average: it lags by a minute, so right after a job ends (a previous
    `nicegan translate`, a benchmark's earlier runner) it still counts that job's threads and the
    next one would get half the cores for nothing. Without /proc (not Linux), the load average."""
    try:
        first = _cpu_ticks()
        time.sleep(window_s)
        second = _cpu_ticks()
    except (OSError, ValueError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    total, idle = second[0] - first[0], second[1] - first[1]
    return (os.cpu_count() or 1) * (1.0 - idle / total) if total > 0 else 0.0


# The CPU's matrix and vector extensions that decide which precision is fast; every benchmark
# figure is labelled with them (the same model runs 3x faster in bf16 on AVX512_BF16 or AMX).
NOTABLE_EXTENSIONS = ("amx_bf16", "amx_int8", "amx_fp16", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx512f",
                      "avx_vnni", "avx2", "asimd", "sve")


def cpu_extensions(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """NOTABLE_EXTENSIONS this CPU has, from the kernel's flags (empty where /proc is missing)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return [name for name in NOTABLE_EXTENSIONS if name in flags]
    except OSError:
        pass
    return []


def _cpu_ticks() -> tuple[int, int]:
    """(all, idle) jiffies of the machine from /proc/stat's `cpu` line; idle includes iowait."""
    with open(PROC_STAT, encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]


# --- stop signals ---------------------------------------------------------------------------

# Ctrl-C, and the polite stop that SLURM (time limit, scancel), Kubernetes, systemd and `timeout`
# send some seconds before SIGKILL: both mean "stop soon, keep what is done".
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """While inside: the first SIGINT or SIGTERM calls `on_first(name)` (the caller stops at its
    next consistent point); a second one raises KeyboardInterrupt (abort at once). The previous
    handlers come back on exit. Python runs handlers in the main thread only, so elsewhere (a Ray
    worker, a thread of the caller's) nothing is installed and the process keeps its handlers."""

    def __init__(self, on_first: Callable[[str], None]):
        self.on_first = on_first
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal received: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + int(self.received or signal.SIGINT)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.on_first(STOP_SIGNALS[signum])

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


def ignore_stop_signals() -> None:
    """For worker processes (a DataLoader's): the signals reach the whole process group, and the
    main process needs its workers alive while it stops cleanly; they end when it does."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


# --- atomic writes --------------------------------------------------------------------------


# AtomicOutput's temporary names: "." + stem + "." + mkstemp's 8 characters + ".part" + suffix.
_TEMPORARY_NAME = re.compile(r"\.(?P<stem>.+)\.[a-z0-9_]{8}\.part(?P<suffix>\.[^.]*)?")


def remove_leftover_temporaries(targets: Iterable[PathLike]) -> None:
    """Remove the temporary files that killed writers of `targets` left (SIGKILL skips every
    cleanup), listing each folder once. Only for a caller that is now the one writer of those
    targets, e.g. the job or unit that owns them: a live writer's temporary file would go too."""
    names_by_folder: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        names_by_folder.setdefault(target.parent, set()).add(target.name)
    for folder, names in names_by_folder.items():
        _remove_temporaries(folder, names.__contains__)


def remove_leftover_temporaries_in(folder: PathLike) -> None:
    """Every temporary file that killed writers left in `folder` (not below it), for a folder with
    one writer (a training run's checkpoints/ and samples/)."""
    _remove_temporaries(Path(folder), lambda target_name: True)


def _remove_temporaries(folder: Path, is_ours: Callable[[str], bool]) -> None:
    if not folder.is_dir():
        return
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMPORARY_NAME.fullmatch(entry.name)
            if match and is_ours(match["stem"] + (match["suffix"] or "")):
                Path(entry.path).unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is a write)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicOutput:
    """A file that appears at `path` complete or not at all.

    The data goes to a hidden temporary file in the same folder (same file system, so the rename
    is atomic), unique per writer (mkstemp), with the target's extension kept because OpenCV and
    ONNX pick their format from it. `commit()` gives it the permissions the umask gives a new file
    (mkstemp's 0600 would survive the rename), fsyncs it when `fsync` (files whose loss costs work:
    checkpoints, models, engines) and renames it into place; `discard()` or an exception removes
    it. As a context manager it yields the temporary path and commits on success.
    """

    def __init__(self, path: PathLike, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".part{self.path.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self, target: PathLike | None = None) -> Path:
        """Rename the finished temporary file to `target` (default: the path it was made for)."""
        target = Path(target) if target is not None else self.path
        try:
            os.chmod(self.tmp, 0o666 & ~_umask())
            if self.fsync:
                _fsync(self.tmp)
            os.replace(self.tmp, target)
            if self.fsync:
                _fsync(target.parent)   # the rename itself survives a crash only once the folder is synced
        except BaseException:
            self.discard()
            raise
        return target

    def adopt(self, written: PathLike) -> None:
        """Take a file that a library wrote beside the temporary one as this output's content
        (OpenVINO's save_model writes the .bin next to the .xml it is given)."""
        os.replace(written, self.tmp)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: PathLike, data: bytes | memoryview, fsync: bool = False) -> Path:
    with AtomicOutput(path, fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: PathLike, text: str, fsync: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), fsync)


# --- images ---------------------------------------------------------------------------------

_quiet = {"lock": threading.Lock(), "depth": 0, "saved": 0}


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own log lines off while the block runs: a corrupt file, a camera or a codec that
    cannot be opened gets our one-line message, not OpenCV's warnings. The level is process-wide,
    so nested and concurrent blocks (decode threads) count: the last one out restores it."""
    logging = cv2.utils.logging
    with _quiet["lock"]:
        if _quiet["depth"] == 0:
            _quiet["saved"] = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet["lock"]:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                logging.setLogLevel(_quiet["saved"])



class ImageReadError(NiceganError, ValueError):
    """An image file that cannot be decoded; the message names it."""


class ImageWriteError(NiceganError, ValueError):
    """An image that cannot be encoded in the format its file name asks for."""


def read_image(path: PathLike, keep_format: bool = True) -> np.ndarray:
    """Decode one image file.

    keep_format: gray, alpha and 16-bit stay as they are (the runtime writes them back the same
    way); otherwise the result is always 8-bit, 3-channel BGR (evaluation). EXIF orientation is
    applied to JPEGs either way. Raises ImageReadError for unreadable, truncated or corrupt files."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror})") from None
    if _is_truncated_jpeg(data):
        raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker)")
    is_jpeg = data[:2].tobytes() == b"\xff\xd8"
    # JPEGs: ANYCOLOR applies the EXIF orientation (UNCHANGED ignores it); other formats may carry alpha.
    flags = (cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if is_jpeg else cv2.IMREAD_UNCHANGED) \
        if keep_format else cv2.IMREAD_COLOR
    try:
        with quiet_opencv():
            image = cv2.imdecode(data, flags) if data.size else None
    except cv2.error as exc:  # e.g. a header announcing an absurd size
        raise ImageReadError(f"{path}: not a readable image ({exc.err})") from None
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image


def _is_truncated_jpeg(data: np.ndarray) -> bool:
    # libjpeg decodes a truncated file with a grey bottom and only a warning; a complete file has
    # its last end-of-image marker after its last start-of-scan (0xFF is byte-stuffed in scans).
    raw = data.tobytes()
    return raw[:2] == b"\xff\xd8" and raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda")


def write_image(path: PathLike, image: np.ndarray, fsync: bool = False) -> Path:
    """Encode `image` in the format of `path`'s extension and write it atomically."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix, image)
    except cv2.error as exc:
        raise ImageWriteError(f"{path}: OpenCV cannot write this image as '{path.suffix}' ({exc.err})") from None
    if not ok:
        raise ImageWriteError(f"{path}: OpenCV cannot write '{path.suffix}' files")
    return write_bytes_atomic(path, encoded.tobytes(), fsync)


def pairwise_pixel_distance(images: np.ndarray) -> float:
    """Mean absolute difference in levels, averaged over the pairs of one photo's outputs (N, H, W, C) (0 for one)."""
    pairs = [(i, j) for i in range(len(images)) for j in range(i + 1, len(images))]
    if not pairs:
        return 0.0
    flat = images.reshape(len(images), -1).astype(np.float32)
    return float(np.mean([np.abs(flat[i] - flat[j]).mean() for i, j in pairs]))
