"""Sample grids' brightness-inversion check (trainer/samples.py and the trainer's use of it)."""
from __future__ import annotations

import torch

from nicegan_testutils import TINY, make_trained_like
from trainer.loop import Trainer, TrainOptions
from trainer.samples import inversion_warning, luminance_correlation, translation_columns


def test_luminance_correlation_is_plus_one_for_tone_changes_and_minus_one_for_negatives():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert abs(luminance_correlation(images, images) - 1) < 1e-6
    assert abs(luminance_correlation(images, 0.5 * images + 0.3) - 1) < 1e-6  # faded and brightened: kept
    assert abs(luminance_correlation(images, -images) + 1) < 1e-6


def test_inversion_warning_only_for_negative_correlation():
    assert inversion_warning("A2B", 0.92, 500) is None
    message = inversion_warning("A2B", -0.886, 500)
    assert message is not None and "A2B" in message and "-0.89" in message and "step 500" in message
    assert "--seed" in message


def invert_generator(gen: torch.nn.Module) -> None:
    """Negate the last conv (bias-free, before tanh): the generator then outputs exactly -output."""
    with torch.no_grad():
        gen.UpBlock2[-2].weight.neg_()


def test_grid_correlation_follows_the_real_networks():
    nets = make_trained_like(TINY)
    images = torch.rand(2, 3, TINY.img_size, TINY.img_size) * 2 - 1
    grid, correlation = translation_columns(nets.disA, nets.gen2B, nets.disB, nets.gen2A, images)
    assert grid.shape == (5 * TINY.img_size, 2 * TINY.img_size, 3)
    with torch.no_grad():
        expected = luminance_correlation(images, nets.gen2B(nets.disA(images)[4]))
    assert abs(correlation - expected) < 1e-5
    invert_generator(nets.gen2B)
    assert abs(translation_columns(nets.disA, nets.gen2B, nets.disB, nets.gen2A, images)[1] + correlation) < 1e-5


def test_trainer_warns_when_a_direction_is_inverted(image_dataset, tmp_path, capsys):
    trainer = Trainer(TrainOptions(data_root=str(image_dataset), out=str(tmp_path / "run"), img_size=TINY.img_size,
                                   ch=TINY.ch, n_res=TINY.n_res, n_dis=TINY.n_dis, workers=0, threads=1,
                                   n_samples=2))
    trainer.nets.gen2B.eval()
    with torch.no_grad():
        images = trainer.sample_images["A"]
        if luminance_correlation(images, trainer.nets.gen2B(trainer.nets.disA.eval()(images)[4])) > 0:
            invert_generator(trainer.nets.gen2B)
    trainer.write_samples()
    out = capsys.readouterr()
    assert "A2B samples are brightness-inverted" in out.out + out.err
    assert (tmp_path / "run" / "samples" / "A2B_0000000.png").exists()
