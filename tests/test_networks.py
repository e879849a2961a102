"""The networks are the official ones: same keys and shapes, and the tricky maths reproduced.

Each numeric test compares against a reference computed by hand (numpy or explicit torch ops), on
parameters that look trained (lamda != 0, distinct rho): fresh initialisation would hide the bugs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nicegan.models.nicegan.checkpoint import NiceConfig, build_networks
from nicegan.models.nicegan.networks import ILN, Discriminator, ResnetGenerator, adaILN
from nicegan_testutils import TINY, make_trained_like

KEYS_FILE = Path(__file__).parent / "data" / "official_state_dict_keys.txt"


def official_table() -> dict[str, list[tuple[str, tuple[int, ...], str]]]:
    """Appendix A of the reference document: module -> [(key, shape, kind)] in state_dict order."""
    table: dict[str, list] = {}
    for line in KEYS_FILE.read_text().splitlines():
        module, key, rest = line.split(None, 2)
        shape_text, kind = rest.rsplit(None, 1)
        shape = tuple(int(s) for s in shape_text.strip("()").split(",") if s.strip())
        table.setdefault(module, []).append((key, shape, kind))
    return table


def state_table(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    params = {name for name, _ in module.named_parameters()}
    return [(k, tuple(v.shape), "param" if k in params else "buffer") for k, v in module.state_dict().items()]


@pytest.mark.parametrize("module_name, light", [("gen2B_light", True), ("gen2B_nonlight", False), ("disA", True)])
def test_state_dict_keys_shapes_and_order_match_official(module_name, light):
    with torch.device("meta"):  # the full generator's 268 M-weight FC needs no real memory here
        nets = build_networks(NiceConfig(light=light))
    module = nets.disA if module_name == "disA" else nets.gen2B
    assert state_table(module) == official_table()[module_name]


def test_discriminator_and_generator_sizes_match_official_counts():
    with torch.device("meta"):
        nets = build_networks(NiceConfig(light=True))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(nets.disA) == 46_874_433
    assert count(nets.gen2B) == 8_104_640


def test_iln_is_softmax_rho_mix_of_unbiased_instance_and_layer_norm():
    torch.manual_seed(0)
    norm = ILN(3)
    with torch.no_grad():
        norm.rho.copy_(torch.tensor([[[0.3, -1.0], [2.0, 0.5], [-0.7, 0.1]]]))
        norm.gamma.copy_(torch.tensor([1.5, -0.5, 2.0]).view(1, 3, 1, 1))
        norm.beta.copy_(torch.tensor([0.1, 0.2, -0.3]).view(1, 3, 1, 1))
    x = torch.randn(2, 3, 3, 4) * 3 + 1  # 12 pixels per map: N-1 vs N differs by ~4 %
    got = norm(x).detach().numpy()

    xn = x.numpy().astype(np.float64)
    rho = norm.rho.detach().numpy()[0].astype(np.float64)
    w = np.exp(rho) / np.exp(rho).sum(axis=1, keepdims=True)
    expected = np.empty_like(xn)
    for b in range(2):
        ln = (xn[b] - xn[b].mean()) / np.sqrt(xn[b].var(ddof=1) + 1e-5)
        for c in range(3):
            inst = (xn[b, c] - xn[b, c].mean()) / np.sqrt(xn[b, c].var(ddof=1) + 1e-5)
            mixed = w[c, 0] * inst + w[c, 1] * ln[c]
            expected[b, c] = mixed * norm.gamma[0, c, 0, 0].item() + norm.beta[0, c, 0, 0].item()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    biased = F.instance_norm(x, eps=1e-5)  # what a careless port would use
    assert not np.allclose(biased.numpy(), expected, atol=1e-3)


def test_adailn_applies_runtime_gamma_beta_per_sample():
    torch.manual_seed(1)
    norm = adaILN(4)
    x = torch.randn(2, 4, 5, 5)
    gamma, beta = torch.randn(2, 4), torch.randn(2, 4)
    out = norm(x, gamma, beta)
    # With rho initialised to [3.2, 1] the IN weight is softmax = e^3.2 / (e^3.2 + e^1).
    w_in = np.exp(3.2) / (np.exp(3.2) + np.exp(1.0))
    inst = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(2, 3), keepdim=True) + 1e-5)
    layer = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(1, 2, 3), keepdim=True) + 1e-5)
    expected = (w_in * inst + (1 - w_in) * layer) * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_cam_attention_uses_raw_weight_orig_not_the_normalised_weight():
    nets = make_trained_like(TINY)
    dis = nets.disA
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        z, cam_logit, heatmap = dis.encode(x)
        x0 = dis.model(x)
        w = dis.fc.weight_orig.view(-1)  # (256-equivalent,) = [gap weights | gmp weights]
        c = x0.shape[1]
        attended = torch.cat([x0 * w[:c].view(1, c, 1, 1), x0 * w[c:].view(1, c, 1, 1)], dim=1)
        expected = F.leaky_relu(dis.lamda * dis.conv1x1(attended) + x0, 0.2)
        torch.testing.assert_close(z, expected, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(heatmap, expected.sum(dim=1, keepdim=True))

        pooled = torch.cat([F.adaptive_avg_pool2d(x0, 1), F.adaptive_max_pool2d(x0, 1)], 1).flatten(1)
        torch.testing.assert_close(cam_logit, pooled @ dis.fc.weight.t())  # the logit uses the SN weight

        normalised = torch.cat([x0 * dis.fc.weight.view(-1)[:c].view(1, c, 1, 1),
                                x0 * dis.fc.weight.view(-1)[c:].view(1, c, 1, 1)], dim=1)
        wrong = F.leaky_relu(dis.lamda * dis.conv1x1(normalised) + x0, 0.2)
        assert (wrong - z).abs().max() > 1e-3


def test_spectral_norm_eval_weight_is_weight_orig_over_sigma_from_stored_u_v():
    nets = make_trained_like(TINY)
    conv = nets.disA.model[1]
    with torch.no_grad():
        nets.disA(torch.randn(1, 3, 64, 64))  # eval forward recomputes .weight without a power step
        w_mat = conv.weight_orig.reshape(conv.weight_orig.shape[0], -1)
        sigma = conv.weight_u @ (w_mat @ conv.weight_v)
        torch.testing.assert_close(conv.weight, conv.weight_orig / sigma)


def test_pixel_shuffle_is_depth_to_space_crd_order():
    gen = ResnetGenerator(ngf=8, n_blocks=1, light=True)
    shuffles = [m for m in gen.UpBlock2 if isinstance(m, torch.nn.PixelShuffle)]
    assert [gen.UpBlock2[i] for i in (5, 13)] == shuffles
    x = torch.arange(2 * 8 * 2 * 3, dtype=torch.float32).view(2, 8, 2, 3)
    out = shuffles[0](x)
    for c in range(2):
        for h in range(2):
            for w in range(3):
                for i in range(2):
                    for j in range(2):
                        assert out[1, c, 2 * h + i, 2 * w + j] == x[1, c * 4 + i * 2 + j, h, w]


def test_translation_shapes_light_any_size_full_fixed_size():
    nets = make_trained_like(TINY)
    with torch.no_grad():
        z = nets.disA(torch.randn(1, 3, 64, 64))[4]
        assert z.shape == (1, 16, 16, 16)
        assert nets.gen2B(z).shape == (1, 3, 64, 64)
        z_small = nets.disA.encode(torch.randn(1, 3, 48, 80))[0]
        y = nets.gen2B(z_small)
        assert y.shape == (1, 3, 48, 80) and y.abs().max() <= 1
    full = build_networks(NiceConfig(img_size=64, ch=8, n_res=1, n_dis=6, light=False))
    assert full.gen2B.FC[0].in_features == 16 * 16 * 32
    with pytest.raises(RuntimeError):
        full.gen2B(torch.randn(1, 16, 12, 20))


def test_discriminator_heads_output_sizes():
    dis = Discriminator(3, 8, 7)
    with torch.no_grad():
        out0, out1, cam, heat, z = dis.eval()(torch.randn(1, 3, 128, 128))
    assert out0.shape == (1, 1, 14, 14) and out1.shape == (1, 1, 2, 2)
    assert cam.shape == (1, 1) and heat.shape == (1, 1, 32, 32) and z.shape == (1, 16, 32, 32)
    with pytest.raises(ValueError, match="n_dis"):
        Discriminator(3, 8, 5)


def test_residual_generator_adds_its_decoded_change_to_the_source_and_starts_as_the_identity():
    gen = ResnetGenerator(3, 3, 8, 2, 64, light=True, residual=True).eval()
    z = torch.randn(2, 16, 12, 20)
    source = torch.rand(2, 3, 48, 80) * 2 - 1
    with torch.no_grad():
        assert torch.equal(gen(z, source), source)
        gen.UpBlock2[-2].weight.normal_(0, 0.5)
        plain = ResnetGenerator(3, 3, 8, 2, 64, light=True)
        plain.load_state_dict(gen.state_dict(), strict=True)  # no extra parameters: the official keys
        got, decoded = gen(z, source), plain.eval()(z)
    assert decoded.abs().max() > 0.1
    assert torch.allclose(got, (source + decoded).clamp(-1, 1), atol=1e-6)
    with pytest.raises(ValueError, match="pass source="):
        gen(z)
