"""Multi-process training on CPU (gloo): gradients are averaged and replicas stay identical."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nicegan.models.nicegan.step import TrainStep, make_optimizers
from nicegan.trainer.checkpoint import read_checkpoint_file
from nicegan.trainer.distributed import average_gradients, broadcast_state, replicas_agree
from nicegan_testutils import TINY, make_trained_like

WORLD = 2
STEPS = 2


def states(nets) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().clone() for name, m in nets.as_dict().items() for k, v in m.state_dict().items()}


def rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    nets = make_trained_like(TINY, seed=10 + rank)  # different per rank: the broadcast must align them
    broadcast_state(nets.as_dict().values())
    initial = states(nets)
    records = []

    def recording_sync(params):
        local = [p.grad.detach().clone() for p in params]
        average_gradients(params, WORLD)
        records.append({"local": local, "synced": [p.grad.detach().clone() for p in params]})

    step = TrainStep(nets, *make_optimizers(nets, 1e-4), grad_sync=recording_sync)
    data = torch.Generator().manual_seed(100 + rank)  # different images on each rank
    for _ in range(STEPS):
        real_a, real_b = (torch.rand(1, 3, TINY.img_size, TINY.img_size, generator=data) * 2 - 1 for _ in range(2))
        step(real_a, real_b)
    torch.save({"initial": initial, "records": records, "final": states(nets)}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_average_gradients_and_stay_in_sync(tmp_path):
    mp.spawn(rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for key, value in ranks[0]["initial"].items():
        assert torch.equal(value, ranks[1]["initial"][key]), f"broadcast left {key} different"
    assert len(ranks[0]["records"]) == 2 * STEPS  # one D and one G synchronisation per step
    for rec0, rec1 in zip(ranks[0]["records"], ranks[1]["records"]):
        assert any(not torch.equal(a, b) for a, b in zip(rec0["local"], rec1["local"])), "ranks saw the same data"
        for local0, local1, synced0, synced1 in zip(rec0["local"], rec1["local"], rec0["synced"], rec1["synced"]):
            assert torch.equal(synced0, synced1)
            torch.testing.assert_close(synced0, (local0 + local1) / 2, rtol=1e-6, atol=1e-9)
    for key, value in ranks[0]["final"].items():  # parameters and spectral-norm u/v alike
        assert torch.equal(value, ranks[1]["final"][key]), f"replicas diverged at {key}"
    assert any(not torch.equal(v, ranks[0]["initial"][k]) for k, v in ranks[0]["final"].items())


TORCHRUN_ARCHS = {
    "nicegan": ["--img-size", "64", "--ch", "8", "--n-res", "2", "--n-dis", "6"],
    "cyclegan": ["--arch", "cyclegan", "--img-size", "32", "--load-size", "40", "--netG", "resnet_6blocks",
                 "--ngf", "4", "--ndf", "4"],
}


@pytest.mark.parametrize("arch", sorted(TORCHRUN_ARCHS))
def test_nicegan_train_under_torchrun(image_dataset, tmp_path, arch):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
         "-m", "nicegan.cli", "train", str(image_dataset), "--out", str(run), "--device", "cpu",
         *TORCHRUN_ARCHS[arch], "--iters", "2", "--workers", "0", "--threads", "1",
         "--n-samples", "1", "--sample-every", "2", "--log-every", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)   # the installed package, not ./cli.py
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "device cpu x 2" in proc.stderr + proc.stdout
    assert read_checkpoint_file(run / "latest.pt")["start_iter"] == 2
    assert (run / "log.csv").read_text().count("\n") == 3  # header + 2 rows: only rank 0 writes
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["A2B_0000002.png", "B2A_0000002.png"]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_train_as_one_job(image_dataset, tmp_path):
    """Two torchrun invocations (--nnodes 2, one process each) meet at a c10d rendezvous, as two
    machines would, train with gloo, and hold the same weights at every save."""
    run, port = tmp_path / "run", free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
         "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=two-nodes",
         "-m", "nicegan.cli", "train", str(image_dataset), "--out", str(run), "--device", "cpu",
         *TORCHRUN_ARCHS["nicegan"], "--iters", "3", "--save-every", "1", "--workers", "0", "--threads", "1",
         "--n-samples", "0", "--log-every", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (out, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-3000:]
    said = "".join(out + err for out, err in outputs)
    assert "device cpu x 2" in said
    assert "replicas: the 2 processes held the same weights at each of 3 checks" in said
    assert read_checkpoint_file(run / "latest.pt")["start_iter"] == 3


def agreement_main(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    nets = make_trained_like(TINY, seed=0)
    same = replicas_agree(nets.as_dict().values(), torch.device("cpu"))
    with torch.no_grad():
        if rank == 1:   # one weight of one replica moved by a tenth of an Adam step
            next(nets.gen2B.parameters()).view(-1)[0] += 1e-5
    moved = replicas_agree(nets.as_dict().values(), torch.device("cpu"))
    torch.save({"same": same, "moved": moved}, Path(out_dir) / f"agree{rank}.pt")
    dist.destroy_process_group()


def test_the_replica_check_sees_one_weight_that_differs(tmp_path):
    mp.spawn(agreement_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"agree{rank}.pt", weights_only=True)
        assert result == {"same": True, "moved": False}
