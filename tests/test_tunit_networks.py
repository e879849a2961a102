"""TUNIT's networks against the official architecture's description: parameter counts at the
official sizes, the AdaIN maths, the shapes and the two-view data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nicegan.models.tunit.networks import AdaIN, Discriminator, Generator, GuidingNet, TunitConfig
from nicegan.models.tunit.views import TwoViews, split_views
from nicegan_testutils import real_photos

TINY = TunitConfig(img_size=32, ch=8, sty_dim=8, k=3)


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def test_parameter_counts_are_the_official_ones_at_128_px():
    """C 9.30 M, G 27.3 M (content encoder 12.2 M, decoder 13.75 M, style MLP 1.38 M ending in the 4,992
    AdaIN means and stds), D 70.9 M: the official networks' counts (reference notes, section 3.2)."""
    config = TunitConfig()
    with torch.device("meta"):
        guiding, generator, discriminator = GuidingNet(), Generator(config), Discriminator(config)
    assert millions(guiding) == pytest.approx(9.30, abs=0.01)
    assert millions(generator) == pytest.approx(27.33, abs=0.01)
    assert millions(generator.cnt_encoder) == pytest.approx(12.20, abs=0.01)
    assert millions(generator.decoder) == pytest.approx(13.75, abs=0.01)
    assert millions(generator.mlp) == pytest.approx(1.38, abs=0.01)
    assert generator.mlp[-1].out_features == 4992
    assert millions(discriminator) == pytest.approx(70.9, abs=0.05)
    with torch.device("meta"):  # 256 px: the official generator width halves, the content stays 16 x 16 x 512
        wide = Generator(TunitConfig(img_size=256))
    assert wide.cnt_encoder.out_channels == 512 and TunitConfig(img_size=256).n_downs == 4


def test_adain_is_the_official_training_mode_batch_norm_of_each_image_and_channel():
    """The official AdaIN2d runs F.batch_norm over x.view(1, N * C, H * W) in training mode."""
    gen = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(2, 4, 5, 6, generator=gen) + 1
    mean, std = torch.randn(2, 4, generator=gen), torch.rand(2, 4, generator=gen) + 0.5
    official = F.batch_norm(x.reshape(1, 8, 30), None, None, std.reshape(8), mean.reshape(8), True, 0.1, 1e-5)
    ours = AdaIN(4)(x, torch.cat([mean, std], 1))
    torch.testing.assert_close(ours, official.view(2, 4, 5, 6), rtol=1e-5, atol=1e-5)


def test_tiny_networks_shapes_and_the_discriminators_domain_logit():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    guiding, generator, discriminator = GuidingNet(TINY.k, TINY.sty_dim, TINY.ch), Generator(TINY), Discriminator(TINY)
    style, logits = guiding(x)
    assert style.shape == (2, 8) and logits.shape == (2, 3)
    torch.testing.assert_close(guiding.moco(x), style)
    content = generator.cnt_encoder(x)
    assert content.shape == (2, 16, 16, 16)   # 32 px: one downsampling, 16 x 16 content
    out = generator.decode(content, style)
    assert out.shape == x.shape and float(out.detach().abs().max()) <= 1
    # One style row serves the whole batch.
    torch.testing.assert_close(generator.decode(content, style[:1]), generator.decode(content, style[:1].expand(2, -1)))
    chosen, all_logits = discriminator(x, torch.tensor([2, 0]))
    assert all_logits.shape == (2, 3)
    torch.testing.assert_close(chosen, torch.stack([all_logits[0, 2], all_logits[1, 0]]))


def test_the_translator_runs_at_any_multiple_of_its_size_multiple():
    torch.manual_seed(0)
    generator = Generator(TINY).eval()
    with torch.no_grad():
        out = generator(torch.zeros(1, 3, 24, 40), torch.randn(1, 8))
    assert out.shape == (1, 3, 24, 40) and TINY.size_multiple == 2


def test_two_views_are_the_resized_image_and_an_augmented_view_reproducible_from_the_seed():
    photo = Image.fromarray(real_photos()["chelsea"])
    views = TwoViews(32)
    first = views(photo, torch.Generator().manual_seed(3))
    assert first.shape == (6, 32, 32) and float(first.min()) >= -1 and float(first.max()) <= 1
    torch.testing.assert_close(views(photo, torch.Generator().manual_seed(3)), first, rtol=0, atol=0)
    x_org, x_tf = split_views(first[None])
    plain = np.asarray(photo.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1
    plain = torch.from_numpy(plain).permute(2, 0, 1)
    assert torch.allclose(x_org[0], plain, atol=1e-6) or torch.allclose(x_org[0], plain.flip(-1), atol=1e-6)
    assert float((x_tf - x_org).abs().mean()) > 0.05   # the view is transformed
