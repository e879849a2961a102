"""TUNIT's evaluation (`nicegan eval LABELLED_DIR --model RUN/latest.pt`): the Hungarian cluster
accuracy by hand, k-means baselines that find separable groups, the official mFID input against its
formula, and the command end to end on a real (tiny) run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nicegan.cli import cli
from nicegan.evaluation.metrics import inception_input
from nicegan.evaluation.pseudo_domains import cluster_score, hungarian_matching, kmeans_labels
from test_metrics import TinyExtractor

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    """A random-init TorchScript stand-in for the Inception (a code-path test, as in test_metrics.py)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("extractor") / "tiny.pt"
    torch.jit.save(torch.jit.script(TinyExtractor().eval()), str(path))
    return path


def test_hungarian_matching_finds_the_best_one_to_one_assignment():
    # Pseudo-domains 0, 1, 2 hold mostly classes 2, 0, 1: the matching undoes the permutation.
    predicted = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0])
    labels = np.array([2, 2, 2, 0, 0, 1, 1, 1, 1])
    assert hungarian_matching(predicted, labels, 3, 3) == {0: 2, 1: 0, 2: 1}
    score = cluster_score("x", predicted, labels, 3, 3, resamples=200, seed=0)
    assert score.accuracy == pytest.approx(8 / 9) and score.low <= score.accuracy <= score.high
    # More pseudo-domains than classes: the unmatched domain's images count as wrong.
    assert cluster_score("x", np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]), 3, 2, 10, 0).accuracy == pytest.approx(0.75)


def test_kmeans_separates_well_separated_groups():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (20, 5)), rng.normal(3, 0.1, (20, 5))])
    labels = np.repeat([0, 1], 20)
    assert cluster_score("k-means", kmeans_labels(points, 2, 0), labels, 2, 2, 10, 0).accuracy == 1.0


def test_the_official_mfid_input_is_the_double_normalisation():
    grey = torch.full((1, 3, 8, 8), 127.5)
    standard = inception_input(grey)
    assert standard.shape == (1, 3, 299, 299) and float(standard.abs().max()) < 1e-6
    official = inception_input(grey, official_mfid=True)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(official[0, :, 0, 0].numpy(), 2 * (0.5 - mean) / std - 1, rtol=1e-5)


def test_eval_reports_cluster_accuracy_baselines_and_per_domain_fid(tunit_run, unlabelled_dataset, extractor,
                                                                    tmp_path):
    labelled = unlabelled_dataset / "test"   # one sub-folder per photo: four classes of two images
    args = ["eval", labelled, "--model", tunit_run / "latest.pt", "--inception-weights", extractor,
            "--no-progress", "--bootstrap", 50, "--json", tmp_path / "scores.json"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    for text in ("TUNIT guiding network", "k-means on pixels", "k-means on Inception features", "mean (mFID)",
                 "K = 2 pseudo-domains for 4 classes", "standard FID input"):
        assert text in result.output
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["images"] == 8 and len(scores["domains"]) == 4
    assert all(d["n_fake"] == 6 and d["n_real"] == 2 for d in scores["domains"])
    assert 0 <= scores["clusters"][0]["accuracy"] <= 1
    official = CliRunner().invoke(cli, [str(a) for a in args[:-2]] + ["--official-mfid"])
    assert official.exit_code == 0 and "a double normalisation, not a standard FID" in official.output
    refused = CliRunner().invoke(cli, ["eval", str(labelled)])
    assert refused.exit_code == 1 and "pass FAKE_DIR" in refused.output
