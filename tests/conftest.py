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


# --- runtime (issue 4): exported tiny models, built once per session ------------------------

@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint exported by the export stage: uint8 NHWC BGR I/O (the runtime default)."""
    from nicegan.export.to_onnx import export_onnx
    out = tmp_path_factory.mktemp("onnx") / "tiny_uint8.onnx"
    return export_onnx(tiny_checkpoint, out, io="uint8", parity=False, log=lambda _: None).output


@pytest.fixture(scope="session")
def tiny_float_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The same model with float NCHW RGB [-1, 1] I/O (converted inside the ONNX Runtime backend)."""
    from nicegan.export.to_onnx import export_onnx
    out = tmp_path_factory.mktemp("onnx") / "tiny_float.onnx"
    return export_onnx(tiny_checkpoint, out, io="float", parity=False, log=lambda _: None).output


# --- export (issue 3) ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_single_thread():
    """Tiny models: torch's thread hand-offs cost more than their ops (5x on 2 shared cores)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
