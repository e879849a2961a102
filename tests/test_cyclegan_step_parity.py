"""The project's CycleGAN equals the official one (tests/official_cyclegan_step.py): two training
iterations, the image pool, the learning-rate schedule; and a resumed run equals an unbroken one.

As tests/test_train_step_parity.py: same trained-like weights (the official initialisation, then
perturbed so that no bias is 0), real photos, fp32 on CPU, two consecutive iterations (Adam's
moments and the pools of step 1 feed step 2). Tolerances: losses rtol 1e-6; every parameter
within atol 1e-7 + rtol 1e-6.
"""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from nicegan.models.cyclegan.checkpoint import CycleGANNetConfig, build_networks
from nicegan.models.cyclegan.pool import ImagePool
from nicegan.models.cyclegan.step import CycleGANNetworks, CycleGANStep, CycleWeights, epoch_schedule, make_optimizers
from nicegan.trainer.checkpoint import read_checkpoint_file
from nicegan.trainer.loop import Trainer
from nicegan.trainer.options import LATEST, TrainOptions
from official_cyclegan_step import CycleGANModel, define_D, define_G, official_epoch_lrs
from official_cyclegan_step import ImagePool as OfficialPool
from test_train_step_parity import assert_same_state, photo_batches

SEED = 3
TINY = CycleGANNetConfig(net_g="resnet_2blocks", ngf=8, ndf=8, n_layers_d=3, img_size=32)
POOL = 1  # with batches of 2 the pools fill at the first image and draw from then on

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def official_networks(seed: int) -> list[torch.nn.Module]:
    """G_A, G_B, D_A, D_B as the official define_G/define_D build them, then moved off the
    initialisation's zero biases (trained-like)."""
    torch.manual_seed(seed)
    nets = [define_G(3, 3, TINY.ngf, "resnet_6blocks", n_blocks=2), define_G(3, 3, TINY.ngf, "resnet_6blocks", n_blocks=2),
            define_D(3, TINY.ndf, TINY.n_layers_d), define_D(3, TINY.ndf, TINY.n_layers_d)]
    with torch.no_grad():
        for net in nets:
            for p in net.parameters():
                p.add_(0.02 * torch.randn_like(p))
    return nets


def ours_from(official: CycleGANModel) -> CycleGANNetworks:
    """Our networks with the official weights, loaded with strict=True both ways (the key layout)."""
    nets = build_networks(TINY)
    for name, module in nets.as_dict().items():
        module.load_state_dict(official.models()[name].state_dict(), strict=True)
        official.models()[name].load_state_dict(module.state_dict(), strict=True)
    return nets


def record_swaps(pool: ImagePool) -> list[bool]:
    """Whether each query returned a stored image in place of a new one (the swap branch)."""
    swaps: list[bool] = []
    query = pool.query

    def recorded(images: torch.Tensor) -> torch.Tensor:
        out = query(images)
        swaps.append(not torch.equal(out, images.detach()))
        return out

    pool.query = recorded
    return swaps


@pytest.mark.parametrize("lambda_identity, gan_mode", [(0.5, "lsgan"), (0.0, "lsgan"), (0.5, "vanilla")])
def test_two_iterations_match_official_losses_weights_and_pools(lambda_identity, gan_mode):
    official = CycleGANModel(*official_networks(SEED), lambda_identity=lambda_identity, pool_size=POOL,
                             gan_mode=gan_mode)
    nets = ours_from(official)
    step = CycleGANStep(nets, *make_optimizers(nets, 2e-4), CycleWeights(10.0, 10.0, lambda_identity, gan_mode), POOL)
    swaps = [record_swaps(step.pool_b), record_swaps(step.pool_a)]
    before = {k: v.clone() for k, v in nets.D_A.state_dict().items()}
    real_a, real_b = photo_batches(TINY.img_size)
    for iteration in (1, 2):
        random.seed(SEED + iteration)
        losses = step(real_a, real_b)
        random.seed(SEED + iteration)
        official.set_input(real_a, real_b)
        official.optimize_parameters()
        expected = {"d_loss": official.loss_D_A + official.loss_D_B, "g_loss": official.loss_G,
                    "D_A": official.loss_D_A, "G_A": official.loss_G_A, "cycle_A": official.loss_cycle_A,
                    "idt_A": official.loss_idt_A, "D_B": official.loss_D_B, "G_B": official.loss_G_B,
                    "cycle_B": official.loss_cycle_B, "idt_B": official.loss_idt_B}
        for key, value in expected.items():
            value = value.item() if isinstance(value, torch.Tensor) else value  # the official idt loss may be 0
            assert losses[key].item() == pytest.approx(value, rel=1e-6), key
        assert_same_state(nets, CycleGANNetworks(**official.models()))
        for ours, theirs in ((step.pool_a, official.fake_A_pool), (step.pool_b, official.fake_B_pool)):
            assert len(ours.images) == theirs.num_imgs
            assert all(torch.equal(a, b) for a, b in zip(ours.images, theirs.images))
    assert all(any(drawn) for drawn in swaps), "a pool never took the swap branch: pick another SEED"
    assert (lambda_identity == 0) is (losses["idt_A"].item() == 0)
    assert (nets.D_A.state_dict()["model.0.weight"] - before["model.0.weight"]).abs().max() > 1e-5


def one_step(amp: str = "off", channels_last: bool = False) -> dict[str, torch.Tensor]:
    nets = ours_from(CycleGANModel(*official_networks(SEED)))
    real_a, real_b = photo_batches(TINY.img_size, batch_size=1)
    if channels_last:
        for module in nets.as_dict().values():
            module.to(memory_format=torch.channels_last)
        real_a, real_b = (x.to(memory_format=torch.channels_last) for x in (real_a, real_b))
    random.seed(SEED)
    return CycleGANStep(nets, *make_optimizers(nets, 2e-4), amp=amp)(real_a, real_b)


def test_bf16_and_channels_last_steps_stay_close_to_fp32():
    reference = one_step()
    for key, value in one_step(channels_last=True).items():
        assert value.item() == pytest.approx(reference[key].item(), rel=1e-5, abs=1e-6), key
    for key in ("d_loss", "g_loss"):
        assert one_step(amp="bf16")[key].item() == pytest.approx(reference[key].item(), rel=3e-2), key


def pool_batches(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(2, 3, 4, 4, generator=generator) for _ in range(count)]


def test_the_image_pool_draws_and_swaps_as_the_official_one():
    ours, official = ImagePool(3), OfficialPool(3)
    swapped = False
    for query, batch in enumerate(pool_batches(8)):
        random.seed(query)
        out = ours.query(batch)
        random.seed(query)
        assert torch.equal(out, official.query(batch)), query
        swapped |= not torch.equal(out, batch)
    assert swapped, "no swap was drawn"
    passthrough = torch.rand(2, 3, 4, 4)
    assert torch.equal(ImagePool(0).query(passthrough), passthrough)


def test_a_restored_pool_continues_as_the_saved_one():
    pool, batches = ImagePool(3), pool_batches(8)
    for batch in batches[:4]:
        pool.query(batch)
    restored = ImagePool(3)
    restored.load_state_dict(pool.state_dict(), torch.device("cpu"))
    for query, batch in enumerate(batches[4:]):
        random.seed(query)
        expected = pool.query(batch)
        random.seed(query)
        assert torch.equal(restored.query(batch), expected)


@pytest.mark.parametrize("epochs, epochs_decay", [(100, 100), (3, 2)])
def test_the_schedule_equals_the_official_lambda_lr_over_every_epoch(epochs, epochs_decay):
    per_epoch = 3
    schedule = epoch_schedule(2e-4, per_epoch, epochs=epochs, epochs_decay=epochs_decay)
    assert schedule.iters == (epochs + epochs_decay) * per_epoch
    official = official_epoch_lrs(2e-4, epochs, epochs_decay)
    ours = [schedule.lr(step) for step in range(1, schedule.iters + 1)]
    np.testing.assert_allclose(ours, [lr for lr in official for _ in range(per_epoch)], rtol=0, atol=1e-15)
    assert official[-1] == 0.0 and ours[-per_epoch:] == [0.0] * per_epoch and min(ours[:-per_epoch]) > 0


def test_iters_spans_epochs_at_official_rates_and_never_trains_at_zero():
    schedule = epoch_schedule(2e-4, 8, iters=20)  # 3 epochs, the last partial
    assert (schedule.epochs, schedule.epochs_decay, schedule.iters) == (2, 2, 20)
    official = official_epoch_lrs(2e-4, 2, 2)  # the official schedule one epoch longer
    assert [schedule.lr(step) for step in range(1, 21)] == [official[(step - 1) // 8] for step in range(1, 21)]
    assert min(schedule.lr(step) for step in range(1, 21)) > 0 and official[-1] == 0
    assert epoch_schedule(2e-4, 8).iters == 200 * 8  # the official 100 + 100 epochs


def assert_identical(a, b, where: str = "") -> None:
    """Bit for bit: tensors equal exactly, containers key by key."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


TINY_RUNS = {
    "cyclegan": dict(arch="cyclegan", img_size=32, load_size=40, net_g="resnet_6blocks", ngf=4, ndf=4, pool_size=2),
    "nicegan": dict(img_size=64, ch=8, n_res=2, n_dis=6),
}


@pytest.mark.parametrize("arch", sorted(TINY_RUNS))
def test_four_straight_iterations_equal_two_then_a_save_a_resume_and_two_more(image_dataset, tmp_path, arch):
    options = TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "straight"), iters=4, workers=0,
                           threads=1, n_samples=0, save_every=100, snapshot_every=0, log_every=1, **TINY_RUNS[arch])
    Trainer(options).run()
    Trainer(replace(options, out=str(tmp_path / "split"), stop_at=2)).run()
    assert read_checkpoint_file(tmp_path / "split" / "latest.pt")["start_iter"] == 2
    Trainer(replace(options, out=str(tmp_path / "split"), resume=LATEST)).run()
    straight, resumed = (read_checkpoint_file(tmp_path / run / "latest.pt") for run in ("straight", "split"))
    for ckpt in (straight, resumed):
        ckpt["train_state"].pop("options")  # --out and --resume differ, by design
    assert straight["start_iter"] == resumed["start_iter"] == 4
    assert_identical(straight, resumed)
