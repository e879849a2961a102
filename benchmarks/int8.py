"""INT8 post-training quantisation (NNCF) of an exported model, measured before it may ship.

The bar (issue 18): on real photos its PSNR against the fp32 output is at least 35 dB, and
`nicegan eval` FID on the bundled model's test set moves by less than the bootstrap interval
(the 95% interval of INT8 - fp32 contains 0). This script quantises the model with a calibration
folder, then measures, in one run, on this CPU:
- PSNR of INT8 against fp32 (OpenVINO, --precision fp32) on every test image and on the bundled
  photos at their own sizes;
- FID/KID/PSNR/SSIM of both against the test set, and INT8 - fp32 with its bootstrap interval
  (`nicegan eval --baseline`);
- images/s of fp32, bf16 (where the CPU has it) and INT8 at 256x256.

    python benchmarks/int8.py --calibration data/vintage/trainA --test data/vintage   # needs NNCF
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from harness import REPO, format_table, median, print_environment, time_calls, workdir
from nicegan.common import read_image
from nicegan.runtime.backends import open_backend
from nicegan.runtime.bench import sample_frames
from nicegan.runtime.frames import SizePolicy

BUNDLED = REPO / "runtime" / "assets" / "models" / "vintage_a2b.onnx"
PHOTOS = sorted((REPO / "runtime" / "assets").glob("*.jpg"))


def quantise(model: Path, calibration: Path, count: int, out: Path) -> Path:
    import nncf
    import openvino as ov
    files = sorted(p for p in calibration.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
    frames = [read_image(p, keep_format=False)[None] for p in files]
    core = ov.Core()
    quantised = nncf.quantize(core.read_model(str(model)), nncf.Dataset(frames), subset_size=len(frames))
    ov.save_model(quantised, str(out), compress_to_fp16=False)
    print(f"   quantised {model.name} with {len(frames)} calibration images from {calibration} -> {out}", flush=True)
    return out


def outputs(model: Path, images: list[np.ndarray], precision: str) -> list[np.ndarray]:
    with open_backend(model, "openvino", precision=precision) as backend:
        policy = SizePolicy(backend.info)
        results = []
        for image in images:
            fitted, place = policy.fit(image)
            results.append(policy.restore(backend.infer(fitted[None])[0], place))
    return results


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def write_folder(folder: Path, names: list[str], images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images):
        cv2.imwrite(str(folder / name), image)
    return folder


def evaluate(test_root: Path, fake: Path, baseline: Path, out_json: Path) -> dict:
    command = [sys.executable, "-m", "nicegan.cli", "eval", str(test_root / "testB"), str(fake), "--paired-ref",
               str(test_root / "testA_teacher"), "--baseline", str(baseline), "--json", str(out_json), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"eval failed: {done.stdout}\n{done.stderr}")
    print(done.stdout, flush=True)
    return json.loads(out_json.read_text())


def speed(model: Path, precision: str, repeats: int) -> float | str:
    try:
        with open_backend(model, "openvino", precision=precision) as backend:
            frames = sample_frames(backend.preferred_batch or 1, 256, 256)
            return len(frames) / median(time_calls(lambda: backend.infer(frames), 2, repeats))
    except Exception as exc:   # e.g. bf16 on a CPU without it: reported in the table
        return str(exc).splitlines()[0][:80]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=BUNDLED)
    p.add_argument("--calibration", type=Path, required=True, help="folder of real images like the inputs")
    p.add_argument("--calibration-count", type=int, default=300)
    p.add_argument("--test", type=Path, required=True, help="DATA_ROOT with testA, testB, testA_teacher")
    p.add_argument("--workdir", default=None)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    print_environment("INT8 (NNCF post-training quantisation) against fp32, OpenVINO")
    folder = workdir(args.workdir) / "int8"
    folder.mkdir(parents=True, exist_ok=True)
    int8 = quantise(args.model, args.calibration, args.calibration_count, folder / f"{args.model.stem}_int8.xml")

    test_files = sorted((args.test / "testA").glob("*.png"))
    test_images = [read_image(p, keep_format=False) for p in test_files]
    photos = [read_image(p, keep_format=False) for p in PHOTOS]
    fp32_test, int8_test = outputs(args.model, test_images, "fp32"), outputs(int8, test_images, "fp32")
    fp32_photos, int8_photos = outputs(args.model, photos, "fp32"), outputs(int8, photos, "fp32")
    test_psnr = [psnr(a, b) for a, b in zip(fp32_test, int8_test)]
    photo_psnr = [psnr(a, b) for a, b in zip(fp32_photos, int8_photos)]
    names = [p.name for p in test_files]
    scores = evaluate(args.test, write_folder(folder / "int8_out", names, int8_test),
                      write_folder(folder / "fp32_out", names, fp32_test), folder / "scores.json")
    rows = [["PSNR INT8 vs fp32, test crops (mean / min)", f"{np.mean(test_psnr):.2f} / {np.min(test_psnr):.2f} dB",
             f"{len(test_psnr)} images, 128x128"],
            ["PSNR INT8 vs fp32, bundled photos (mean / min)",
             f"{np.mean(photo_psnr):.2f} / {np.min(photo_psnr):.2f} dB", f"{len(photos)} photos at their own sizes"]]
    for diff in scores["vs_baseline"]:
        rows.append([f"{diff['metric']}: INT8 - fp32 [95% interval]",
                     f"{diff['difference']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]",
                     f"INT8 {diff['fake']:.3f}, fp32 {diff['baseline']:.3f}"])
    for precision, model in (("fp32", args.model), ("bf16", args.model), ("int8", int8)):
        rate = speed(model, "fp32" if precision == "int8" else precision, args.repeats)
        rows.append([f"images/s at 256x256, {precision}", f"{rate:.3g}" if isinstance(rate, float) else rate,
                     "OpenVINO throughput mode, median"])
    print(format_table(["measurement", "value", "notes"], rows))


if __name__ == "__main__":
    main()
