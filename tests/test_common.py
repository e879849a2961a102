"""nicegan.common: the one atomic-write helper, and that every writer of the project uses it."""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from nicegan.common import (
    AtomicOutput,
    ImageWriteError,
    read_image,
    remove_leftover_temporaries,
    write_bytes_atomic,
    write_image,
)
from nicegan.trainer.checkpoint import atomic_torch_save

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask_002():
    """A group-writable umask (a shared Docker volume's), so 0600 and 0644 would both be wrong."""
    previous = os.umask(0o002)
    yield 0o664
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_permissions_the_umask_gives(tmp_path, umask_002):
    """mkstemp creates 0600 files; renamed as they are, a Docker-built engine was unreadable by the host."""
    assert mode(write_bytes_atomic(tmp_path / "model.engine", b"plan", fsync=True)) == umask_002
    atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "latest.pt")
    assert mode(tmp_path / "latest.pt") == umask_002
    write_image(tmp_path / "samples" / "A2B.png", np.zeros((8, 8, 3), np.uint8))
    assert mode(tmp_path / "samples" / "A2B.png") == umask_002
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert mode(plain) == umask_002   # what open() gives: the same


def test_readers_never_see_half_a_file_and_failures_leave_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with AtomicOutput(target) as tmp:
            tmp.write_bytes(b"half of the new")
            assert target.read_bytes() == b"old" and tmp.parent == tmp_path and tmp.name.startswith(".")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_two_writers_of_one_output_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "clip.mp4"
    first, second = AtomicOutput(target), AtomicOutput(target)
    assert first.tmp != second.tmp and first.tmp.suffix == second.tmp.suffix == ".mp4"   # codecs read the suffix
    first.tmp.write_bytes(b"first")
    second.tmp.write_bytes(b"second")
    second.commit()
    first.discard()
    assert target.read_bytes() == b"second" and not first.tmp.exists()


def test_a_killed_writers_temporary_file_is_removed_and_only_its(tmp_path):
    """SIGKILL skips discard(): the next writer of the same item removes what the dead one left,
    and nothing of another output's (a name that only starts the same) or anything else."""
    killed = AtomicOutput(tmp_path / "009.png")
    killed.tmp.write_bytes(b"half a png")
    other = AtomicOutput(tmp_path / "009.x.png")          # a live writer of another output
    notes = tmp_path / ".009.notes.part.png"
    notes.write_bytes(b"not ours")
    write_image(tmp_path / "009.png", np.zeros((4, 4, 3), np.uint8))
    remove_leftover_temporaries([tmp_path / "009.png"])
    assert not killed.tmp.exists() and other.tmp.exists() and notes.exists() and (tmp_path / "009.png").exists()


def test_concurrent_writers_each_land_a_whole_file(tmp_path):
    target = tmp_path / "shared.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=write_bytes_atomic, args=(target, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads and sorted(p.name for p in tmp_path.iterdir()) == ["shared.bin"]


def test_commit_to_another_name_keeps_the_work(tmp_path):
    output = AtomicOutput(tmp_path / "clip.mp4")
    output.tmp.write_bytes(b"frames so far")
    output.commit(tmp_path / "clip.partial.mp4")
    assert (tmp_path / "clip.partial.mp4").read_bytes() == b"frames so far" and not (tmp_path / "clip.mp4").exists()


def test_write_image_names_the_file_for_an_unknown_format(tmp_path):
    with pytest.raises(ImageWriteError, match="x.unknownext"):
        write_image(tmp_path / "x.unknownext", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
    image = (np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    write_image(tmp_path / "x.png", image)
    assert np.array_equal(read_image(tmp_path / "x.png"), image)   # PNG is lossless: exact


def test_no_module_renames_files_itself():
    """One helper: every other os.replace / mkstemp / .tmp rename in the package is a second variant."""
    offenders = []
    for path in sorted(PACKAGE.glob("**/*.py")):
        if path.parts[len(PACKAGE.parts)] in ("tests", "benchmarks", "scripts", ".cache", "build") \
                or path.name == "common.py":
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(PACKAGE)}: {needle}" for needle in
                      ("os.replace(", "os.rename(", "mkstemp(", ".replace(self.run_dir", "NamedTemporaryFile(")
                      if needle in text]
    assert offenders == []
