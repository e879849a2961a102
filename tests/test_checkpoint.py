"""Official checkpoints load with no conversion and ours keep the official layout."""
from __future__ import annotations

import itertools
import pickle
from dataclasses import replace

import pytest
import torch

from nicegan.models.nicegan.checkpoint import (
    NiceConfig,
    average_checkpoints,
    build_networks,
    checkpoint_dict,
    infer_config,
    load_networks,
    slim_checkpoint,
)
from nicegan.trainer.checkpoint import CheckpointError, atomic_torch_save
from nicegan_testutils import TINY, TINY_FULL, make_trained_like, save_checkpoint

OFFICIAL_KEYS = {"gen2B", "gen2A", "disA", "disB", "G_optimizer", "D_optimizer", "start_iter"}


def official_style_checkpoint(nets, step: int = 5000) -> dict:
    """What the official NICE.py `save_path` writes: state_dicts, both Adam states, start_iter."""
    g_optim = torch.optim.Adam(itertools.chain(nets.gen2B.parameters(), nets.gen2A.parameters()),
                               lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
    d_optim = torch.optim.Adam(itertools.chain(nets.disA.parameters(), nets.disB.parameters()),
                               lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
    return {"gen2B": nets.gen2B.state_dict(), "gen2A": nets.gen2A.state_dict(),
            "disA": nets.disA.state_dict(), "disB": nets.disB.state_dict(),
            "D_optimizer": d_optim.state_dict(), "G_optimizer": g_optim.state_dict(), "start_iter": step}


@pytest.mark.parametrize("config", [TINY, TINY_FULL], ids=["light", "full"])
def test_official_checkpoint_loads_with_weights_only_and_infers_config(tmp_path, config):
    nets = make_trained_like(config)
    ckpt = official_style_checkpoint(nets)
    ckpt["disA"]["total_ops"] = torch.zeros(1)  # left behind by old thop versions (NICE-GAN #4)
    ckpt["gen2B"]["UpBlock0.total_params"] = torch.zeros(1)
    path = tmp_path / "cat2dog_params_latest.pt"
    torch.save(ckpt, path)  # plain torch.save, as the official code does

    loaded, raw = load_networks(path, default_img_size=config.img_size)
    assert loaded.config == config
    assert raw["start_iter"] == 5000
    for name, module in loaded.as_dict().items():
        assert not module.training
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, getattr(nets, name).state_dict()[key], rtol=0, atol=0)


def test_light_img_size_defaults_to_official_256_without_config():
    ckpt = official_style_checkpoint(make_trained_like(TINY))
    assert infer_config(ckpt).img_size == 256
    assert infer_config({**ckpt, "config": {"img_size": 96}}).img_size == 96


def test_inferred_depths_for_non_default_architecture():
    config = NiceConfig(img_size=32, ch=4, n_res=3, n_dis=8, light=False)
    nets = build_networks(config)
    assert infer_config(official_style_checkpoint(nets)) == config


def test_project_checkpoint_is_official_layout_plus_config(tmp_path):
    nets = make_trained_like(TINY)
    g_optim = torch.optim.Adam(itertools.chain(nets.gen2B.parameters(), nets.gen2A.parameters()))
    d_optim = torch.optim.Adam(itertools.chain(nets.disA.parameters(), nets.disB.parameters()))
    path = tmp_path / "latest.pt"
    atomic_torch_save(checkpoint_dict(nets, g_optim, d_optim, 42), path)

    raw = torch.load(path, weights_only=True)
    assert set(raw) == OFFICIAL_KEYS | {"config"}
    assert raw["config"] == TINY.to_dict()
    fresh = build_networks(TINY)  # the official classes' names: strict loading is the compatibility test
    for name, module in fresh.as_dict().items():
        module.load_state_dict(raw[name], strict=True)
    assert [f.name for f in tmp_path.iterdir()] == ["latest.pt"]


def test_atomic_save_failure_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_torch_save({"step": 1}, path)
    with pytest.raises(Exception):
        atomic_torch_save({"bad": lambda: None}, path)  # lambdas cannot be pickled
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["latest.pt"]


class Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the hand-made pickle below
@pytest.mark.parametrize("content, message", [
    (None, "no such checkpoint file"),
    (b"\x00garbage" * 10, "not a PyTorch checkpoint"),
    (bytes(range(256)) * 8, "not a PyTorch checkpoint"),
    ({"model": {}}, "not a NICE-GAN checkpoint"),
    ("pickle", "not a PyTorch checkpoint"),
    ("code", r"holds a Python object \(print\).* never run code"),
])
def test_bad_checkpoints_fail_with_one_clear_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "pickle":
        path.write_bytes(pickle.dumps({"gen2B": Evil()}))  # weights_only must refuse arbitrary objects
    elif content == "code":
        torch.save({"gen2B": {}, "hook": print}, path)    # a torch file that references code
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_networks(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "weights_only=False" not in str(info.value)   # torch's advice; never ours


def test_architecture_mismatch_is_reported(tmp_path):
    ckpt = official_style_checkpoint(make_trained_like(TINY))
    del ckpt["gen2B"]["gamma.weight"]
    path = tmp_path / "broken.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="gen2B does not match"):
        load_networks(path)


def test_slim_fp16_checkpoint_keeps_the_networks_and_drops_the_training_state(tmp_path):
    nets = make_trained_like(TINY)
    g_optim = torch.optim.Adam(nets.gen2B.parameters())
    source = tmp_path / "run_latest.pt"
    atomic_torch_save(checkpoint_dict(nets, g_optim, None, 1234, train_state={"step": 1234}), source)
    slim = slim_checkpoint(source, tmp_path / "slim.pt")

    raw = torch.load(slim, weights_only=True)
    assert set(raw) == OFFICIAL_KEYS | {"config"} and raw["G_optimizer"] == {} and raw["start_iter"] == 1234
    assert all(v.dtype == torch.float16 for v in raw["gen2B"].values() if v.is_floating_point())
    full_precision = slim_checkpoint(source, tmp_path / "slim32.pt", half=False)
    assert slim.stat().st_size < 0.6 * full_precision.stat().st_size < 0.6 * source.stat().st_size
    loaded, _ = load_networks(slim)
    x = torch.rand(1, 3, TINY.img_size, TINY.img_size) * 2 - 1
    with torch.no_grad():
        want = nets.gen2B(nets.disA(x)[4])
        got = loaded.gen2B(loaded.disA(x)[4])
    assert loaded.config == TINY and (got - want).abs().max() < 1e-2   # FP16 weights, FP32 arithmetic


def test_slim_checkpoint_never_overwrites_its_input(tmp_path):
    source = tmp_path / "a.pt"
    atomic_torch_save(checkpoint_dict(make_trained_like(TINY), None, None, 1), source)
    before = source.read_bytes()
    with pytest.raises(CheckpointError, match="is an input checkpoint"):
        slim_checkpoint(source, tmp_path / "." / "a.pt")
    assert source.read_bytes() == before


def test_residual_flag_is_stored_in_config_and_official_files_are_not_residual(tmp_path):
    residual = replace(TINY, residual=True)
    path = save_checkpoint(make_trained_like(residual), tmp_path / "residual.pt")
    assert load_networks(path)[0].config == residual
    assert load_networks(path)[0].gen2B.residual
    official = save_checkpoint(make_trained_like(residual), tmp_path / "official.pt", with_config=False)
    assert not load_networks(official)[0].config.residual


def _snapshots(tmp_path, seeds=(0, 1, 2), config=TINY) -> list:
    paths = []
    for seed in seeds:
        path = tmp_path / f"params_{seed:07d}.pt"
        atomic_torch_save(checkpoint_dict(make_trained_like(config, seed), None, None, 100 * (seed + 1)), path)
        paths.append(path)
    return paths


def test_averaged_checkpoint_holds_the_mean_weights_and_top_singular_vectors(tmp_path):
    paths = _snapshots(tmp_path)
    out, steps = average_checkpoints(paths, tmp_path / "avg.pt", half=False)
    assert steps == [100, 200, 300]
    raw = torch.load(out, weights_only=True)
    assert set(raw) == OFFICIAL_KEYS | {"config"} and raw["start_iter"] == 300
    assert raw["config"]["averaged_steps"] == [100, 200, 300]
    sources = [torch.load(p, weights_only=True) for p in paths]
    for name in ("gen2B", "gen2A", "disA", "disB"):
        for key, value in raw[name].items():
            if key.endswith(("weight_u", "weight_v")):
                continue
            mean = sum(s[name][key].double() for s in sources) / 3
            assert torch.allclose(value.double(), mean, atol=1e-6), (name, key)
    for key in [k for k in raw["disA"] if k.endswith("weight_orig")]:
        prefix = key[:-len("orig")]
        weight = raw["disA"][key].double().reshape(raw["disA"][key].shape[0], -1)
        u, v = raw["disA"][prefix + "u"].double(), raw["disA"][prefix + "v"].double()
        sigma = torch.linalg.matrix_norm(weight, ord=2)
        assert float(u @ weight @ v) == pytest.approx(float(sigma), rel=1e-4), key
    nets, _ = load_networks(out)
    assert nets.config == TINY  # the extra config key is ignored on load


def test_averaging_refuses_other_architectures_single_files_and_its_own_inputs(tmp_path):
    paths = _snapshots(tmp_path, seeds=(0, 1))
    other = _snapshots(tmp_path / "x" if (tmp_path / "x").mkdir() is None else None, seeds=(5,),
                       config=replace(TINY, n_res=1))[0]
    with pytest.raises(CheckpointError, match="differs from .* average snapshots of one run only") as info:
        average_checkpoints([*paths, other], tmp_path / "avg.pt")
    assert str(other) in str(info.value)
    with pytest.raises(CheckpointError, match="at least two checkpoints"):
        average_checkpoints(paths[:1], tmp_path / "avg.pt")
    before = paths[1].read_bytes()
    with pytest.raises(CheckpointError, match="is an input checkpoint"):
        average_checkpoints(paths, paths[1])
    assert paths[1].read_bytes() == before and not (tmp_path / "avg.pt").exists()


def test_export_pt_cli_averages_several_checkpoints_and_slims_one(tmp_path):
    from click.testing import CliRunner

    from nicegan.cli import cli
    from nicegan.export.translator import load_translator
    paths = _snapshots(tmp_path, seeds=(0, 1))
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "pt", *map(str, paths), "-o", str(tmp_path / "avg.pt"), "--fp32"])
    assert result.exit_code == 0, result.output
    assert "averaged 2 checkpoints (steps 100, 200)" in result.output and "wrote" in result.output
    translator, info = load_translator(tmp_path / "avg.pt")
    assert info.step == 200 and info.averaged_steps == "100,200"
    with torch.no_grad():
        y = translator(torch.rand(1, 3, TINY.img_size, TINY.img_size) * 2 - 1)
    assert y.shape == (1, 3, TINY.img_size, TINY.img_size) and torch.isfinite(y).all()
    single = runner.invoke(cli, ["export", "pt", str(paths[0]), "-o", str(tmp_path / "one.pt")])
    assert single.exit_code == 0 and "averaged" not in single.output
    assert load_translator(tmp_path / "one.pt")[1].averaged_steps == ""
    refused = runner.invoke(cli, ["export", "pt", *map(str, paths), "-o", str(paths[0])])
    assert refused.exit_code == 1 and "is an input checkpoint" in refused.output
