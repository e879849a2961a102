from __future__ import annotations

from pathlib import Path

import pytest

from nicegan_testutils import TINY, make_trained_like, save_checkpoint, write_unlabelled_dataset, write_unpaired_dataset


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory) -> Path:
    return write_unpaired_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def unlabelled_dataset(tmp_path_factory) -> Path:
    """TUNIT's data: DATA_ROOT/train and test, real photo crops in one sub-folder per photo."""
    return write_unlabelled_dataset(tmp_path_factory.mktemp("unlabelled"))


# A TUNIT run small enough for tests: 32 px, width 8, 8-d styles, 2 pseudo-domains, batch 4.
TUNIT_ARGS = ["--arch", "tunit", "--img-size", 32, "--ch", 8, "--sty-dim", 8, "--k", 2, "--batch-size", 4,
              "--workers", 0, "--threads", 1, "--n-samples", 2, "--log-every", 1, "--snapshot-every", 0]


@pytest.fixture(scope="session")
def tunit_run(unlabelled_dataset, tmp_path_factory) -> Path:
    """Four real training steps: two of the guiding network alone, two joint (G_EMA from the last)."""
    from click.testing import CliRunner

    from nicegan.cli import cli
    run_dir = tmp_path_factory.mktemp("tunit") / "run"
    args = ["train", unlabelled_dataset, "--out", run_dir, *TUNIT_ARGS, "--iters", 4, "--separated", 2,
            "--ema-start", 3, "--sample-every", 4, "--save-every", 4]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return run_dir


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
