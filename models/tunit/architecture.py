"""TUNIT (Baek et al., ICCV 2021) as the trainer and the exporter see it, with the defaults of
clovaai/tunit: K = 10 pseudo-domains, 128-d styles, 128 px, batch 32, 200 x 1,000 iterations of
which the first 65,000 train the guiding network alone, G_EMA from 66,000, Adam 1e-4 (weight decay
1e-3) for C, RMSprop 1e-4 (1e-4) for G and D.

The data is one folder of unlabelled images, DATA_ROOT/train (searched recursively: sub-folders
are never read as labels), and DATA_ROOT/test for the samples and the pseudo-domains' mean styles.
"""
from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from nicegan.export.metadata import ModelInfo, encode_styles
from nicegan.export.translator import TranslatorError
from nicegan.models.architecture import Architecture, DataSettings, Sample, TrainingModel, checkpoint_fixes
from nicegan.models.tunit.checkpoint import (
    build_networks,
    checkpoint_config,
    checkpoint_dict,
    is_tunit_checkpoint,
    load_networks,
)
from nicegan.models.tunit.networks import MIN_IMG_SIZE, TunitConfig, is_power_of_two
from nicegan.models.tunit.samples import cluster_grid, domain_styles, reference_grid
from nicegan.models.tunit.step import (
    C_WEIGHT_DECAY,
    EMA_BETA,
    GAN_WEIGHT_DECAY,
    LOSSES,
    QUEUE_SIZE,
    TunitSchedule,
    TunitStep,
    TunitWeights,
    make_optimizers,
    official_phases,
)
from nicegan.models.tunit.translator import StyledTranslator, StyleEncoder
from nicegan.models.tunit.views import TwoViews, split_views
from nicegan.trainer.data import DataLayout, spread_order
from nicegan.trainer.options import TrainError, TrainOptions, flag
from nicegan.trainer.step import GradSync

OFFICIAL_LR = 1e-4
OFFICIAL_ITERS = 200_000
STREAM = "images"
LAYOUT = DataLayout({STREAM: "train"}, {STREAM: "test"},
                    "expected DATA_ROOT/train (unlabelled images, searched recursively; sub-folders are not labels) "
                    "and DATA_ROOT/test (images for the samples and the pseudo-domains' mean styles)")
DOMAIN_STYLE_IMAGES = 500   # test images whose styles make each pseudo-domain's mean style
# The options a checkpoint's networks fix.
ARCH_FIELDS = ("img_size", "ch", "sty_dim", "k")


def tunit_config(o: TrainOptions) -> TunitConfig:
    return TunitConfig(img_size=o.img_size, ch=o.ch, sty_dim=o.sty_dim, k=o.k)


def tunit_schedule(o: TrainOptions) -> TunitSchedule:
    return TunitSchedule(o.iters, o.lr, o.separated, o.ema_start)


def check_options(o: TrainOptions) -> None:
    """Refuse TUNIT options that cannot train, with the fix in the message (defaults filled in)."""
    if not is_power_of_two(o.img_size) or o.img_size < MIN_IMG_SIZE:
        nearest = max(MIN_IMG_SIZE, 2 ** round(math.log2(max(o.img_size, 1))))
        raise TrainError(f"--img-size {o.img_size}: TUNIT's discriminator halves the image down to 4 x 4 and its "
                         f"guiding network pools five times: use a power of two of at least {MIN_IMG_SIZE} "
                         f"(e.g. {nearest})")
    if o.ch < 2 or o.k < 2 or o.sty_dim < 1:
        raise TrainError(f"--ch {o.ch}, --k {o.k}, --sty-dim {o.sty_dim}: TUNIT needs a width of at least 2, at "
                         "least 2 pseudo-domains and a style code of at least 1 value")
    if o.batch_size < 2:
        raise TrainError(f"--batch-size {o.batch_size}: TUNIT's BatchNorms, IIC and references need batches of at "
                         "least 2 (the official 32)")
    for name in ("w_adv", "w_rec", "w_vec", "w_gp"):
        if getattr(o, name) < 0:
            raise TrainError(f"{flag(name)} must be >= 0 (got {getattr(o, name)})")
    if not 0 <= o.separated <= o.ema_start:
        raise TrainError(f"--separated {o.separated}, --ema-start {o.ema_start}: G_EMA averages the generator, which "
                         "trains from --separated on; pass an --ema-start of at least --separated")
    if o.load_size:
        raise TrainError(f"--load-size {o.load_size}: TUNIT resizes whole images to --img-size, as the official "
                         "loader does; drop --load-size")
    if o.amp == "fp16":
        raise TrainError("--amp fp16: TUNIT's R1 penalty and three-part discriminator backward take no loss scaling; "
                         "use --amp bf16 or off")


class QueueStart:
    """Before step 1, as the official initialize_queue: the MoCo queue starts with the keys of C_EMA
    on the augmented views of one batch."""
    name, metric, steps = "MoCo queue", "keys", 1

    def __init__(self, step: TunitStep):
        self.train_step = step

    def step(self, batch: dict[str, torch.Tensor], index: int) -> float:
        self.train_step.start_queue(split_views(batch[STREAM])[1])
        return float(len(self.train_step.queue.keys))

    def finish(self, values: list[float]) -> str:
        return f"{int(values[-1])} keys of C_EMA on augmented views (the queue keeps the last {QUEUE_SIZE})"


class TunitModel(TrainingModel):
    progress_fields = ("c_loss", "d_loss", "g_loss")
    log_fields = LOSSES

    def __init__(self, options: TrainOptions, device: torch.device):
        self.config = tunit_config(options)
        self.nets = build_networks(self.config)
        self.weights = TunitWeights(options.w_adv, options.w_rec, options.w_vec, options.w_gp)
        self.step = TunitStep(self.nets, *make_optimizers(self.nets, options.lr), self.weights, options.amp, device)
        self.schedule = tunit_schedule(options)
        self.n_samples = options.n_samples
        self.done = 0   # iterations trained
        self.test_images: torch.Tensor | None = None

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        return self.nets.as_dict()

    def describe(self) -> str:
        c, w = self.config, self.weights
        return (f"K {c.k} pseudo-domains, style {c.sty_dim}-d, ch {c.ch} (VGG11-BN guiding network, AdaIN "
                f"generator, multi-task discriminator), adv {w.adv:g} rec {w.rec:g} style {w.vec:g} R1 {w.gp:g}")

    def settings(self) -> dict[str, Any]:
        return {"network": self.config.to_dict(), "losses": asdict(self.weights),
                "optimizers": {"C": {"adam_weight_decay": C_WEIGHT_DECAY},
                               "G, D": {"rmsprop_weight_decay": GAN_WEIGHT_DECAY}},
                "moco_queue": QUEUE_SIZE, "ema_beta": EMA_BETA}

    @property
    def ema_started(self) -> bool:
        return self.done > self.schedule.ema_start

    def deployed_generator(self) -> str:
        return "G_EMA" if self.ema_started else "G"

    def current_domain_styles(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each pseudo-domain's mean style over the test images, and their counts (eval mode)."""
        if self.test_images is None:
            return None
        guiding, guiding_ema = self.nets.C, self.nets.C_EMA
        modes = guiding.training, guiding_ema.training
        guiding.eval(), guiding_ema.eval()
        styles, counts, _ = domain_styles(guiding, guiding_ema, self.test_images, self.config.k)
        guiding.train(modes[0]), guiding_ema.train(modes[1])
        return styles, counts

    def checkpoint(self, step: int, train_state: dict[str, Any]) -> dict[str, Any]:
        return checkpoint_dict(self.nets, self.config, self.step.optimizers, step, train_state,
                               self.deployed_generator(), self.current_domain_styles())

    def load_checkpoint(self, ckpt: dict[str, Any], schedule: TunitSchedule, options: TrainOptions) -> int:
        for name, module in self.networks.items():
            module.load_state_dict(ckpt[name])
        for key, optimizer in zip(("C_optimizer", "G_optimizer", "D_optimizer"), self.step.optimizers):
            optimizer.load_state_dict(ckpt[key])
        self.done = int(ckpt["start_iter"])
        return self.done

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x_org, x_tf = split_views(batch[STREAM])
        losses = self.step(x_org, x_tf, self.schedule.phase(self.done))
        self.done += 1
        return losses

    def warm_start(self, options: TrainOptions) -> QueueStart:
        return QueueStart(self.step)

    def training_state(self) -> dict[str, Any]:
        return {**self.step.scaler_state(), "queue": self.step.queue.keys.detach().cpu()}

    def load_training_state(self, train_state: dict[str, Any]) -> None:
        if "queue" in train_state:
            self.step.queue.keys = train_state["queue"].to(self.step.device)

    def attach_test_images(self, images: dict[str, torch.Tensor]) -> None:
        self.test_images = images[STREAM]

    def sample_grids(self, images: dict[str, torch.Tensor]) -> list[Sample]:
        if not self.n_samples:
            return []
        test = images[STREAM]
        # Spread over the test images too: the first ones would often all come from one sub-folder.
        sources = test[torch.tensor(spread_order(len(test), self.n_samples)[:self.n_samples])]
        generator = self.nets.G_EMA if self.ema_started else self.nets.G
        styles, counts, labels = domain_styles(self.nets.C, self.nets.C_EMA, test, self.config.k)
        return [("reference", *reference_grid(generator, self.nets.C_EMA, sources)),
                ("clusters", *cluster_grid(generator, sources, test, styles, counts, labels))]


def domain_metadata(ckpt: dict[str, Any]) -> dict[str, Any]:
    """ModelInfo's pseudo-domain fields of a checkpoint (empty styles when it stored none)."""
    k = checkpoint_config(ckpt).k
    if "domain_styles" not in ckpt:
        return {"domains": k}
    counts = ckpt["domain_counts"].tolist()
    return {"domains": k, "domain_styles": encode_styles(ckpt["domain_styles"].float().numpy()),
            "domain_counts": ",".join(map(str, counts))}


class Tunit(Architecture):
    name = "tunit"
    title = "TUNIT"
    default_batch_size = 32
    own_options = ("ch", "k", "sty_dim", "separated", "ema_start", "w_adv", "w_rec", "w_vec", "w_gp", "color_jitter")

    def resolve_options(self, options: TrainOptions) -> TrainOptions:
        iters = options.iters or OFFICIAL_ITERS
        separated, ema_start = official_phases(iters, options.separated, options.ema_start)
        options = replace(options, lr=options.lr or OFFICIAL_LR, iters=iters, separated=separated, ema_start=ema_start)
        check_options(options)
        return options

    def data_settings(self, options: TrainOptions) -> DataSettings:
        return DataSettings(load_size=options.img_size, resample=Image.Resampling.BILINEAR, layout=LAYOUT,
                            transform=TwoViews(options.img_size, options.color_jitter),
                            test_count=DOMAIN_STYLE_IMAGES, spread_test=True)

    def schedule(self, options: TrainOptions, iters_per_epoch: int) -> TunitSchedule:
        return tunit_schedule(options)

    def build(self, options: TrainOptions, device: torch.device, grad_sync: GradSync | None) -> TunitModel:
        if grad_sync is not None:
            raise TrainError("--arch tunit trains in one process: its MoCo queue and BatchNorm statistics are per "
                             "process; run it without torchrun")
        return TunitModel(options, device)

    def accept(self, path: Path, content: dict[str, Any] | None) -> dict[str, Any] | None:
        return content if content is not None and is_tunit_checkpoint(content) else None

    def checkpoint_options(self, ckpt: dict[str, Any], options: TrainOptions, explicit: set[str]) -> TrainOptions:
        return checkpoint_fixes(options, checkpoint_config(ckpt).to_dict(), ARCH_FIELDS, explicit)

    def translator(self, ckpt: dict[str, Any], path: Path, direction: str,
                   default_img_size: int) -> tuple[torch.nn.Module, ModelInfo]:
        if direction != "a2b":
            raise TranslatorError(f"{path}: a TUNIT model has one generator for every pseudo-domain, so no "
                                  "direction; drop --direction and choose the style with --reference IMG or --domain K")
        deployed = ckpt.get("deployed_generator", "G_EMA")
        config = checkpoint_config(ckpt)
        generator = load_networks(ckpt, path, (deployed,))[deployed]
        info = ModelInfo(arch=self.name, direction=direction, light=True, img_size=config.img_size, io="float",
                         precision="fp32", dynamic_hw=True, size_multiple=config.size_multiple,
                         step=int(ckpt.get("start_iter", 0)), latent_dim=config.sty_dim, code="style",
                         **domain_metadata(ckpt))
        return StyledTranslator(generator), info

    def style_encoder(self, ckpt: dict[str, Any], path: Path) -> tuple[torch.nn.Module, int]:
        return StyleEncoder(load_networks(ckpt, path, ("C_EMA",))["C_EMA"]), checkpoint_config(ckpt).img_size


ARCHITECTURE = Tunit()
