"""`nicegan eval --diversity`: NDB's bins, test and divergence against independent computations,
the look identification, the matched pixel noise, and the command end to end on real photos through
OpenCV's real looks, with a tiny random-init TorchScript extractor standing in for the Inception
(as test_metrics does: a code-path check, its FID is not comparable to published ones)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm

from nicegan.cli import cli
from nicegan.common import pairwise_pixel_distance
from nicegan.datasets.looks import INPUT_LOOK, OPENCV_LOOKS, opencv_look
from nicegan.evaluation.diversity import (
    AMBIGUOUS,
    NO_LOOK,
    different_bins,
    identify_looks,
    jensen_shannon,
    kmeans,
    matched_noise,
    nearest_centre,
    pairwise_feature_distance,
)
from nicegan_testutils import random_crops, real_photos
from test_metrics import TinyExtractor

SIZE = 48
LOOKS = sorted(OPENCV_LOOKS)


def test_kmeans_finds_well_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    points = np.concatenate([c + rng.normal(0, 0.5, (30, 3)) for c in centres])
    found = kmeans(points, 3, seed=1)
    labels = nearest_centre(points, found)
    assert sorted(len(set(labels[i * 30:(i + 1) * 30])) for i in range(3)) == [1, 1, 1]
    assert len(set(labels)) == 3
    for centre in centres:
        assert np.min(np.linalg.norm(found - centre, axis=1)) < 0.5


def test_ndb_counts_the_bins_a_two_proportion_z_test_finds_different():
    p_real, p_fake = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.2, 0.3, 0.5, 0.0])
    n_real, n_fake = 100, 300
    expected = 0
    for a, b in zip(p_real, p_fake):
        pooled = (a * n_real + b * n_fake) / (n_real + n_fake)
        if pooled in (0, 1):
            continue
        z = (a - b) / np.sqrt(pooled * (1 - pooled) * (1 / n_real + 1 / n_fake))
        expected += 2 * norm.sf(abs(z)) < 0.05
    assert different_bins(p_real, n_real, p_fake, n_fake) == expected == 2


def test_jensen_shannon_matches_scipy():
    p, q = np.array([0.1, 0.4, 0.5, 0.0]), np.array([0.3, 0.3, 0.2, 0.2])
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)
    assert jensen_shannon(p, p) == 0 and jensen_shannon(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(np.log(2))


def test_pairwise_distances_are_the_mean_over_pairs():
    images = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 10, 40)])
    assert pairwise_pixel_distance(images) == pytest.approx((10 + 40 + 30) / 3)
    assert pairwise_pixel_distance(images[:1]) == 0
    features = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    assert pairwise_feature_distance(features) == pytest.approx((5 + 8 + 5) / 3)


def test_noise_is_matched_to_the_target_pixel_distance():
    base = [np.stack([crop]) for crop in random_crops(real_photos()["coffee"], 3, SIZE, seed=0)]
    noisy, sigma = matched_noise(base, 4, target=12.0, seed=0)
    achieved = np.mean([pairwise_pixel_distance(images) for images in noisy])
    assert achieved == pytest.approx(12.0, rel=0.02) and sigma > 12.0 * np.sqrt(np.pi) / 2 * 0.9


def photo_looks(photo: np.ndarray) -> list[np.ndarray]:
    """The OpenCV looks of a photo crop (RGB), then the crop itself."""
    return [opencv_look(OPENCV_LOOKS[name][1], SIZE, 2 * SIZE)([photo])[0] for name in LOOKS] + [photo]


def test_each_reference_is_identified_and_a_blend_is_ambiguous():
    photo = random_crops(real_photos()["chelsea"], 1, SIZE, seed=1)[0]
    references = photo_looks(photo)
    found = identify_looks(np.stack(references), references)
    assert list(found) == [*range(len(LOOKS)), NO_LOOK]
    blend = ((references[0].astype(float) + references[1]) / 2).round().astype(np.uint8)
    assert identify_looks(blend[None], references)[0] == AMBIGUOUS


@pytest.fixture(scope="module")
def diversity_case(tmp_path_factory) -> dict[str, Path]:
    """4 photos; the "model" gives each photo every look (sample s = look s), the "deterministic
    model" gives the photo unchanged; LOOKS_DIR as `nicegan data --task looks` writes it."""
    root = tmp_path_factory.mktemp("diversity")

    def write(relative: str, rgb: np.ndarray) -> None:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / relative), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    photos = random_crops(real_photos()["chelsea"], 2, SIZE, seed=2) + random_crops(real_photos()["coffee"], 2, SIZE, 3)
    for i, photo in enumerate(photos):
        references = photo_looks(photo)
        for look, reference in zip((*LOOKS, INPUT_LOOK), references):
            write(f"looks/{look}/p{i}.png", reference)
        for sample, reference in enumerate(references[:len(LOOKS)]):
            write(f"model/p{i}_s{sample}.png", reference)
        write(f"det/p{i}.png", photo)
        write(f"real/p{i}.png", references[i % len(LOOKS)])
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(TinyExtractor().eval()), str(root / "tiny.pt"))
    return {name: root / name for name in ("model", "det", "looks", "real", "tiny.pt")} | {"root": root}


def test_eval_diversity_end_to_end(diversity_case, tmp_path):
    c = diversity_case
    out = tmp_path / "diversity.json"
    result = CliRunner().invoke(cli, ["eval", str(c["real"]), str(c["model"]), "--diversity", "--baseline",
                                      str(c["det"]), "--looks", str(c["looks"]), "--inception-weights",
                                      str(c["tiny.pt"]), "--bootstrap", "20", "--json", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert (scores["n_photos"], scores["samples"], scores["looks"]) == (4, len(LOOKS), LOOKS)
    figures = {f["metric"]: f for f in scores["figures"]}
    covered = figures[f"looks covered (of {len(LOOKS)})"]["values"]
    assert covered == {"model": len(LOOKS), "deterministic": 0, "pixel noise": 0}
    assert figures["looks per photo"]["values"]["model"] == len(LOOKS)
    assert figures["look shares, JSD to uniform"]["values"]["model"] == pytest.approx(0, abs=1e-12)
    assert figures["no look (the input, or ambiguous)"]["values"]["deterministic"] == 1
    pixels = figures["pairwise pixel L1 (levels)"]["values"]
    assert pixels["deterministic"] == 0 and pixels["pixel noise"] == pytest.approx(pixels["model"], rel=0.05)
    for figure in figures.values():
        for name, (low, high) in figure["intervals"].items():
            assert low <= high
    assert figures["looks per photo"]["vs_model"]["deterministic"] == [len(LOOKS), len(LOOKS)]
    for text in ("pixel noise", "looks covered", "NDB JSD", "pairwise Inception distance", "KID x100"):
        assert text in result.output


def test_eval_diversity_refuses_what_it_cannot_measure(diversity_case, tmp_path):
    c, runner = diversity_case, CliRunner()
    common = ["--inception-weights", str(c["tiny.pt"]), "--no-progress"]
    no_baseline = runner.invoke(cli, ["eval", str(c["real"]), str(c["model"]), "--diversity", *common])
    assert no_baseline.exit_code == 1 and "pass --baseline DIR" in no_baseline.output
    not_samples = runner.invoke(cli, ["eval", str(c["real"]), str(c["det"]), "--diversity", "--baseline",
                                      str(c["det"]), *common])
    assert not_samples.exit_code == 1 and "not named NAME_s{SEED}" in not_samples.output
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "p0.png").write_bytes((c["det"] / "p0.png").read_bytes())
    missing = runner.invoke(cli, ["eval", str(c["real"]), str(c["model"]), "--diversity", "--baseline",
                                  str(partial), *common])
    assert missing.exit_code == 1 and "no output for 3 of the 4 photos" in missing.output
    for result in (no_baseline, not_samples, missing):
        assert "Traceback" not in result.output
