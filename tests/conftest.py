from __future__ import annotations

from pathlib import Path

import pytest

from nicegan_testutils import TINY, make_trained_like, save_checkpoint, write_unpaired_dataset


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory) -> Path:
    return write_unpaired_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A light tiny checkpoint in the official layout with trained-like parameters."""
    return save_checkpoint(make_trained_like(TINY), tmp_path_factory.mktemp("ckpt") / "tiny_params_latest.pt")
