"""Multi-process data-parallel training under torchrun, without DistributedDataParallel.

Why not DDP: each discriminator runs four times per iteration (twice with frozen parameters),
each generator four times, and the spectral-norm hooks rewrite `weight` and `u/v` on every
train-mode forward. DDP's reducer expects one forward/backward per module per step and rejects
or mis-handles that without `static_graph`/`find_unused_parameters` tuning. Explicit
synchronisation is simpler and exact:
- at start, rank 0 broadcasts every parameter and buffer (including spectral-norm u/v);
- before each optimizer step, the gradients are averaged with one all_reduce of a flat buffer.
Replicas then hold identical weights, so the data-independent spectral-norm power iterations
also stay identical on every rank, step after step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on CPU)."""
    if not launched_by_torchrun():
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size())


def broadcast_state(modules: Iterable[torch.nn.Module], src: int = 0) -> None:
    """Make every rank start from rank `src`'s parameters and buffers."""
    with torch.no_grad():
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src)


def average_gradients(params: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """Replace each grad by its mean over the ranks (one all_reduce of a flattened buffer).

    A missing grad counts as zeros so every rank flattens the same layout.
    """
    params = list(params)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world_size)
    offset = 0
    for p, grad in zip(params, grads):
        count = p.numel()
        grad.copy_(flat[offset:offset + count].view_as(grad))
        p.grad = grad
        offset += count


def replicas_agree(modules: Iterable[torch.nn.Module], device: torch.device) -> bool:
    """Whether every rank holds the same weights: each floating tensor's sum and sum of squares,
    in float64, compared across ranks by MIN and MAX all-reduces. Identical replicas can still
    differ in the last bits of such a sum on nodes whose CPUs reduce in another order, hence the
    relative tolerance; replicas that stopped synchronising differ by far more."""
    with torch.no_grad():
        parts = []
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                if tensor.is_floating_point():
                    flat = tensor.detach().double().flatten()
                    parts += [flat.sum(), flat.square().sum()]
        fingerprint = torch.stack(parts).to(device)
    low, high = fingerprint.clone(), fingerprint.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.allclose(low, high, rtol=1e-9, atol=1e-12))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (so all ranks stop at the same step)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def wait_for_all_ranks() -> None:
    """The end of a finished run: the main rank may still be writing its last checkpoint, and a rank that
    destroyed its gloo group meanwhile sometimes aborted in C++ ("terminate called without an active
    exception", 1 run in 8 of the two-node test on a loaded 2-core VM), failing its torchrun node."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
