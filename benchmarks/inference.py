"""Inference images/s of the light NICE-GAN: the official test loop's behaviour vs the project backends.

Baseline (official `NICE.py test`): batch 1, fp32, eval mode, no torch.no_grad, the full
discriminator forward (trunk, CAM, both classifier heads) then the generator on its fifth output;
the input is copied to the device and the output back, as the official loop does per image.
Project: the PyTorch backend (folded encoder, inference_mode, uint8 I/O; fp32, and bf16 autocast
with channels_last where the CPU computes bf16 natively), torch.compile of the same module, ONNX
Runtime on the FP32 export, OpenVINO on the same file (fp32 and bf16; one request for latency,
several in flight for throughput: a batch is split over them), and on CUDA fp16/bf16 and
TensorRT when present.
Pure inference on image-like random frames; decoding and writing are in translate_job.py.

    python benchmarks/inference.py                      # CPU defaults, a few minutes on 2 cores
    python benchmarks/inference.py --device cuda --batch-sizes 1,2,4,8,16,32 --repeats 20 --warmup 5
"""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness import (
    DEFAULT_CONFIG,
    cuda_sync,
    format_table,
    fp32_onnx,
    load_average,
    median,
    print_environment,
    ratio,
    spread,
    time_calls,
    trained_like_checkpoint,
    workdir,
)
from nicegan.export.translator import UInt8IO, load_translator
from nicegan.models.nicegan.checkpoint import load_networks
from nicegan.runtime.bench import sample_frames

FLOP_SIZE = 256  # FLOPs are counted at 256x256 and scaled by pixels (the model is fully convolutional)


@dataclass
class Runner:
    """One way of translating a uint8 NHWC BGR batch; `prepare(frames)` returns the timed call."""
    name: str
    precision: str
    prepare: Callable[[np.ndarray], Callable[[], object]]
    official: bool = False
    close: Callable[[], None] = lambda: None


@dataclass
class Row:
    size: tuple[int, int]
    runner: Runner
    batch: int
    times: list[float] | None = None
    error: str | None = None

    @property
    def images_per_s(self) -> float | None:
        return self.batch / median(self.times) if self.times else None


# --- the baseline -----------------------------------------------------------------------------


def official_runner(checkpoint: Path, device: torch.device) -> Runner:
    nets, _ = load_networks(checkpoint)
    dis, gen = nets.disA.to(device).eval(), nets.gen2B.to(device).eval()

    def prepare(frames: np.ndarray) -> Callable[[], object]:
        rgb = frames[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
        images = [torch.from_numpy(np.ascontiguousarray(image[None])) for image in rgb]

        def run() -> list[torch.Tensor]:   # one image at a time, grads tracked, as NICE.py test does
            outputs = []
            for image in images:
                _, _, _, _, z = dis(image.to(device))
                outputs.append(gen(z).cpu())
            return outputs
        return run
    return Runner("official-style loop (full disA + gen2B)", "fp32", prepare, official=True)


# --- project runners -------------------------------------------------------------------------


def backend_runner(name: str, precision: str, backend) -> Runner:
    def prepare(frames: np.ndarray) -> Callable[[], object]:
        return lambda: backend.infer(frames)
    return Runner(name, precision, prepare, close=backend.close)


def module_runner(checkpoint: Path, device: torch.device, dtype: torch.dtype | None, compile_: bool) -> Runner:
    """The PyTorch backend's module under autocast (bf16/fp16) and/or torch.compile."""
    translator, _ = load_translator(checkpoint)
    module = UInt8IO(translator).eval().to(device)
    if compile_:
        module = torch.compile(module, dynamic=False)

    def prepare(frames: np.ndarray) -> Callable[[], object]:
        batch = torch.from_numpy(frames)

        def run() -> np.ndarray:
            autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                        else contextlib.nullcontext())
            with torch.inference_mode(), autocast:
                return module(batch.to(device)).cpu().numpy()
        return run
    precision = {None: "fp32", torch.float16: "fp16 autocast", torch.bfloat16: "bf16 autocast"}[dtype]
    name = "PyTorch torch.compile" if compile_ else "PyTorch eager (autocast)"
    return Runner(name, precision, prepare)


def tensorrt_runner(checkpoint: Path, folder: Path, size: tuple[int, int], max_batch: int) -> Runner | str:
    """An FP16 engine for one size (static H/W, batch 1..max_batch); a reason string when it cannot be built."""
    try:
        from nicegan.export.to_onnx import export_onnx
        from nicegan.export.to_tensorrt import (
            BuildOptions,
            DimRange,
            build_engine,
            detect_capabilities,
            import_tensorrt,
        )
        from nicegan.runtime.backends import open_backend
        caps = detect_capabilities(import_tensorrt())
    except Exception as exc:  # ImportError, or TensorRTError when the bindings are missing
        return f"TensorRT not available ({str(exc).splitlines()[0][:120]})"
    h, w = size
    # Strongly typed builds (TensorRT 10+) keep the ONNX's precision: they need the FP16 export.
    onnx_path = folder / (f"{checkpoint.stem}_a2b{'_fp16' if caps.strongly_typed else '_trt8'}.onnx")
    if not onnx_path.is_file():
        export_onnx(checkpoint, onnx_path, fp16=caps.strongly_typed, target="trt10" if caps.strongly_typed else "trt8")
    engine = onnx_path.with_name(f"{onnx_path.stem}_{h}x{w}_b{max_batch}.engine")
    try:
        if not engine.is_file():
            build_engine(onnx_path, engine, BuildOptions(batch=DimRange(1, max_batch, max_batch),
                                                         height=DimRange(h, h, h), width=DimRange(w, w, w)))
        return backend_runner(f"TensorRT {caps.version}", "fp16 engine", open_backend(engine))
    except Exception as exc:  # a failed build (e.g. memory at a large max batch) costs its rows only
        return f"TensorRT {h}x{w} batch <= {max_batch} not measured ({str(exc).splitlines()[0][:160]})"


def openvino_runner(onnx_path: Path, precision: str, live: bool, mode: str) -> Runner:
    from nicegan.runtime.backends import open_backend
    backend = open_backend(onnx_path, "openvino", precision=precision, live=live)
    requests = "" if live else f", {len(backend._requests)} requests"
    return backend_runner(f"OpenVINO (FP32 export; {mode}{requests})", precision, backend)


def project_runners(args: argparse.Namespace, checkpoint: Path, onnx_path: Path,
                    device: torch.device) -> tuple[list[Runner], list[str]]:
    from nicegan.runtime.backends import BackendError, open_backend
    from nicegan.trainer.threads import cpu_has_native_bf16
    makers = [lambda: backend_runner("PyTorch eager (project backend)", "fp32",
                                     open_backend(checkpoint, "torch", device=str(device), precision="fp32"))]
    if device.type == "cpu" and cpu_has_native_bf16():
        makers.append(lambda: backend_runner("PyTorch eager (project backend, auto)", "bf16 autocast, channels_last",
                                             open_backend(checkpoint, "torch", device="cpu")))
    if device.type == "cuda":
        makers.append(lambda: backend_runner("PyTorch eager (project backend --half)", "fp16 autocast",
                                             open_backend(checkpoint, "torch", half=True, device=str(device))))
        makers.append(lambda: module_runner(checkpoint, device, torch.bfloat16, compile_=False))
    if not args.skip_compile:
        makers.append(lambda: module_runner(checkpoint, device, torch.float16 if device.type == "cuda" else None,
                                            compile_=True))
    for name, path in [("FP32 export", onnx_path)] + [(p.name, p) for p in args.onnx_also]:
        makers.append(lambda name=name, path=path: backend_runner(
            f"ONNX Runtime ({name})", "fp32", open_backend(path, "onnxruntime", device=str(device))))
    if device.type == "cpu" and not args.no_openvino:
        for precision in ("fp32", "bf16"):
            for live, mode in ((True, "latency, 1 request"), (False, "throughput")):
                makers.append(lambda precision=precision, live=live, mode=mode: openvino_runner(
                    onnx_path, precision, live, mode))
    runners, notes = [], ["torch.compile skipped (--skip-compile)"] if args.skip_compile else []
    for make in makers:
        try:
            runners.append(make())
        except BackendError as exc:  # e.g. onnxruntime without its CUDA provider: one row fewer, said so
            notes.append(f"not measured: {exc}")
    return runners, notes


# --- measurements ----------------------------------------------------------------------------


def gflops_per_image(checkpoint: Path) -> tuple[float, float]:
    """(official path, project path) GFLOPs (2 x MACs) per 256x256 image, counted by FlopCounterMode."""
    nets, _ = load_networks(checkpoint)
    translator, _ = load_translator(checkpoint)
    x = torch.zeros(1, 3, FLOP_SIZE, FLOP_SIZE)
    with torch.no_grad():
        with FlopCounterMode(display=False) as official:
            nets.gen2B(nets.disA(x)[4])
        with FlopCounterMode(display=False) as project:
            translator(x)
    return official.get_total_flops() / 1e9, project.get_total_flops() / 1e9


def measured_peak_gflops(device: torch.device) -> tuple[float, str]:
    """A large matmul's GFLOP/s: fp16 on CUDA (tensor cores), fp32 on CPU. The practical peak."""
    n, dtype = (8192, torch.float16) if device.type == "cuda" else (2048, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = median(time_calls(lambda: a @ b, warmup=2, repeats=5))
    return 2 * n ** 3 / seconds / 1e9, f"{n}x{n} {str(dtype).replace('torch.', '')} matmul"


def measure(runner: Runner, size: tuple[int, int], batch: int, warmup: int, repeats: int) -> Row:
    row = Row(size, runner, batch)
    try:
        run = runner.prepare(sample_frames(batch, *size))
        row.times = time_calls(run, warmup, repeats)
    except Exception as exc:  # e.g. out of memory at a large batch: reported, the sweep goes on
        row.error = str(exc).strip().splitlines()[0][:100]
    cuda_sync()
    print(f"   {size[0]}x{size[1]} b{batch:<2} {runner.name} [{runner.precision}]: "
          f"{f'{row.images_per_s:.3g} images/s' if row.times else 'failed: ' + str(row.error)}", flush=True)
    return row


def batches_for(size: tuple[int, int], batches: list[int], max_pixels: int) -> list[int]:
    return [b for b in batches if not max_pixels or b == 1 or b * size[0] * size[1] <= max_pixels]


def table(rows: list[Row], gflops: tuple[float, float], peak: float) -> str:
    baseline = {r.size: r.images_per_s for r in rows if r.runner.official}
    out = []
    for r in rows:
        scale = r.size[0] * r.size[1] / FLOP_SIZE ** 2
        flops = (gflops[0] if r.runner.official else gflops[1]) * scale
        rate = r.images_per_s
        out.append([f"{r.size[0]}x{r.size[1]}", r.runner.name, r.runner.precision, r.batch,
                    f"{median(r.times) * 1e3:.1f}" if r.times else "failed",
                    spread([t * 1e3 for t in r.times]) if r.times else (r.error or ""),
                    f"{rate:.3g}" if rate else "-", ratio(rate, baseline.get(r.size)),
                    rate * flops if rate else "-", f"{100 * rate * flops / peak:.1f}%" if rate else "-"])
    return format_table(["HxW", "runner", "precision", "batch", "ms/batch (median)", "min..max ms",
                         "images/s", "vs official", "GFLOP/s", "% of peak"], out)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a light NICE-GAN checkpoint [default: trained-like random weights, ch 64, n_res 6, n_dis 7]")
    p.add_argument("--workdir", default=None, help="where generated checkpoints/exports are kept [default: $TMPDIR]")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", default="256x256,720x1280", help="comma-separated HxW (multiples of 4)")
    p.add_argument("--batch-sizes", default="1,2,4,8")
    p.add_argument("--max-batch-pixels", type=int, default=None,
                   help="skip batches above this many pixels (batch 1 always runs) "
                        "[default: 2x720p on CPU, no limit on CUDA]")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row; the median is reported")
    p.add_argument("--skip-compile", action="store_true", help="no torch.compile rows (compiling is slow on CPU)")
    p.add_argument("--no-tensorrt", action="store_true")
    p.add_argument("--no-openvino", action="store_true")
    p.add_argument("--onnx-also", type=Path, action="append", default=[], metavar="ONNX",
                   help="also time this ONNX file in ONNX Runtime (e.g. the same model exported by an older "
                        "version); repeatable")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    max_pixels = args.max_batch_pixels if args.max_batch_pixels is not None else (
        0 if device.type == "cuda" else 2 * 720 * 1280)
    print_environment("inference: official-style test loop vs project backends")
    folder = workdir(args.workdir)
    checkpoint = args.checkpoint or trained_like_checkpoint(folder, DEFAULT_CONFIG)
    onnx_path = fp32_onnx(checkpoint, folder)
    gflops = gflops_per_image(checkpoint)
    peak, peak_how = measured_peak_gflops(device)
    print(f"   model {checkpoint}; GFLOPs per 256x256 image: official path {gflops[0]:.1f}, project path "
          f"{gflops[1]:.1f}; measured peak {peak:.0f} GFLOP/s ({peak_how})")

    official = official_runner(checkpoint, device)
    runners, notes = project_runners(args, checkpoint, onnx_path, device)
    rows = []
    for size in sizes:
        rows.append(measure(official, size, 1, args.warmup, args.repeats))
        size_runners = list(runners)
        if device.type == "cuda" and not args.no_tensorrt:
            trt = tensorrt_runner(checkpoint, folder, size, max(batches_for(size, batches, max_pixels)))
            size_runners += [trt] if isinstance(trt, Runner) else []
            notes += [] if isinstance(trt, Runner) else [trt]
        elif size == sizes[0]:
            notes.append("TensorRT not measured: it needs a CUDA GPU" if device.type != "cuda" else "--no-tensorrt")
        for runner in size_runners:
            for batch in batches_for(size, batches, max_pixels):
                rows.append(measure(runner, size, batch, args.warmup, args.repeats))
            if runner not in runners:
                runner.close()
    for runner in runners:
        runner.close()
    print()
    print(f"warm-up {args.warmup}, median of {args.repeats} timed calls per row; images/s = batch / median; "
          f"'vs official' = images/s over the official-style loop's at the same size, this run")
    print(table(rows, gflops, peak))
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    print(f"load average at the end (1/5/15 min): {load_average()}")


if __name__ == "__main__":
    main()
