"""What a model costs: parameters and GFLOPs per image, for any checkpoint nicegan reads.

For each CHECKPOINT: the deployed path's parameters (what `nicegan translate` and the exports run:
NICE-GAN's folded encoder + generator, CycleGAN's generator), the parameters training updates
(all networks; runs written by `nicegan train` only, rebuilt from their saved options), and the
deployed path's GFLOPs (2 x MACs, counted by FlopCounterMode) for one SIZE x SIZE image. Images/s
come from `nicegan bench` on the exported model (scripts/compare_cyclegan.sh runs both).

    python benchmarks/model_cost.py runs/nice/latest.pt runs/cyclegan/latest.pt [--size 256] [--direction a2b]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness import format_table
from nicegan.export.translator import load_translator
from nicegan.models.architecture import read_any_checkpoint
from nicegan.trainer.options import TrainOptions


def trained_parameters(path: Path) -> int | None:
    """All networks' parameters of a run written by `nicegan train` (None for other files)."""
    architecture, ckpt = read_any_checkpoint(path)
    saved = (ckpt.get("train_state") or {}).get("options")
    if not saved:
        return None
    options = architecture.resolve_options(TrainOptions(**{**saved, "resume": None, "epoch_count": 1}))
    return architecture.build(options, torch.device("cpu"), None).parameter_count()


def deployed_cost(path: Path, direction: str, size: int) -> tuple[str, int, float]:
    """(architecture, parameters, GFLOPs per size x size image) of the deployed path."""
    translator, info = load_translator(path, direction)
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        translator(torch.zeros(1, 3, size, size))
    return info.arch, sum(p.numel() for p in translator.parameters()), flops.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--size", type=int, default=256, help="Square input size for the FLOP count.")
    parser.add_argument("--direction", default="a2b", choices=("a2b", "b2a"))
    args = parser.parse_args()
    rows = []
    for path in args.checkpoints:
        arch, deployed, gflops = deployed_cost(path, args.direction, args.size)
        trained = trained_parameters(path)
        rows.append([str(path), arch, f"{deployed / 1e6:.3f}", "n/a" if trained is None else f"{trained / 1e6:.3f}",
                     f"{gflops:.2f}"])
    print(format_table(["checkpoint", "arch", "deployed M params", "trained M params (all networks)",
                        f"GFLOPs per {args.size}x{args.size} image"], rows))


if __name__ == "__main__":
    main()
