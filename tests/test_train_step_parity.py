"""One training iteration of the project equals the official one (tests/official_step.py).

Same trained-like TINY weights, same inputs (real photos), fp32 on CPU, two consecutive
iterations (so the spectral-norm u/v state and Adam moments of step 1 feed step 2).
Tolerances: losses rtol 1e-6; every parameter and buffer of the four nets within
atol 1e-7 + rtol 1e-6 (an Adam step moves a weight by ~lr = 1e-4, so 1e-7 is 0.1 % of a step).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nicegan.models.nicegan.checkpoint import NiceNetworks
from nicegan.models.nicegan.losses import LossWeights
from nicegan.models.nicegan.step import FullPrecisionHook, TrainStep, learning_rate, make_optimizers
from nicegan.trainer.data import to_tensor
from nicegan.trainer.step import set_learning_rate
from nicegan_testutils import TINY, make_trained_like, real_photos
from official_step import official_optimizers, official_step

SEED = 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: more threads only contend (badly so on a shared machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def photo_batches(size: int, batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Domain A: coffee, chelsea; domain B: rocket, astronaut; square-resized to `size`."""
    photos = real_photos()

    def batch(names):
        return torch.stack([to_tensor(Image.fromarray(photos[n]).resize((size, size), Image.Resampling.BILINEAR))
                            for n in names[:batch_size]])

    return batch(("coffee", "chelsea")), batch(("rocket", "astronaut"))


def assert_same_state(ours: NiceNetworks, ref: NiceNetworks, atol: float = 1e-7, rtol: float = 1e-6) -> None:
    for name, module in ours.as_dict().items():
        ref_state = ref.as_dict()[name].state_dict()
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, ref_state[key], atol=atol, rtol=rtol,
                                       msg=lambda m, where=f"{name}.{key}": f"{where}: {m}")


def assert_steps_close(ours: NiceNetworks, ref: NiceNetworks, lr: float, flipped_fraction: float = 1e-3) -> None:
    """After one Adam step from the same weights: every weight within 2 lr of the reference (a
    flipped step at most), and at most `flipped_fraction` of all weights beyond lr / 4."""
    beyond, total = 0, 0
    for name, module in ours.as_dict().items():
        ref_state = ref.as_dict()[name].state_dict()
        for key, value in module.state_dict().items():
            diff = (value.double() - ref_state[key].double()).abs()
            assert diff.max() <= 2 * lr + 1e-7, f"{name}.{key}: moved {diff.max():.3g} from the reference (> 2 lr)"
            beyond += int((diff > lr / 4).sum())
            total += diff.numel()
    assert beyond <= flipped_fraction * total, f"{beyond} of {total} weights beyond lr / 4"


def test_two_iterations_match_official_losses_and_weights():
    ours, ref = make_trained_like(TINY, SEED), make_trained_like(TINY, SEED)
    assert_same_state(ours, ref, atol=0, rtol=0)
    real_a, real_b = photo_batches(TINY.img_size)
    weights = LossWeights(adv=1.0, cycle=10.0, recon=10.0)
    g_optim, d_optim = make_optimizers(ours, lr=1e-4)
    step = TrainStep(ours, g_optim, d_optim, weights)
    ref_g_optim, ref_d_optim = official_optimizers(ref.gen2B, ref.gen2A, ref.disA, ref.disB)
    before = {k: v.clone() for k, v in ours.disA.state_dict().items()}
    for iteration in (1, 2):
        set_learning_rate((g_optim, d_optim), learning_rate(iteration, 300_000, 1e-4))
        losses = step(real_a, real_b)
        ref_d, ref_g = official_step(ref.gen2B, ref.gen2A, ref.disA, ref.disB, ref_g_optim, ref_d_optim,
                                     real_a, real_b)
        assert losses["d_loss"].item() == pytest.approx(ref_d, rel=1e-6)
        assert losses["g_loss"].item() == pytest.approx(ref_g, rel=1e-6)
        assert_same_state(ours, ref)
    # The step did move the weights and the SN vectors (the comparison above is not vacuous).
    after = ours.disA.state_dict()
    assert (after["model.1.weight_orig"] - before["model.1.weight_orig"]).abs().max() > 1e-5
    assert not torch.equal(after["model.1.weight_u"], before["model.1.weight_u"])


def test_fractional_loss_weights_match_official():
    ours, ref = make_trained_like(TINY, SEED), make_trained_like(TINY, SEED)
    real_a, real_b = photo_batches(TINY.img_size, batch_size=1)
    g_optim, d_optim = make_optimizers(ours, lr=1e-4)
    losses = TrainStep(ours, g_optim, d_optim, LossWeights(adv=0.5, cycle=7.5, recon=2.5))(real_a, real_b)
    ref_d, ref_g = official_step(ref.gen2B, ref.gen2A, ref.disA, ref.disB,
                                 *official_optimizers(ref.gen2B, ref.gen2A, ref.disA, ref.disB), real_a, real_b,
                                 adv_weight=0.5, cycle_weight=7.5, recon_weight=2.5)
    assert losses["d_loss"].item() == pytest.approx(ref_d, rel=1e-6)
    assert losses["g_loss"].item() == pytest.approx(ref_g, rel=1e-6)
    assert_same_state(ours, ref)


def test_generator_step_never_touches_discriminator_gradients_or_weights():
    nets = make_trained_like(TINY, SEED)
    real_a, real_b = photo_batches(TINY.img_size, batch_size=1)
    g_optim, d_optim = make_optimizers(nets, lr=1e-4)
    step = TrainStep(nets, g_optim, d_optim)
    for module in nets.as_dict().values():
        module.train()
    d_params = step.d_params
    d_optim.zero_grad(set_to_none=True)
    d_before = [p.detach().clone() for p in d_params]
    g_before = [p.detach().clone() for p in step.g_params]
    step.generator_step(real_a, real_b)
    assert all(p.grad is None for p in d_params), "G backward computed discriminator gradients"
    assert all(torch.equal(p, q) for p, q in zip(d_params, d_before)), "G step changed discriminator weights"
    assert all(p.requires_grad for p in d_params), "discriminator parameters left frozen"
    assert all(p.grad is not None for p in step.g_params)
    assert any(not torch.equal(p, q) for p, q in zip(step.g_params, g_before))


def test_encoders_belong_to_the_discriminator_optimizer_only():
    nets = make_trained_like(TINY, SEED)
    g_optim, d_optim = make_optimizers(nets, lr=1e-4)
    g_ids = {id(p) for group in g_optim.param_groups for p in group["params"]}
    d_ids = {id(p) for group in d_optim.param_groups for p in group["params"]}
    encoder = [nets.disA.model[1].weight_orig, nets.disA.lamda, nets.disA.fc.weight_orig, nets.disB.conv1x1.weight]
    assert all(id(p) in d_ids and id(p) not in g_ids for p in encoder)
    assert g_ids.isdisjoint(d_ids)
    for group in (*g_optim.param_groups, *d_optim.param_groups):
        assert group["betas"] == (0.5, 0.999) and group["weight_decay"] == 1e-4 and group["lr"] == 1e-4


def official_decayed_lrs(iters: int, lr: float) -> list[float]:
    """The official schedule: lr -= lr / (iters // 2) at every step past the half (uninterrupted run)."""
    current, out = lr, []
    for step in range(1, iters + 1):
        if step > iters // 2:
            current -= lr / (iters // 2)
        out.append(current)
    return out


@pytest.mark.parametrize("iters", [10, 1000])
def test_learning_rate_matches_official_uninterrupted_schedule(iters):
    ours = [learning_rate(s, iters, 1e-4) for s in range(1, iters + 1)]
    np.testing.assert_allclose(ours, official_decayed_lrs(iters, 1e-4), rtol=0, atol=1e-15)
    assert ours[iters // 2 - 1] == 1e-4 and ours[-1] == 0.0


def test_learning_rate_after_resume_past_half_is_positive_and_decays_once():
    # Official resume at 250K of 300K: the restored lr (already 6.67e-5) is decayed again -> -3.3e-5.
    iters, lr, step = 300_000, 1e-4, 250_000
    assert learning_rate(step, iters, lr) == pytest.approx(lr * (iters - step) / (iters // 2))
    assert learning_rate(step, iters, lr) == pytest.approx(3.3333e-5, rel=1e-4)
    assert learning_rate(iters, iters, lr) == 0.0
    assert min(learning_rate(s, 301, lr) for s in range(1, 302)) == 0.0  # odd iters: official goes below 0


def test_bf16_autocast_keeps_spectral_norm_power_iteration_in_fp32():
    """The legacy SN hook runs inside autocast: its u/v update must equal the fp32 one."""
    real_a, _ = photo_batches(TINY.img_size)
    results = []
    for amp in (False, True):
        dis = make_trained_like(TINY, SEED).disA.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            dis(real_a)
        results.append({k: v for k, v in dis.state_dict().items() if k.endswith(("weight_u", "weight_v"))})
    for key, value in results[0].items():
        assert results[1][key].dtype == torch.float32
        torch.testing.assert_close(results[1][key], value, atol=0, rtol=0)


def test_amp_runs_the_spectral_norm_hooks_with_autocast_off():
    """On CUDA, autocast would run the power iteration's torch.mv in half precision."""
    nets = make_trained_like(TINY, SEED)
    TrainStep(nets, *make_optimizers(nets, 1e-4), amp="bf16")
    hooks = [h for m in nets.disA.modules() for h in m._forward_pre_hooks.values()]
    sn_modules = [m for m in nets.disA.modules() if hasattr(m, "weight_orig")]
    assert len(hooks) == len(sn_modules) == 9 and all(isinstance(h, FullPrecisionHook) for h in hooks)
    seen = []
    probe = FullPrecisionHook(lambda module, inputs: seen.append(torch.is_autocast_enabled("cpu")), "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        probe(nets.disA, ())
        seen.append(torch.is_autocast_enabled("cpu"))
    assert seen == [False, True]


def test_bf16_and_channels_last_steps_stay_close_to_fp32():
    real_a, real_b = photo_batches(TINY.img_size, batch_size=1)
    reference = make_trained_like(TINY, SEED)
    ref_losses = TrainStep(reference, *make_optimizers(reference, 1e-4))(real_a, real_b)

    nets = make_trained_like(TINY, SEED)
    for module in nets.as_dict().values():
        module.to(memory_format=torch.channels_last)
    cl_a, cl_b = (x.to(memory_format=torch.channels_last) for x in (real_a, real_b))
    cl_losses = TrainStep(nets, *make_optimizers(nets, 1e-4))(cl_a, cl_b)
    for key in ("d_loss", "g_loss"):
        assert cl_losses[key].item() == pytest.approx(ref_losses[key].item(), rel=1e-5)
    # Other conv kernels reassociate sums; Adam's first step (~lr * sign(grad)) amplifies that only
    # where a gradient is ~0, where the rounding can flip the sign of the step: so every weight is
    # within two steps, and all but a few (108 of the tiny model's 491,288 on an AVX2 CPU) within a quarter.
    assert_steps_close(nets, reference, lr=1e-4)

    nets = make_trained_like(TINY, SEED)
    bf16_losses = TrainStep(nets, *make_optimizers(nets, 1e-4), amp="bf16")(real_a, real_b)
    for key in ("d_loss", "g_loss"):
        assert bf16_losses[key].item() == pytest.approx(ref_losses[key].item(), rel=3e-2)
