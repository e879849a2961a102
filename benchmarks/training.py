"""Training iterations/s and peak memory: the project's TrainStep vs the official loop's behaviour.

The official step is tests/official_step.py, a line-by-line transcription of NICE.py's D and G
steps (autograd graphs on every forward, the D-step fakes generated with grads then detached,
the G backward computing discriminator gradients that are thrown away, losses read back with
.item() every step as its progress print does). The project step is models.nicegan.step.TrainStep.
Both run the same networks (same seed), optimizers, batch and precision; each configuration runs
in a fresh process so its peak memory is its own (CPU: ru_maxrss; CUDA: max_memory_allocated).
Batches are fixed tensors made from real photos: data loading is excluded on both sides.
The official code has no mixed precision; its "autocast" rows wrap the same step in
torch.autocast to show what AMP alone would give it (fp16 there runs without loss scaling).

    python benchmarks/training.py                              # CPU: ch 32, 128 px, fp32 and bf16
    python benchmarks/training.py --device cuda --ch 64 --img-size 256 --amp off,fp16 --steps 30 --warmup 5
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from harness import (
    REPO,
    cpu_cores,
    format_table,
    load_average,
    median,
    print_environment,
    ratio,
    real_crops,
    spread,
    time_calls,
)
from nicegan.models.nicegan.checkpoint import NiceConfig, build_networks
from nicegan.models.nicegan.step import TrainStep, make_optimizers
from nicegan.trainer.step import AMP_DTYPES
from tests.official_step import official_optimizers, official_step

IMPLEMENTATIONS = ("official", "project")


def image_batch(count: int, size: int, seed: int, device: torch.device) -> torch.Tensor:
    """count RGB crops of real photos as NCHW in [-1, 1]."""
    crops = [torch.from_numpy(c[..., ::-1].copy()) for c in real_crops(count, size, seed)]
    return (torch.stack(crops).permute(0, 3, 1, 2).float() / 127.5 - 1.0).to(device)


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def worker(args: argparse.Namespace) -> None:
    """One configuration, in its own process: prints one JSON line with step times and memory."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = NiceConfig(img_size=args.img_size, ch=args.ch, n_res=args.n_res, n_dis=args.n_dis, light=True)
    nets = build_networks(config)
    for module in nets.as_dict().values():
        module.to(device).train()
    real_a = image_batch(args.batch_size, args.img_size, 1, device)
    real_b = image_batch(args.batch_size, args.img_size, 50, device)
    dtype = AMP_DTYPES[args.amp]
    if args.impl == "official":
        g_optim, d_optim = official_optimizers(nets.gen2B, nets.gen2A, nets.disA, nets.disB)

        def step() -> None:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                official_step(nets.gen2B, nets.gen2A, nets.disA, nets.disB, g_optim, d_optim, real_a, real_b)
    else:
        g_optim, d_optim = make_optimizers(nets, 1e-4)
        train_step = TrainStep(nets, g_optim, d_optim, amp=args.amp, device=device)

        def step() -> None:
            train_step(real_a, real_b)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # the project trainer sets it; both get it here
    rss_before = current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_calls(step, args.warmup, args.steps)
    result = {"times": times, "rss_before_mib": rss_before,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print("RESULT " + json.dumps(result))


def run_config(args: argparse.Namespace, impl: str, amp: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--impl", impl, "--amp", amp,
               "--device", args.device, "--threads", str(args.threads), "--img-size", str(args.img_size),
               "--ch", str(args.ch), "--n-res", str(args.n_res), "--n-dis", str(args.n_dis),
               "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:120]}
    return json.loads(lines[-1][len("RESULT "):])


def table(results: dict[tuple[str, str], dict], cuda: bool) -> str:
    def rate(key: tuple[str, str]) -> float | None:
        r = results.get(key, {})
        return 1 / median(r["times"]) if "times" in r else None

    baseline = rate(("official", "off"))
    rows = []
    for (impl, amp), r in results.items():
        name = "official loop" + (" + autocast" if amp != "off" else "") if impl == "official" else "project TrainStep"
        if "error" in r:
            rows.append([name, amp, "failed", r["error"], "", "", "", "", ""])
            continue
        memory = [f"{r['cuda_peak_mib']:.0f}"] if cuda else [f"{r['peak_rss_mib']:.0f}",
                                                              f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f}"]
        rows.append([name, amp, f"{rate((impl, amp)):.3g}", spread([1 / t for t in r["times"]]),
                     f"{median(r['times']) * 1e3:.0f}", *memory, ratio(rate((impl, amp)), baseline),
                     ratio(rate((impl, amp)), rate(("official", amp)))])
    memory_headers = ["CUDA peak allocated MiB"] if cuda else ["peak RSS MiB", "RSS growth in training MiB"]
    return format_table(["step", "amp", "it/s (median)", "min..max it/s", "ms/it", *memory_headers,
                         "vs official fp32", "vs official same amp"], rows)


def parse_args() -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--img-size", type=int, default=256 if cuda else 128)
    p.add_argument("--ch", type=int, default=64 if cuda else 32)
    p.add_argument("--n-res", type=int, default=6)
    p.add_argument("--n-dis", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--amp", default="off,fp16" if cuda else "off,bf16", help="comma-separated: off, bf16, fp16")
    p.add_argument("--impl", default=",".join(IMPLEMENTATIONS), help="official, project or both")
    p.add_argument("--steps", type=int, default=8, help="timed iterations per configuration (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=cpu_cores(), help="torch CPU threads, the same for every run")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    print_environment("training: project TrainStep vs the official loop")
    print(f"   config: light, ch {args.ch}, n_res {args.n_res}, n_dis {args.n_dis}, {args.img_size} px, "
          f"batch {args.batch_size}, device {args.device}, {args.threads} threads; warm-up {args.warmup}, "
          f"{args.steps} timed iterations per configuration, each in a fresh process")
    results = {}
    for amp in args.amp.split(","):
        for impl in args.impl.split(","):
            results[(impl, amp)] = run_config(args, impl, amp)
            r = results[(impl, amp)]
            print(f"   {impl} amp={amp}: " + (f"{1 / median(r['times']):.3g} it/s" if "times" in r
                                              else f"failed: {r['error']}"), flush=True)
    print()
    print(table(results, args.device.startswith("cuda")))
    print(f"load average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
