"""Sample grids' brightness-inversion check (trainer/samples.py, models/nicegan/samples.py and the trainer's use
of it)."""
from __future__ import annotations

import numpy as np
import torch

from nicegan.models.nicegan.samples import translation_columns
from nicegan.trainer.loop import Trainer
from nicegan.trainer.options import TrainOptions
from nicegan.trainer.samples import LuminanceCheck, inversion_warning, luminance_check
from nicegan_testutils import TINY, make_trained_like, random_crops, real_photos


def photo_batch(count: int = 2, size: int = 64) -> torch.Tensor:
    """Real photo crops in [-1, 1] NCHW: the structure a translation of a photo has."""
    crops = random_crops(real_photos()["astronaut"], count, size, seed=0)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_a_tone_change_keeps_and_a_negative_reverses_the_brightness():
    images = photo_batch()
    kept = luminance_check(images, 0.5 * images + 0.3)        # faded and brightened: kept
    assert abs(kept.correlation - 1) < 1e-5 and abs(kept.contrast - 0.5) < 1e-4 and not kept.inverted
    negative = luminance_check(images, -images)
    assert abs(negative.correlation + 1) < 1e-5 and negative.smoothness > 0.8 and negative.inverted


def test_noise_and_flat_images_are_not_inversions():
    """An early model outputs noise or near-flat images, weakly correlated with the input either way
    (-0.03 at step 4 of a real run): that is no reason to restart a run."""
    images = photo_batch()
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    noisy = luminance_check(images, noise)
    assert abs(noisy.correlation) < 0.1 and noisy.smoothness < 0.2 and not noisy.inverted
    # inverted but buried in noise: strongly negative is not reached
    assert not luminance_check(images, -0.05 * images + noise).inverted
    flat = luminance_check(images, torch.full_like(images, 0.2))
    assert abs(flat.correlation) < 1e-5 and flat.contrast < 1e-5 and not flat.inverted
    faint = luminance_check(images, -0.1 * images)             # a negative, but nearly flat
    assert faint.correlation < -0.99 and not faint.inverted


def test_inversion_warning_only_for_an_inverted_check():
    assert inversion_warning("A2B", LuminanceCheck(0.92, 0.9, 0.9), 500) is None
    assert inversion_warning("A2B", LuminanceCheck(-0.03, 0.4, 0.1), 4) is None
    message = inversion_warning("A2B", LuminanceCheck(-0.886, 0.8, 0.9), 500)
    assert message is not None and "A2B" in message and "-0.89" in message and "step 500" in message
    assert "--seed" in message


def invert_generator(gen: torch.nn.Module) -> None:
    """Negate the last conv (bias-free, before tanh): the generator then outputs exactly -output."""
    with torch.no_grad():
        gen.UpBlock2[-2].weight.neg_()


def test_grid_check_follows_the_real_networks():
    nets = make_trained_like(TINY)
    images = photo_batch(2, TINY.img_size)
    grid, check = translation_columns(nets.disA, nets.gen2B, nets.disB, nets.gen2A, images)
    assert grid.shape == (5 * TINY.img_size, 2 * TINY.img_size, 3)
    with torch.no_grad():
        expected = luminance_check(images, nets.gen2B(nets.disA(images)[4], images))
    assert abs(check.correlation - expected.correlation) < 1e-5
    invert_generator(nets.gen2B)
    inverted = translation_columns(nets.disA, nets.gen2B, nets.disB, nets.gen2A, images)[1]
    assert abs(inverted.correlation + check.correlation) < 1e-5


class Negated(torch.nn.Module):
    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -self.generator(z, x)


def trainer(image_dataset, tmp_path, **options) -> Trainer:
    return Trainer(TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "run"), img_size=TINY.img_size,
                                ch=TINY.ch, n_res=TINY.n_res, n_dis=TINY.n_dis, workers=0, threads=1,
                                n_samples=2, **options))


def test_trainer_warns_when_a_direction_is_inverted(image_dataset, tmp_path, capsys):
    """Residual generators start as the identity: negated, A2B is an exact negative of the photos."""
    run = trainer(image_dataset, tmp_path, residual=True)
    run.model.nets.gen2B = Negated(run.model.nets.gen2B)
    run.write_samples()
    out = capsys.readouterr()
    assert "A2B samples are brightness-inverted" in out.out + out.err
    assert "B2A" not in out.out + out.err
    assert (tmp_path / "run" / "samples" / "A2B_0000000.png").exists()


def test_a_fresh_run_is_not_told_to_restart(image_dataset, tmp_path, capsys):
    trainer(image_dataset, tmp_path).write_samples()
    out = capsys.readouterr()
    assert "inverted" not in out.out + out.err
