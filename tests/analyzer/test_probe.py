"""Ground truth: the cross-validated linear probe on arrays, truth.csv, and the probe command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzer.errors import TruthError
from analyzer.probe import probe_accuracy, read_truth_csv, write_truth_csv


def _blobs(n_per_class: int, n_classes: int, dim: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(n_classes, dim)) * 5.0
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = centres[labels] + rng.normal(0.0, spread, size=(len(labels), dim))
    return features.astype(np.float32), labels


def test_separable_classes_give_near_perfect_accuracy() -> None:
    features, labels = _blobs(30, 4, 16, spread=0.5)
    assert probe_accuracy(features, labels) > 0.97


def test_random_labels_give_chance_accuracy() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(400, 16))
    labels = rng.integers(0, 4, size=400)
    assert abs(probe_accuracy(features, labels) - 0.25) < 0.1


def test_more_noise_lowers_accuracy() -> None:
    clean = probe_accuracy(*_blobs(30, 5, 8, spread=1.0))
    noisy = probe_accuracy(*_blobs(30, 5, 8, spread=8.0))
    assert noisy < clean


def test_same_seed_same_number_and_string_labels_work() -> None:
    features, labels = _blobs(15, 3, 6, spread=4.0)
    names = np.array(["cat", "dog", "emu"])[labels]
    assert probe_accuracy(features, names, seed=3) == probe_accuracy(features, labels, seed=3)


def test_too_few_samples_per_class_for_the_folds_names_the_fix() -> None:
    features, labels = _blobs(3, 3, 4, spread=1.0)
    with pytest.raises(ValueError, match="folds=3 or fewer"):
        probe_accuracy(features, labels, folds=5)
    with pytest.raises(ValueError, match="at least 2 folds"):
        probe_accuracy(features, labels, folds=1)


def test_bad_features_are_rejected() -> None:
    features, labels = _blobs(10, 2, 4, spread=1.0)
    features[0, 0] = np.nan
    with pytest.raises(ValueError):
        probe_accuracy(features, labels)


def test_truth_csv_round_trips(tmp_path: Path) -> None:
    path = write_truth_csv(tmp_path / "sub" / "truth.csv", {"timm:a@x": 0.5, "timm:b@y": 0.25})
    assert path.read_text().splitlines()[:2] == ["model,regime,accuracy,sem", "timm:a@x,linear,0.500000,"]
    assert read_truth_csv(path) == {"timm:a@x": 0.5, "timm:b@y": 0.25}
    (tmp_path / "bad.csv").write_text("name,score\na,1\n")
    with pytest.raises(TruthError, match="model,accuracy"):
        read_truth_csv(tmp_path / "bad.csv")


def test_probe_command_writes_truth_for_zoo_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer import zoo
    from analyzer.cli import main

    tiny = zoo.Budget("tiny", steps=2, batch_size=16, n_train=32, n_test=16, threads=1)
    pool = [zoo.CandidateConfig("resnet-init", "resnet", None), zoo.CandidateConfig("vit-init", "vit", None)]
    built = zoo.build_zoo(tmp_path, budget=tiny, candidates=pool, progress=False)
    out = tmp_path / "truth.csv"
    argv = [
        "probe",
        "--data",
        "sklearn:digits",
        "--models",
        ",".join(b.spec for b in built),
        "--out",
        str(out),
        "--max-per-class",
        "10",
        "--folds",
        "3",
        "--cache-dir",
        str(tmp_path),
        "--quiet",
    ]
    assert main(argv) == 0
    truth = read_truth_csv(out)
    assert list(truth) == [b.spec for b in built]
    assert all(0.0 <= acc <= 1.0 for acc in truth.values())
    # Random patch-embedding features of the ViT keep enough pixel information to beat chance (0.1) clearly.
    assert max(truth.values()) > 0.25
    assert "wrote" in capsys.readouterr().out
    # Probe results are cached per feature entry: a second probe reads them back unchanged.
    assert len(list((tmp_path / "probe").glob("*.json"))) == len(built)
    out.unlink()
    assert main(argv) == 0
    assert read_truth_csv(out) == truth


def _overlapping(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """10 overlapping classes in 40 dimensions of very different scales: lbfgs at its default tolerance (1e-4)
    stops short of the optimum here (seeds 0 and 4: 0.9325 and 0.945 against the optimum's 0.93 and 0.95)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 40)
    blobs = rng.normal(size=(400, 40)) + 0.6 * rng.normal(size=(10, 40))[labels]
    features = blobs * rng.uniform(0.1, 10, 40)
    return features.astype(np.float32), labels


def _newton_optimum(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    x = features.astype(np.float64)
    accuracies = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels):
        scaler = StandardScaler().fit(x[train])
        model = LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=100)
        model.fit(scaler.transform(x[train]), labels[train])
        accuracies.append(np.mean(model.predict(scaler.transform(x[test])) == labels[test]))
    return float(np.mean(accuracies))


@pytest.mark.parametrize("seed", [0, 4])
def test_the_probe_reaches_the_optimum_of_its_logistic_regression(seed: int) -> None:
    # Stopped short of the optimum, the iterate (and the accuracy) depends on float rounding: the BLAS kernel,
    # the CPU family, the last bits of the features. At the optimum it is what Newton's method finds.
    features, labels = _overlapping(seed)
    assert probe_accuracy(features, labels) == _newton_optimum(features, labels)


def test_features_changed_in_their_last_bits_give_the_same_probe_accuracy() -> None:
    # What torch's AVX2 and AVX-512 kernels do to the same network's features (measured: 4e-7 relative)
    features, labels = _overlapping(0)
    rng = np.random.default_rng(1)
    flip = rng.random(features.shape) < 0.5
    nudged = np.where(flip, np.nextafter(features, np.float32(np.inf)), features).astype(np.float32)
    assert probe_accuracy(nudged, labels) == probe_accuracy(features, labels)
