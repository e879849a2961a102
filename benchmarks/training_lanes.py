"""Training throughput of several runs at once on one CPU: one `nicegan train` with all the cores
against LANES runs at the same time with cores / LANES threads each, as `scripts/compare_msgan.sh
LANES=2` trains its variants. Small models use few cores badly (each step is many small kernels),
so on a 2-core VM two one-thread runs can make more steps in all than one two-thread run.

Each run is the real command, data loading included (`--workers 1`), on a folder of real photo
crops (scikit-image's bundled photos at 128 px, 64 px training crops of them, as the comparison
scripts train). A run's it/s is the median of its log.csv rows after the warm-up rows; the lanes'
figure is the sum of theirs. Each configuration runs `--repeats` times, alternating, and the
table gives the median.

    python benchmarks/training_lanes.py                       # MSGAN's variant: NICE-GAN light ch 32, latent 8, term 1
    python benchmarks/training_lanes.py --train-args "--arch nicegan --light --ch 32 --n-res 4"   # deterministic
"""
from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from harness import REPO, cpu_cores, format_table, load_average, median, print_environment, ratio, real_crops, spread

DEFAULT_TRAIN_ARGS = "--arch nicegan --light --ch 32 --n-res 4 --latent-dim 8 --ms-weight 1"
COMMON = ["--img-size", "64", "--load-size", "128", "--batch-size", "1", "--workers", "1", "--seed", "0",
          "--log-every", "1", "--n-samples", "0", "--snapshot-every", "0", "--no-progress"]
DOMAINS = {"trainA": 0, "trainB": 1000, "testA": 2000, "testB": 3000}   # crop seeds: disjoint crops per folder


def write_dataset(root: Path, count: int) -> Path:
    for folder, seed in DOMAINS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, crop in enumerate(real_crops(count, 128, seed)):
            cv2.imwrite(str(root / folder / f"{i:03d}.png"), crop)
    return root


def start_run(data: Path, out: Path, threads: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "nicegan.cli", "train", str(data), "--out", str(out),
               *shlex.split(args.train_args), *COMMON, "--iters", str(args.steps), "--save-every", str(args.steps),
               "--threads", str(threads)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_rate(process: subprocess.Popen, out: Path, warmup: int) -> float:
    """The median it/s of a finished run's logged steps after the first `warmup`."""
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"nicegan train failed: {(stderr.strip().splitlines() or ['no output'])[-1]}")
    with open(out / "log.csv", newline="") as f:
        rates = [float(row["it_per_s"]) for row in csv.DictReader(f)][warmup:]
    return median(rates)


def measure(data: Path, work: Path, lanes: int, threads: int, args: argparse.Namespace) -> list[float]:
    """The it/s of each of `lanes` runs started together, `threads` threads each."""
    outs = [Path(tempfile.mkdtemp(dir=work)) / "run" for _ in range(lanes)]
    processes = [start_run(data, out, threads, args) for out in outs]
    return [run_rate(p, out, args.warmup) for p, out in zip(processes, outs)]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lanes", type=int, default=2, help="runs at the same time")
    p.add_argument("--cores", type=int, default=cpu_cores(), help="threads of the single run, shared by the lanes")
    p.add_argument("--steps", type=int, default=40, help="training steps per run")
    p.add_argument("--warmup", type=int, default=10, help="first logged steps left out of each run's it/s")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--images", type=int, default=24, help="crops per dataset folder")
    p.add_argument("--train-args", default=DEFAULT_TRAIN_ARGS, help="the model's `nicegan train` options")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.cores % args.lanes:
        raise SystemExit(f"--cores {args.cores} does not split into --lanes {args.lanes}")
    lane_threads = args.cores // args.lanes
    print_environment("training throughput: one run on all cores vs runs side by side")
    print(f"   model: {args.train_args}; {' '.join(COMMON)}; {args.steps} steps a run, the first {args.warmup} "
          f"left out; {args.repeats} repeats, alternating")
    with tempfile.TemporaryDirectory(prefix="nicegan-lanes-") as tmp:
        work = Path(tmp)
        data = write_dataset(work / "data", args.images)
        single, side_by_side = [], []
        for repeat in range(1, args.repeats + 1):
            single.append(measure(data, work, 1, args.cores, args)[0])
            side_by_side.append(measure(data, work, args.lanes, lane_threads, args))
            print(f"   repeat {repeat}: one run {single[-1]:.3g} it/s; {args.lanes} runs "
                  + " + ".join(f"{r:.3g}" for r in side_by_side[-1]) + " it/s", flush=True)
    totals = [sum(rates) for rates in side_by_side]
    per_run = [rate for rates in side_by_side for rate in rates]
    rows = [[f"1 run x {args.cores} threads", f"{median(single):.3g}", spread(single), f"{median(single):.3g}",
             "1.00x"],
            [f"{args.lanes} runs x {lane_threads} threads", f"{median(totals):.3g}", spread(totals),
             f"{median(per_run):.3g}", ratio(median(totals), median(single))]]
    print()
    print(format_table(["configuration", "it/s in all (median)", "min..max", "it/s a run", "vs one run"], rows))
    print(f"load average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
