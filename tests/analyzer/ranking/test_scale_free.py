"""Scale-free ranking (issue 26, item 5): one rescaling per candidate before the scale-dependent metrics, ties for
scores equal up to rounding, and degenerate features flagged and ranked last."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import metrics
from analyzer.ranking.scale_free import (
    degenerate_reason,
    feature_scale,
    rescales,
    scoring_features,
)
from analyzer.ranking.statistics import rank_values, snap_near_ties
from tests.conftest import PROJECT_ROOT

DEFAULT_LABEL_METRICS = ["logme", "knn", "ncti", "sfda", "tmi", "ped"]
MODELS = PROJECT_ROOT / "assets" / "notmnist" / "models"
TARGET = PROJECT_ROOT / "assets" / "notmnist" / "target.npz"
SCALES = (0.01, 1.0, 100.0)
#: The default metrics whose scores move with the features' scale (kNN's cosine distances do not)
RESCALED = ["logme", "ncti", "sfda", "tmi", "ped"]


def _features(seed: int = 0, n: int = 120, d: int = 16, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n // classes)
    features = rng.normal(size=(n, d)) + 0.5 * rng.normal(size=(classes, d))[labels]
    return features.astype(np.float32), labels


def test_feature_scale_is_the_rms_deviation_and_scales_with_the_features() -> None:
    x, _ = _features()
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    assert feature_scale(x) == pytest.approx(float(np.sqrt(np.mean(centred**2))), rel=1e-12)
    for c in SCALES:
        assert feature_scale((x * np.float32(c)).astype(np.float32)) == pytest.approx(
            c * feature_scale(x), rel=1e-6
        )
    assert feature_scale(np.ones((5, 3), dtype=np.float32)) == 0.0


def test_only_metrics_that_move_with_the_scale_are_rescaled() -> None:
    assert [m for m in DEFAULT_LABEL_METRICS if rescales(m)] == RESCALED
    assert not rescales("leep") and not rescales("nce")  # they read no features
    x, _ = _features()
    assert scoring_features("knn", x) is x
    scaled = scoring_features("sfda", x)
    assert scaled.dtype == np.float32 and feature_scale(scaled) == pytest.approx(1.0, rel=1e-6)
    assert np.array_equal(x, _features()[0])  # the input is never modified


@pytest.mark.parametrize("metric", ["logme", "sfda", "tmi", "ped"])
def test_rescaled_scores_of_scaled_features_agree_where_raw_ones_do_not(metric: str) -> None:
    x, y = _features()
    copies = [(x * np.float32(c)).astype(np.float32) for c in SCALES]
    rescaled = [metrics.compute(metric, scoring_features(metric, f), y) for f in copies]
    assert max(rescaled) - min(rescaled) <= 1e-5 * abs(rescaled[1])
    if metric != "logme":  # LogME moves by about 0.1 % only; the others by far more (the measurement)
        raw = [metrics.compute(metric, f, y) for f in copies]
        assert max(raw) - min(raw) > 2e-3 * abs(raw[1])


def test_degenerate_features_are_flagged_with_the_reason() -> None:
    x, y = _features()
    assert degenerate_reason(x, 4) is None
    assert "same feature vector" in str(degenerate_reason(np.full((50, 8), 3.0, dtype=np.float32), 4))
    low = (x[:, :2] @ np.ones((2, 16), dtype=np.float32)).astype(np.float32)  # rank 1 of 16 dimensions
    assert "numerical rank 1, below the 4 classes" in str(degenerate_reason(low, 4))
    # a long target whose first rows are low rank: the full-set check (Gram path) finds the real rank
    tall = np.vstack([np.repeat(low[:1], 600, axis=0), x]).astype(np.float32)
    assert degenerate_reason(tall, 4) is None


def test_scores_equal_up_to_rounding_share_a_rank() -> None:
    assert rank_values([0.65, 0.65 * (1 + 1e-7), 0.7], method="min") == [2, 2, 1]
    assert rank_values([0.65, 0.651, 0.7], method="min") == [3, 2, 1]
    assert rank_values([1.0, 1.0 - 1e-8, 2.0]) == [2.5, 2.5, 1.0]
    assert list(snap_near_ties(np.array([3.0, 1.0, 1.0 + 1e-9]))) == [3.0, 1.0, 1.0]


def _scaled_copy(folder: Path, name: str, factor: float) -> str:
    """The shipped ResNet-20 with its features multiplied by ``factor`` (a TorchScript file with its sidecar)."""
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module, factor: float) -> None:
            super().__init__()
            self.inner = inner
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * self.factor

    inner = torch.jit.load(str(MODELS / "cifar10_resnet20.pt"))
    path = folder / f"{name}.pt"
    torch.jit.save(torch.jit.script(Scaled(inner, factor)), str(path))
    shutil.copy(MODELS / "cifar10_resnet20.json", folder / f"{name}.json")
    return f"torchscript:{path}"


def _constant(folder: Path) -> str:
    """A backbone that ignores its input: every image gets the same 64 features."""
    import torch

    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.value = torch.nn.Parameter(torch.linspace(0.5, 2.0, 64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.value.expand(x.shape[0], 64) + 0.0 * x.mean()

    path = folder / "constant.pt"
    torch.jit.save(torch.jit.script(Constant()), str(path))
    (folder / "constant.json").write_text(
        json.dumps(json.loads((MODELS / "cifar10_resnet20.json").read_text()))
    )
    return f"torchscript:{path}"


@pytest.fixture(scope="module")
def scaled_pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    folder = tmp_path_factory.mktemp("scaled")
    specs = {f"x{c:g}": _scaled_copy(folder, f"resnet20_x{c:g}", c) for c in SCALES}
    specs["constant"] = _constant(folder)
    specs["lenet"] = f"torchscript:{MODELS / 'mnist_lenet5_clntrained.pt'}"
    specs["tutorial"] = f"torchscript:{MODELS / 'cifar10_tutorialnet.pt'}"
    return specs, folder / "cache"


def _rank(specs: list[str], cache: Path):  # type: ignore[no-untyped-def]
    from analyzer.ranking import Ranker

    ranker = Ranker(str(TARGET), cache_dir=cache, max_per_class=10, num_workers=0, progress=False)
    return ranker.run(specs, metrics=DEFAULT_LABEL_METRICS, n_bootstrap=3)


@pytest.mark.slow
def test_scaled_copies_of_a_backbone_tie_through_the_ranking(
    scaled_pool: tuple[dict[str, str], Path],
) -> None:
    specs, cache = scaled_pool
    result = _rank(list(specs.values()), cache)
    rows = {row["model"]: row for row in result.to_dict()["ranking"]}
    copies = [rows[specs[f"x{c:g}"]] for c in SCALES]
    for metric in DEFAULT_LABEL_METRICS:
        values = [row["scores"][metric] for row in copies]
        assert max(values) - min(values) <= 2e-3 * abs(values[1]), (metric, values)
        assert len({row["metric_ranks"][metric] for row in copies}) == 1, metric
    assert len({row["rank"] for row in copies}) == 1
    assert len({row["aggregate_score"] for row in copies}) == 1
    assert len({(row["p_best"], tuple(row["rank_interval"])) for row in copies}) == 1
    entries = {e["name"]: e for e in result.to_dict()["metrics"]}
    assert [m for m in DEFAULT_LABEL_METRICS if entries[m]["rescaled"]] == RESCALED


@pytest.mark.slow
def test_a_constant_feature_candidate_is_flagged_and_ranked_last(
    scaled_pool: tuple[dict[str, str], Path],
) -> None:
    specs, cache = scaled_pool
    report = _rank([specs["constant"], specs["x1"], specs["lenet"], specs["tutorial"]], cache).to_dict()
    assert report["ranking"][-1]["model"] == specs["constant"]
    assert report["ranking"][-1]["rank"] is None
    assert all(row["rank"] is not None for row in report["ranking"][:-1])
    flagged = {s["metric"] for s in report["skipped"] if s["model"] == specs["constant"]}
    assert flagged == set(DEFAULT_LABEL_METRICS)
    assert all(
        "same feature vector" in s["reason"] for s in report["skipped"] if s["model"] == specs["constant"]
    )


@pytest.mark.slow
def test_replacing_a_backbone_by_a_scaled_copy_changes_no_rank(
    scaled_pool: tuple[dict[str, str], Path],
) -> None:
    specs, cache = scaled_pool
    others = [specs["lenet"], specs["tutorial"]]
    reports = {c: _rank([specs[f"x{c:g}"], *others], cache).to_dict() for c in (0.01, 100.0)}
    low, high = (
        [(row["rank"], row["scores"], row["model"].replace(name, "COPY")) for row in reports[c]["ranking"]]
        for c, name in ((0.01, "x0.01"), (100.0, "x100"))
    )
    assert [(r, m) for r, _, m in low] == [(r, m) for r, _, m in high]
    for (_, a, _), (_, b, _) in zip(low, high, strict=True):
        for metric in DEFAULT_LABEL_METRICS:
            assert a[metric] == pytest.approx(b[metric], rel=2e-3), metric
