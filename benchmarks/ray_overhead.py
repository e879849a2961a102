"""What `--engine ray` costs against the local engine on the same machine, in one run.

Each job is a whole `nicegan translate` process over the same folder of photos, timed from start
to exit (interpreter, model loading and, for Ray, starting a local cluster and its workers
included), median of `--repeats` runs into an empty output folder:
- the local engine (one process, the backend's own threads);
- `--engine ray` with 1 worker and with 2 workers (1 CPU each);
- `--shard 0/1` (the same units, run in-process: the cost of cutting a job into units alone).
Ray's fixed start-up is reported on its own: the same Ray job on a folder of one image.

On a machine with few cores this shows overhead, not scaling: two 1-thread workers cannot beat
one process that already uses both cores. Scaling needs more machines, or GPUs: on a machine
with GPUs, run `--gpus-per-worker 1` (or 0.5) against the local engine with
`--backend onnxruntime --device cuda` (see the command printed at the end).

    python benchmarks/ray_overhead.py --images 240 --repeats 3
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2

from harness import REPO, format_table, median, print_environment, ratio, real_crops, spread, workdir

BUNDLED = REPO / "runtime" / "assets" / "models" / "vintage_a2b.onnx"


def write_photos(folder: Path, count: int, size: int) -> Path:
    if folder.is_dir() and len(list(folder.glob("*.png"))) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, crop in enumerate(real_crops(count, size)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), crop)   # real_crops gives BGR
    return folder


def timed_job(command: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"job failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=BUNDLED)
    p.add_argument("--backend", default="onnxruntime", help="the same backend for every job")
    p.add_argument("--images", type=int, default=240)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--part-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", default=None)
    args = p.parse_args()
    print_environment("--engine ray against the local engine, whole translate jobs")
    folder = workdir(args.workdir) / "ray_overhead"
    photos = write_photos(folder / f"photos_{args.size}", args.images, args.size)
    one = write_photos(folder / "one_photo", 1, args.size)
    out = folder / "out"
    base = [sys.executable, "-m", "nicegan.cli", "translate"]
    model = ["-m", str(args.model), "--backend", args.backend, "--no-progress", "--part-size", str(args.part_size)]
    jobs = [("local engine", base + [str(photos), str(out)] + model),
            ("--shard 0/1 (units, in-process)", base + [str(photos), str(out)] + model + ["--shard", "0/1"]),
            ("--engine ray, 1 worker", base + [str(photos), str(out)] + model + ["--engine", "ray", "--num-workers", "1"]),
            ("--engine ray, 2 workers", base + [str(photos), str(out)] + model + ["--engine", "ray", "--num-workers", "2"]),
            ("--engine ray, 2 workers, 1 image (start-up)",
             base + [str(one), str(out)] + model + ["--engine", "ray", "--num-workers", "2"])]
    rows = []
    for name, command in jobs:
        times = [timed_job(command, out) for _ in range(args.repeats)]
        count = 1 if "1 image" in name else args.images
        print(f"   {name}: {median(times):.2f} s", flush=True)
        rows.append([name, count, median(times), spread(times), count / median(times)])
    local = rows[0][4]
    table = [row + [ratio(row[4], local) if row[1] == args.images else "-"] for row in rows]
    print()
    print(f"{args.images} photos of {args.size}x{args.size}, backend {args.backend}, part size {args.part_size}; "
          f"median of {args.repeats} whole jobs; 'vs local' = images/s over the local engine's, this run")
    print(format_table(["job", "images", "wall s (median)", "min..max s", "images/s", "vs local"], table))
    print("\nOn a machine with GPUs (one worker per GPU, or two per GPU with 0.5):")
    print(f"   nicegan translate PHOTOS OUT -m MODEL.engine --engine ray --gpus-per-worker 1 --cpus-per-worker 4")


if __name__ == "__main__":
    main()
