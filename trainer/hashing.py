"""File hashing without torch, so the TensorRT runtime path (Jetson) can use it too."""
from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
