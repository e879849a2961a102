"""Whole jobs: `nicegan translate` on a folder of 256x256 images vs an official-style test job,
and the video pipeline's efficiency (end-to-end frames/s over pure inference on the same backend).

Both folder jobs run as subprocesses and are timed from start to exit: interpreter and library
start-up, model loading, decoding, inference and writing all count. The official-style job does
what `NICE.py test` does: load the checkpoint (all four networks), then per image PIL read + RGB,
square resize, normalise, the full disA forward (heads included, no torch.no_grad), gen2B,
x*0.5+0.5, RGB->BGR, *255 and cv2.imwrite, one image at a time.

    python benchmarks/translate_job.py                  # 24 images, 3 repeats, the demo clip
    python benchmarks/translate_job.py --images 96 --repeats 5 --profile
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from harness import (
    DEFAULT_CONFIG,
    REPO,
    format_table,
    fp32_onnx,
    load_average,
    median,
    print_environment,
    ratio,
    real_crops,
    spread,
    time_calls,
    trained_like_checkpoint,
    workdir,
)

DEFAULT_VIDEO = REPO / "runtime" / "assets" / "bigbuckbunny_320x180.mp4"
END_TO_END = re.compile(r"end-to-end ([0-9.]+)")
THROUGHPUT = re.compile(r"^throughput \(frames/s\):.*$", re.MULTILINE)
BACKEND_LINE = re.compile(r"^backend: .*$", re.MULTILINE)


# --- the official-style job (runs in its own process) ----------------------------------------


def official_job(checkpoint: Path, input_dir: Path, output_dir: Path, img_size: int) -> None:
    import torch
    from PIL import Image

    from nicegan.models.nicegan.checkpoint import load_networks
    from nicegan.trainer.data import eval_transform, list_images
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")   # NICE.py's --device cuda default
    nets, _ = load_networks(checkpoint, img_size)
    dis, gen = nets.disA.to(device).eval(), nets.gen2B.to(device).eval()
    transform = eval_transform(img_size)
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in list_images(input_dir):
        real_a = transform(Image.open(path).convert("RGB")).unsqueeze(0).to(device)
        _, _, _, _, real_a_z = dis(real_a)
        fake_a2b = gen(real_a_z)
        image = fake_a2b[0].detach().cpu().numpy().transpose(1, 2, 0) * 0.5 + 0.5
        cv2.imwrite(str(output_dir / path.name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) * 255.0)


# --- jobs as subprocesses --------------------------------------------------------------------


def nicegan_command() -> list[str]:
    exe = shutil.which("nicegan")
    if exe is None:
        sys.exit("the `nicegan` command is not on PATH: pip install -e . in the repository first")
    return [exe]


def run_job(command: list[str], output: Path) -> tuple[float, str]:
    """Wall seconds of one job into a fresh output folder, and its combined output."""
    shutil.rmtree(output, ignore_errors=True)
    began = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"job failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def folder_jobs(args: argparse.Namespace, checkpoint: Path, model: Path, images: Path,
                scratch: Path) -> list[list[object]]:
    official = [sys.executable, str(Path(__file__).resolve()), "official-job", "--img-size", str(args.size),
                str(checkpoint), str(images)]
    translate = nicegan_command() + ["translate", str(images)]
    jobs = [("official-style test job (PyTorch, full disA)", official, []),
            (f"nicegan translate -m {model.name} (auto)", translate, ["-m", str(model), "--no-progress"]),
            (f"nicegan translate -m {model.name} --precision fp32", translate,
             ["-m", str(model), "--no-progress", "--precision", "fp32"]),
            (f"nicegan translate -m {model.name} --backend onnxruntime", translate,
             ["-m", str(model), "--no-progress", "--backend", "onnxruntime"]),
            (f"nicegan translate -m {model.name} --backend onnxruntime --batch-size 4", translate,
             ["-m", str(model), "--no-progress", "--backend", "onnxruntime", "-b", "4"]),
            ("nicegan translate, PyTorch backend (.pt, auto)", translate, ["-m", str(checkpoint), "--no-progress"])]
    results = []
    for name, command, options in jobs:
        out = scratch / "out"
        times, pipeline = [], []
        for _ in range(args.repeats):
            seconds, text = run_job(command + [str(out)] + options, out)
            written = len(list(out.iterdir()))
            if written != args.images:
                sys.exit(f"{name}: wrote {written} of {args.images} images\n{text}")
            times.append(seconds)
            pipeline += [float(v) for v in END_TO_END.findall(text)]
        rate = args.images / median(times)
        backend = BACKEND_LINE.search(text)
        print(f"   {name}: {median(times):.2f} s ({rate:.3g} images/s)"
              + (f"\n      {backend.group(0)}" if backend else ""), flush=True)
        results.append([name, args.images, median(times), spread(times), rate,
                        f"{median(pipeline):.3g}" if pipeline else "-"])
    baseline = results[0][4]
    return [row + [ratio(row[4], baseline)] for row in results]


# --- video: pipeline vs pure inference --------------------------------------------------------


def read_frames(video: Path) -> list[np.ndarray]:
    """Every frame, decoded by the runtime's own video source."""
    from nicegan.runtime.sources import open_source
    source = open_source(str(video))
    try:
        frames = [decoded.read() for decoded in source.frames(lambda item: False)]
    finally:
        source.close()
    if not frames:
        sys.exit(f"{video}: no frames could be decoded")
    return frames


def pure_inference_fps(backend, frames: list[np.ndarray], batch: int, repeats: int) -> list[float]:
    """Frames/s of the backend alone over the clip's own frames (same sizes, same batching)."""
    from nicegan.runtime.frames import SizePolicy
    policy = SizePolicy(backend.info)
    fitted = [policy.fit(frame)[0] for frame in frames]
    batches = [np.stack(fitted[i:i + batch]) for i in range(0, len(fitted), batch)]

    def run_clip() -> None:
        for frames_batch in batches:
            backend.infer(frames_batch)
    return [len(frames) / t for t in time_calls(run_clip, warmup=1, repeats=repeats)]


def video_job(args: argparse.Namespace, model: Path, scratch: Path) -> tuple[list[list[object]], str]:
    from nicegan.runtime.backends import open_backend
    from nicegan.runtime.pipeline import default_batch_size
    frames = read_frames(args.video)
    with open_backend(model) as backend:
        batch = args.video_batch or default_batch_size(backend)
        pure = pure_inference_fps(backend, frames, batch, args.repeats)
        name = f"{backend.name} on {backend.device}"
    out = scratch / "clip.mp4"
    command = nicegan_command() + ["translate", str(args.video), str(out), "-m", str(model), "--no-progress",
                                   "--overwrite", "--audio", "none", "-b", str(batch)]
    walls, pipeline, stages = [], [], ""
    for _ in range(args.repeats):
        began = time.perf_counter()
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        walls.append(time.perf_counter() - began)
        text = done.stdout + done.stderr
        if done.returncode != 0 or not END_TO_END.search(text):
            sys.exit(f"video job failed: {' '.join(command)}\n{text}")
        pipeline.append(float(END_TO_END.search(text).group(1)))
        stages = THROUGHPUT.search(text).group(0)
    written = int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT))
    h, w = frames[0].shape[:2]
    rows = [[f"pure inference, {name}, batch {batch}", f"{w}x{h}", len(frames), median(pure),
             spread(pure), "1.00"],
            ["nicegan translate pipeline (decode+infer+encode, model loaded)", f"{w}x{h}", written, median(pipeline),
             spread(pipeline), f"{median(pipeline) / median(pure):.2f}"],
            ["nicegan translate whole process (start-up included)", f"{w}x{h}", written,
             len(frames) / median(walls), spread([len(frames) / t for t in walls]),
             f"{len(frames) / median(walls) / median(pure):.2f}"]]
    return rows, stages


# --- profile ---------------------------------------------------------------------------------


def profile_translate(model: Path, images: Path, scratch: Path, top: int = 15) -> str:
    """cProfile of one in-process `nicegan translate` folder job (main thread: the inference loop;
    the decode/encode threads show up as the time it waits on their queues)."""
    from click.testing import CliRunner

    from nicegan.cli import cli
    out = scratch / "profiled"
    shutil.rmtree(out, ignore_errors=True)
    profiler = cProfile.Profile()
    profiler.enable()
    result = CliRunner().invoke(cli, ["translate", str(images), str(out), "-m", str(model), "--no-progress"])
    profiler.disable()
    if result.exit_code != 0:
        sys.exit(f"profiled job failed: {result.output}")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# --- main ------------------------------------------------------------------------------------


def write_images(folder: Path, count: int, size: int, ext: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob(f"*.{ext}"))
    if len(existing) != count:
        for path in existing:
            path.unlink()
        for i, crop in enumerate(real_crops(count, size, seed=100)):
            cv2.imwrite(str(folder / f"photo_{i:04d}.{ext}"), crop)
    return folder


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode")
    job = sub.add_parser("official-job", help="(internal) the official-style test job, timed by the parent")
    job.add_argument("checkpoint", type=Path)
    job.add_argument("input_dir", type=Path)
    job.add_argument("output_dir", type=Path)
    job.add_argument("--img-size", type=int, default=256)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a light checkpoint [default: trained-like random weights, ch 64, n_res 6, n_dis 7]")
    p.add_argument("--workdir", default=None, help="generated checkpoint, export and images [default: $TMPDIR]")
    p.add_argument("--images", type=int, default=24, help="256x256 photos in the folder job")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ext", default="jpg", help="image format of the folder job (inputs and outputs)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each job; medians are reported")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="clip for the pipeline-efficiency rows")
    p.add_argument("--model", type=Path, default=None,
                   help="model for the nicegan translate and video rows, e.g. an .engine on a GPU "
                        "[default: the checkpoint's FP32 ONNX export]")
    p.add_argument("--video-batch", type=int, default=0,
                   help="--batch-size of the video job and its pure-inference twin [default: the runtime's, "
                        "1 on CPU, 8 on GPU]")
    p.add_argument("--skip-video", action="store_true")
    p.add_argument("--profile", action="store_true", help="also cProfile one in-process folder job")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.mode == "official-job":
        official_job(args.checkpoint, args.input_dir, args.output_dir, args.img_size)
        return
    print_environment("whole jobs: nicegan translate vs the official-style test job")
    folder = workdir(args.workdir)
    checkpoint = args.checkpoint or trained_like_checkpoint(folder, DEFAULT_CONFIG)
    model = args.model or fp32_onnx(checkpoint, folder)
    images = write_images(folder / f"photos_{args.size}", args.images, args.size, args.ext)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        scratch = Path(tmp)
        rows = folder_jobs(args, checkpoint, model, images, scratch)
        print()
        print(f"folder job: {args.images} photos of {args.size}x{args.size} ({args.ext}) in and out; "
              f"median of {args.repeats} runs; images/s = images / job wall time; 'vs official' is this run's ratio")
        print(format_table(["job", "images", "wall s (median)", "min..max s", "images/s", "pipeline e2e fps",
                            "vs official"], rows))
        if not args.skip_video:
            video_rows, stages = video_job(args, model, scratch)
            print()
            print(f"video: {args.video.name}; median of {args.repeats} runs; efficiency = fps / pure-inference fps")
            print(format_table(["measurement", "WxH", "frames", "frames/s (median)", "min..max", "efficiency"],
                               video_rows))
            print(f"last video job's own stage report: {stages}")
        if args.profile:
            print()
            print(f"cProfile of one in-process folder job (-m {model.name}), top functions by own time:")
            print(profile_translate(model, images, scratch))
    print(f"load average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
