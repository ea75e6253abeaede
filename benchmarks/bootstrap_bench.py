"""Bootstrap ("how sure are we") cost, before and after the resampling fast paths (issue 19).

    .venv/bin/python benchmarks/bootstrap_bench.py [--quick] [--skip-realistic] [--skip-synthetic]
        [--images 200] [--classes 5] [--n 10000] [--d 768] [--c 100] [--candidates 20] [--resamples 200]

(a) the realistic workload: three random-init ImageNet-size timm networks (resnet50, vit_small_patch16_224,
    convnext_tiny; safetensors weights written here), ``--images`` synthetic 224x224 images in ``--classes`` classes,
    the default ``rank`` (logme, knn, ncti, sfda + alpha, 200 resamples). "before" runs it with every resampling
    fast path switched off (each resample scored in turn, as before issue 19); "after" runs it again on the same
    cache with the score records removed (features and spectra are cache hits there, so only scoring and bootstrap
    are compared). The two reports' P(best) and rank intervals are compared.
(b) synthetic features: ``--candidates`` candidates of N x D float32 features, C classes, put in a feature store,
    then the ranking's own stages on them with the default aggregate metrics: one scoring pass, the bootstrap as a
    default ``rank`` runs it (``--resamples``, early stopping on), and the bootstrap scoring every resample
    (``--skip-full`` leaves it out), with their P(best) and rank intervals compared. Then a per-metric table for
    ``--per-metric-candidates`` candidates: fast paths on ("after") and off ("before"), timed on
    ``--synthetic-resamples`` resamples and scaled to 200.

``--quick`` shrinks both (3 tiny timm networks are still built; 40 images; N = 600, D = 96, 3 candidates, 5
resamples) so the script can be smoke-tested. Timings are wall seconds on whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metrics  # noqa: E402
from analyzer.ranking.statistics import stratified_subsamples  # noqa: E402
from metrics._registry import _RESAMPLERS  # noqa: E402

AGGREGATE = ("logme", "knn", "ncti", "sfda")
ARCHITECTURES = ("resnet50", "vit_small_patch16_224", "convnext_tiny")
QUICK_ARCHITECTURES = ("resnet18", "vit_tiny_patch16_224", "convnext_atto")
STAGES = ("features_seconds", "scoring_seconds", "spectrum_seconds", "bootstrap_seconds", "total_seconds")


@contextlib.contextmanager
def generic_resampling() -> Iterator[None]:
    """Every metric scored resample by resample (the behaviour before the fast paths)."""
    saved = dict(_RESAMPLERS)
    _RESAMPLERS.clear()
    try:
        yield
    finally:
        _RESAMPLERS.update(saved)


def build_weights(folder: Path, architectures: tuple[str, ...]) -> list[str]:
    """Random-init weights of each architecture as safetensors; returns ``timm:ARCH@PATH`` specs."""
    import timm
    import torch
    from safetensors.torch import save_file

    specs = []
    for i, arch in enumerate(architectures):
        torch.manual_seed(i)
        model = timm.create_model(arch, pretrained=False)
        path = folder / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        specs.append(f"timm:{arch}@{path}")
    return specs


def build_images(folder: Path, n: int, classes: int, size: int = 224) -> Path:
    """An image folder of ``n`` RGB images: a class colour and a class stripe pattern under noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, size=(classes, 3))
    for i in range(n):
        c = i % classes
        image = np.clip(rng.normal(colours[c], 50.0, size=(size, size, 3)), 0, 255)
        image[:, :: 8 + 4 * c] *= 0.5
        (folder / f"class_{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"class_{c}" / f"{i:04d}.png")
    return folder


def realistic(args: argparse.Namespace, work: Path) -> None:
    from analyzer.paths import CacheLayout
    from analyzer.ranking import Ranker

    archs = QUICK_ARCHITECTURES if args.quick else ARCHITECTURES
    (work / "weights").mkdir()
    specs = build_weights(work / "weights", archs)
    images = build_images(work / "images", args.images, args.classes)
    cache = work / "cache"
    runs = {}
    plans = (("after", args.resamples, False, True), ("early stop", args.resamples, True, True))
    plans += (("before", args.before_resamples, False, False),)
    for label, n, early, fast in plans:
        shutil.rmtree(CacheLayout(cache).scores, ignore_errors=True)  # scores and resamples recomputed
        with contextlib.nullcontext() if fast else generic_resampling():
            ranker = Ranker(str(images), cache_dir=cache, progress=False)
            runs[label] = ranker.run(specs, n_bootstrap=n, bootstrap_early_stop=early).to_dict()
        print(f"(a) {label}: done", flush=True)
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            (Path(args.save) / f"{label.replace(' ', '_')}.json").write_text(
                json.dumps(runs[label], default=str)
            )
    after, early, before = runs["after"], runs["early stop"], runs["before"]
    scale = args.resamples / args.before_resamples
    before_boot = before["timings"]["bootstrap_seconds"] * scale
    print(
        f"\n(a) {len(specs)} random-init timm networks ({', '.join(archs)}), {args.images} images 224x224, "
        f"{args.classes} classes, default rank, {args.resamples} resamples. 'before' (fast paths off) was run "
        f"with {args.before_resamples} resamples and its bootstrap time scaled x{scale:g}; features and spectrum "
        "come from the first run ('after'), later runs hit their caches."
    )
    print("| stage | before s | after s |\n|---|---|---|")
    for stage in STAGES[:-1]:
        a = after["timings"][stage]
        b = before_boot if stage == "bootstrap_seconds" else a
        if stage == "scoring_seconds":
            b = before["timings"][stage]
        print(f"| {stage.removesuffix('_seconds')} | {b:.1f} | {a:.1f} |")
    total_after = sum(after["timings"][s] for s in STAGES[:-1])
    total_before = total_after - after["timings"]["bootstrap_seconds"] + before_boot
    print(f"| total | {total_before:.1f} | {total_after:.1f} |")
    features = after["timings"]["features_seconds"]
    print(
        f"bootstrap / features: before {before_boot / features:.0%}, after "
        f"{after['timings']['bootstrap_seconds'] / features:.0%}; with early stopping "
        f"{early['timings']['bootstrap_seconds']:.1f} s ({early['timings']['bootstrap_seconds'] / features:.0%}), "
        f"{early['bootstrap']['n_resamples']} of {early['bootstrap'].get('n_requested')} resamples"
    )
    rows = {r["model"]: r for r in early["ranking"]}
    print("| model | P(best) | early stop | rank interval | early stop |\n|---|---|---|---|---|")
    for r in after["ranking"]:
        e = rows[r["model"]]
        print(
            f"| {r['model'].split('@')[0]} | {r['p_best']} | {e['p_best']} | {r['rank_interval']} | "
            f"{e['rank_interval']} |"
        )
    print(
        "spectrum seconds per model: "
        + ", ".join(
            f"{m.split('@')[0]} {v.get('seconds', float('nan')):.1f}" for m, v in after["spectrum"].items()
        )
    )


def synthetic_pool(store_dir: Path, n: int, d: int, c: int, k: int) -> tuple[Any, np.ndarray]:
    """``k`` candidates of N x D float32 features (class centres at strength 0.3 + 0.05 j, so candidate k-1 leads)
    put in a feature store as extraction would; returns their ``Extracted`` records and the labels."""
    from analyzer.ranking.stages.features import Extracted
    from analyzer.store import FeatureStore, hash_sequence

    rng = np.random.default_rng(0)
    labels = np.arange(n) % c
    centres = rng.normal(size=(c, d))
    ids = [f"s{i}" for i in range(n)]
    store = FeatureStore(store_dir)
    candidates = []
    for j in range(k):
        features = (rng.normal(size=(n, d)) + (0.3 + 0.05 * j) * centres[labels]).astype(np.float32)
        store.put(f"c{j:02d}", features=features, labels=labels, sample_ids=ids, source_probs=None, meta={})
        candidates.append(Extracted(f"c{j:02d}", f"c{j:02d}", d, False, hash_sequence(ids)))
    return tuple(candidates), labels


def per_metric(pool: list[np.ndarray], labels: np.ndarray, resamples: int) -> None:
    """Each aggregate metric's resampled scoring with its fast path and without (every resample in turn), timed on
    ``resamples`` resamples and scaled to 200 (which overstates the fast paths: their one-off set-up is scaled
    too)."""
    subsets = stratified_subsamples(labels, resamples, 0.8, 0)
    seconds: dict[str, dict[str, float]] = {}
    for label, fast in (("after", True), ("before", False)):
        seconds[label] = {}
        for name in AGGREGATE:
            fn = metrics.resampled_pool_terms if metrics.info(name).pool_level else metrics.compute_resampled
            t0 = time.perf_counter()
            for features in pool:
                fn(name, features, labels, subsets, fast=fast)
            seconds[label][name] = (time.perf_counter() - t0) * 200 / resamples
    print(
        f"\nper metric, {len(pool)} candidate(s), timed on {resamples} resamples and scaled to 200 "
        "(fast paths on = after, off = before)"
    )
    print("| metric | bootstrap before s | after s | speed-up |\n|---|---|---|---|")
    for name in AGGREGATE:
        b, a = seconds["before"][name], seconds["after"][name]
        print(f"| {name} | {b:.1f} | {a:.1f} | {b / a:.1f}x |")
    total_b, total_a = sum(seconds["before"].values()), sum(seconds["after"].values())
    print(f"| all | {total_b:.1f} | {total_a:.1f} | {total_b / total_a:.1f}x |")


def synthetic(args: argparse.Namespace) -> None:
    """(b): the ranking's own scoring and bootstrap stages on synthetic candidates; see the module docstring."""
    from analyzer.executors import InProcessExecutor
    from analyzer.paths import CacheLayout
    from analyzer.ranking.stages.bootstrap import BootstrapInput, run_bootstrap
    from analyzer.ranking.stages.scores import ScoresInput, load_entry, run_scores
    from analyzer.ranking.statistics import bootstrap_summary

    n, d, c, k = (600, 96, 6, 3) if args.quick else (args.n, args.d, args.c, args.candidates)
    total = 20 if args.quick else args.resamples
    params = {m: {} for m in AGGREGATE}
    hib = {m: metrics.info(m).higher_is_better for m in AGGREGATE}
    with tempfile.TemporaryDirectory(prefix="bootstrap-bench-synthetic-") as tmp:
        cands, labels = synthetic_pool(Path(tmp), n, d, c, k)
        print(f"\n(b) synthetic N={n}, D={d}, C={c}, {k} candidates, {', '.join(AGGREGATE)}", flush=True)
        t0 = time.perf_counter()
        scores = run_scores(
            ScoresInput(Path(tmp), cands, AGGREGATE, params), InProcessExecutor(), lambda e: None
        )
        scoring = time.perf_counter() - t0
        runs = {}
        plans = [("default (early stop)", True)] + ([] if args.skip_full else [("every resample", False)])
        for label, early in plans:
            inp = BootstrapInput(
                Path(tmp), cands, AGGREGATE, params, scores.scores, total, 0.8, 0, early_stop=early
            )
            shutil.rmtree(
                CacheLayout(tmp).scores, ignore_errors=True
            )  # no resample list cached by a run before
            t0 = time.perf_counter()
            out = run_bootstrap(inp, InProcessExecutor(), lambda e: None)
            seconds = time.perf_counter() - t0
            models = [x.model for x in cands]
            summary = bootstrap_summary(models, out.tables, hib, n_resamples=out.n_used, seed=0, fraction=0.8)
            runs[label] = (seconds, out.n_used, summary[0], summary[1])
            print(f"(b) bootstrap {label}: {seconds:.1f} s, {out.n_used} resamples", flush=True)
        print("| stage | resamples | seconds | x one scoring pass |\n|---|---|---|---|")
        print(f"| scoring (one pass, {k} candidates) | - | {scoring:.1f} | 1 |")
        for label, (seconds, used, _, _) in runs.items():
            print(f"| bootstrap, {label} | {used} of {total} | {seconds:.1f} | {seconds / scoring:.1f}x |")
        if len(runs) == 2:
            (_, _, p_a, i_a), (_, _, p_b, i_b) = runs.values()
            dp = max(abs(p_a[m] - p_b[m]) for m in p_a)
            di = max(abs(x - y) for m in i_a for x, y in zip(i_a[m], i_b[m], strict=True))
            leader = max(p_b, key=lambda m: p_b[m])
            print(
                f"P(best) early stop vs every resample: largest difference {dp:.3f} (leader {leader}: "
                f"{p_a[leader]:.2f} vs {p_b[leader]:.2f}); rank-interval ends differ by at most {di}"
            )
        pool = [
            np.asarray(load_entry(tmp, x.feature_key).features) for x in cands[: args.per_metric_candidates]
        ]
        if pool:
            per_metric(pool, labels, 5 if args.quick else args.synthetic_resamples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--save", help="(a): also write the three report.json files into this folder")
    parser.add_argument("--skip-realistic", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=200, help="(a): resamples of the rank")
    parser.add_argument(
        "--before-resamples", type=int, default=20, help="(a): resamples of the fast-paths-off run, scaled up"
    )
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--c", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--skip-full", action="store_true", help="(b): skip the every-resample bootstrap")
    parser.add_argument(
        "--per-metric-candidates", type=int, default=2, help="(b): candidates in the per-metric table"
    )
    parser.add_argument(
        "--synthetic-resamples",
        type=int,
        default=10,
        help="(b): per-metric table: resamples timed, scaled to 200",
    )
    args = parser.parse_args()
    if args.quick:
        args.images, args.resamples, args.before_resamples = 40, 20, 5
    if not args.skip_realistic:
        with tempfile.TemporaryDirectory(prefix="bootstrap-bench-") as tmp:
            realistic(args, Path(tmp))
    if not args.skip_synthetic:
        synthetic(args)


if __name__ == "__main__":
    main()
