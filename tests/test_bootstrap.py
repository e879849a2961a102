"""The bootstrap behind `nicegan eval --baseline`: its count-weighted FID and MMD^2 against the
plain estimators on explicitly repeated rows, and its verdicts on cases whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from nicegan.evaluation.bootstrap import PairedScores, PerImageScores, compare_to_baseline, weighted_fid, weighted_mmd2
from nicegan.evaluation.metrics import fid_from_features, kid_from_features, mmd2_unbiased, polynomial_kernel


def _features(n: int, shift: float, seed: int, d: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A resample as drawn indices and as the counts the bootstrap uses."""
    idx = np.random.default_rng(seed).integers(0, n, n)
    return idx, np.bincount(idx, minlength=n).astype(np.float64)


@pytest.mark.parametrize("n_real, n_fake, d", [(40, 30, 16), (20, 25, 64)])  # n > d and n < d
def test_weighted_fid_equals_fid_of_the_repeated_rows(n_real, n_fake, d):
    real, fake = _features(n_real, 0.0, 1, d), _features(n_fake, 0.3, 2, d)
    (i_r, w_r), (i_f, w_f) = _draw(n_real, 3), _draw(n_fake, 4)
    expected = fid_from_features(real[i_r], fake[i_f], eps=0.0)
    assert weighted_fid(real, w_r, fake, w_f) == pytest.approx(expected, rel=1e-7)
    assert weighted_fid(real, np.ones(n_real), fake, np.ones(n_fake)) == pytest.approx(
        fid_from_features(real, fake, eps=0.0), rel=1e-7)


def test_weighted_mmd2_equals_the_unbiased_mmd2_of_the_repeated_rows():
    x, y = _features(30, 0.0, 5), _features(24, 0.5, 6)
    (i_x, w_x), (i_y, w_y) = _draw(30, 7), _draw(24, 8)
    kernels = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    got = weighted_mmd2(kernels[0], w_x, kernels[1], w_y, kernels[2])
    assert got == pytest.approx(mmd2_unbiased(x[i_x], y[i_y]), rel=1e-9)
    assert weighted_mmd2(kernels[0], np.ones(30), kernels[1], np.ones(24), kernels[2]) == pytest.approx(
        mmd2_unbiased(x, y), rel=1e-9)


def _compare(fake: PerImageScores, baseline: PerImageScores, real: np.ndarray) -> dict:
    full = {"FID": tuple(fid_from_features(real, s.features) for s in (fake, baseline)),
            "KID x100": tuple(kid_from_features(real, s.features)[0] for s in (fake, baseline))}
    return {d.metric: d for d in compare_to_baseline(real, fake, baseline, full, resamples=200, progress=False)}


def test_a_clear_lead_holds_in_every_resample_and_a_tie_in_none():
    real = _features(60, 0.0, 10)
    close, far = _features(60, 0.0, 11), _features(60, 1.0, 12)
    psnr = np.random.default_rng(13).uniform(15, 25, 60)
    ssim = np.random.default_rng(14).uniform(0.5, 0.9, 60)
    rows = np.arange(60)
    fake = PerImageScores(close, PairedScores(rows, psnr + 1.0, ssim))
    baseline = PerImageScores(far, PairedScores(rows, psnr, ssim))
    lead = _compare(fake, baseline, real)
    for metric in ("FID", "KID x100"):
        assert lead[metric].difference < 0 and lead[metric].high < 0 and lead[metric].fake_better_share == 1.0
    assert lead["PSNR (dB)"].low == pytest.approx(1.0) and lead["PSNR (dB)"].high == pytest.approx(1.0)
    assert lead["SSIM"].difference == 0 and lead["SSIM"].fake_better_share == 0.0  # equal: never better

    tie = _compare(baseline, baseline, real)
    assert all(d.difference == 0 and d.low == d.high == 0 and d.fake_better_share == 0 for d in tie.values())


def test_two_draws_of_one_distribution_get_an_interval_around_zero():
    real = _features(80, 0.0, 20)
    result = _compare(PerImageScores(_features(80, 0.2, 21)), PerImageScores(_features(80, 0.2, 22)), real)
    assert set(result) == {"FID", "KID x100"}
    for d in result.values():
        assert d.low < 0 < d.high and 0.05 < d.fake_better_share < 0.95


def test_fake_and_baseline_must_describe_the_same_inputs():
    with pytest.raises(ValueError, match="differ in shape"):
        compare_to_baseline(_features(10, 0, 1), PerImageScores(_features(10, 0, 2)),
                            PerImageScores(_features(9, 0, 3)), {}, resamples=10, progress=False)
