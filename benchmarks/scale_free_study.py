"""Scale-free ranking: the scale test and its effect on weighted τ per target (issue 26, item 5).

    .venv/bin/python benchmarks/scale_free_study.py [--targets notmnist,cifar10,digits] [--cache-dir DIR]

Prints two markdown tables:

1. **The scale test** (notMNIST): three copies of the shipped ResNet-20 whose features are multiplied by 0.01, 1
   and 100, scored in the pool of the seven shipped nets, each default metric on the raw features (what the
   metric functions return) and as the ranking scores them (:mod:`analyzer.ranking.scale_free`), with the largest
   relative difference between the copies.
2. **Weighted τ per target**, raw against rescaled, for each default metric and the default aggregate, against
   the linear-probe accuracy (:func:`analyzer.probe.probe_accuracy`) of the same features: notMNIST with the seven
   shipped nets (``assets/notmnist``), CIFAR-10 (``../shared/benchmarks/cifar10``, 600 test images, the same
   nets) when ``../shared`` is beside the repository, and digits with the offline zoo when it is built in the
   cache (``python -m analyzer zoo build``). kNN does not change (it is scale-free and never rescaled).

Everything runs on one BLAS thread; features come from (and go to) the feature store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import metrics  # noqa: E402
from analyzer.ranking.scale_free import scoring_features  # noqa: E402
from analyzer.ranking.statistics import mean_ranks  # noqa: E402
from metrics.correlation import weighted_tau  # noqa: E402

ASSETS = ROOT / "assets" / "notmnist"
SHARED = ROOT.parent / "shared" / "benchmarks"
DEFAULT = ("logme", "knn", "ncti", "sfda", "tmi", "ped")
AGGREGATE = ("logme", "knn", "ncti", "sfda")
SCALES = (0.01, 1.0, 100.0)


def score_pool(
    features: Mapping[str, np.ndarray], labels: np.ndarray, *, rescale: bool
) -> dict[str, dict[str, float]]:
    """``{metric: {model: score}}`` for the default metrics, on raw or rescaled features."""
    models = list(features)

    def given(metric: str, x: np.ndarray) -> np.ndarray:
        return scoring_features(metric, x) if rescale else x

    scores: dict[str, dict[str, float]] = {}
    for metric in DEFAULT:
        if metrics.info(metric).pool_level:
            pooled = metrics.compute_pool(metric, [given(metric, features[m]) for m in models], labels)
            scores[metric] = dict(zip(models, map(float, pooled), strict=True))
        else:
            scores[metric] = {
                m: float(metrics.compute(metric, given(metric, features[m]), labels)) for m in models
            }
    return scores


def aggregate(scores: Mapping[str, Mapping[str, float]], models: Sequence[str]) -> dict[str, float]:
    """The default aggregate, as the ranking computes it (mean rank, lower is better), negated: higher is better."""
    table = np.array([[scores[m][model] for model in models] for m in AGGREGATE])
    agg = mean_ranks(table, [True] * len(AGGREGATE))
    return {model: -float(a) for model, a in zip(models, agg, strict=True)}


def load_target(
    data: str, specs: Sequence[str], cache_dir: str | None, max_per_class: int | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    from analyzer.datasets import open_dataset
    from analyzer.extract import extract_features
    from analyzer.store import FeatureStore

    dataset = open_dataset(data, max_per_class=max_per_class)
    store = FeatureStore(cache_dir)
    feats, labels = {}, np.array([])
    for spec in specs:
        entry = extract_features(dataset, spec, store=store, progress=False, num_workers=0)
        feats[Path(spec.split(":", 1)[1]).stem] = np.asarray(entry.features)
        labels = np.asarray(entry.labels)
    return feats, labels


def scale_test(features: Mapping[str, np.ndarray], labels: np.ndarray) -> str:
    """The scale test's markdown table: each metric per scale, raw and rescaled, and the copies' spread."""
    base = features["cifar10_resnet20"]
    pool = {f"x{c:g}": (base * np.float32(c)).astype(np.float32) for c in SCALES}
    pool.update({m: f for m, f in features.items() if m != "cifar10_resnet20"})
    lines = [
        "| metric | raw ×0.01 | raw ×1 | raw ×100 | raw spread | rescaled ×0.01 | rescaled ×1 | rescaled ×100 "
        "| rescaled spread |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    results = {mode: score_pool(pool, labels, rescale=mode == "rescaled") for mode in ("raw", "rescaled")}
    for metric in DEFAULT:
        cells = [metric]
        for mode in ("raw", "rescaled"):
            values = [results[mode][metric][f"x{c:g}"] for c in SCALES]
            spread = (max(values) - min(values)) / abs(values[1])
            cells += [f"{v:.4f}" for v in values] + [f"{100 * spread:.2g} %"]
        lines.append("| " + " | ".join(cells) + " |")
    for mode in ("raw", "rescaled"):
        agg = aggregate(results[mode], list(pool))
        order = sorted(pool, key=lambda m: -agg[m])
        ranks = [1 + sorted(-agg[m] for m in pool).index(-agg[f"x{c:g}"]) for c in SCALES]
        lines.append(
            f"\n{mode}: aggregate ranks of the copies ×0.01/×1/×100 = {ranks[0]}/{ranks[1]}/{ranks[2]} "
            f"(of {len(pool)}; order {', '.join(order)})"
        )
    return "\n".join(lines)


def tau_rows(name: str, features: Mapping[str, np.ndarray], labels: np.ndarray) -> list[str]:
    """One markdown row per metric (and the aggregate): weighted τ raw, rescaled, and the change."""
    from analyzer.probe import probe_accuracy

    models = list(features)
    truth = [probe_accuracy(features[m], labels) for m in models]
    rows = []
    results = {mode: score_pool(features, labels, rescale=mode == "rescaled") for mode in ("raw", "rescaled")}
    for metric in (*DEFAULT, "aggregate"):
        taus = []
        for mode in ("raw", "rescaled"):
            values = aggregate(results[mode], models) if metric == "aggregate" else results[mode][metric]
            taus.append(weighted_tau([values[m] for m in models], truth))
        rows.append(f"| {name} | {metric} | {taus[0]:.3f} | {taus[1]:.3f} | {taus[1] - taus[0]:+.3f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="notmnist,cifar10,digits", help="comma-separated (default: all)")
    parser.add_argument("--cache-dir", default=None, help="feature store root (default: $ANALYZER_CACHE_DIR)")
    parser.add_argument("--zoo-cache", default=None, help="where the zoo is built (default: --cache-dir)")
    parser.add_argument("--shared", default=str(SHARED), help=f"the shared benchmarks (default {SHARED})")
    args = parser.parse_args(argv)
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    real = [f"torchscript:{p}" for p in sorted((ASSETS / "models").glob("*.pt"))]
    rows = ["| target | metric | τw raw | τw rescaled | change |", "|---|---|---|---|---|"]
    with threadpool_limits(1):
        for name in wanted:
            if name in ("notmnist", "cifar10"):
                data = (
                    ASSETS / "target.npz"
                    if name == "notmnist"
                    else Path(args.shared) / "cifar10" / "target.npz"
                )
                if not data.is_file():
                    print(f"[{name}] skipped: {data} is absent", file=sys.stderr)
                    continue
                features, labels = load_target(str(data), real, args.cache_dir)
                if name == "notmnist":
                    print("### The scale test (notMNIST, ResNet-20 copies in the pool of the seven nets)\n")
                    print(scale_test(features, labels) + "\n", flush=True)
            else:
                from analyzer import zoo

                specs = [c.spec for c in zoo.list_zoo(args.zoo_cache or args.cache_dir)]
                if len(specs) < 2:
                    print("[digits] skipped: no zoo built (python -m analyzer zoo build)", file=sys.stderr)
                    continue
                features, labels = load_target("sklearn:digits", specs, args.cache_dir)
            rows += tau_rows(name, features, labels)
            print(f"[{name}] done", file=sys.stderr, flush=True)
    print("### Weighted τ against the linear probe, raw against rescaled features\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
