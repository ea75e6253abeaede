"""``python -m analyzer extract``: extract and cache the frozen features of each candidate on a dataset.

Exit codes: 0 every candidate's features are in the store, 3 some candidates failed (listed; the others are
stored), 2 bad inputs or every candidate failed, 1 an internal failure.
"""

from __future__ import annotations

import argparse
import sys

from analyzer.commands._dataset import print_dataset_notes
from analyzer.commands._options import (
    add_cache_dir,
    add_data_and_models,
    add_dataset_options,
    add_device,
    add_executor,
    add_subsample,
    channel_floats,
    dataset_options,
    executor_settings,
    parse_models,
)
from analyzer.errors import EXIT_OK, EXIT_PARTIAL, Failure, every_candidate_failed
from analyzer.limits import MAX_IMAGE_SIZE, MAX_WORKERS, bounded_int

NAME = "extract"
HELP = "extract each candidate's frozen features on a dataset into the feature store (a no-op when cached)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_and_models(parser)
    add_cache_dir(parser)
    add_device(parser)
    parser.add_argument(
        "--num-workers",
        type=bounded_int("--num-workers", 0, MAX_WORKERS),
        default=None,
        help=f"DataLoader workers, 0 to {MAX_WORKERS} (default: from the CPU count)",
    )
    add_subsample(parser, seed_help="seed of the subsample (default 0)")
    add_dataset_options(parser)
    parser.add_argument(
        "--image-size",
        type=bounded_int("--image-size", 1, MAX_IMAGE_SIZE),
        default=None,
        help=f"override the models' input size (pixels, at most {MAX_IMAGE_SIZE})",
    )
    parser.add_argument(
        "--mean", type=channel_floats, default=None, help="override normalisation mean: m or r,g,b"
    )
    parser.add_argument(
        "--std", type=channel_floats, default=None, help="override normalisation std: s or r,g,b"
    )
    parser.add_argument(
        "--feature-layer", default=None, help="intermediate layer to pool features from (default: pre-logits)"
    )
    parser.add_argument(
        "--no-amp", action="store_true", help="no mixed precision on CUDA (if features come out NaN)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor(parser)


def run(args: argparse.Namespace) -> int:
    from analyzer.config import check_executor_settings
    from analyzer.datasets import open_dataset
    from analyzer.device import resolve_device
    from analyzer.extract import extract_many
    from analyzer.paths import CacheLayout
    from analyzer.sources import parse_spec
    from analyzer.store import FeatureStore

    specs = parse_models(args.models)
    for spec in specs:  # a typo in a prefix costs nothing
        parse_spec(spec)
    resolve_device(args.device)  # a bad --device is one error, not one per candidate
    settings = check_executor_settings(
        executor_settings(args)
    )  # --ray-address without ray is refused, not ignored
    store = FeatureStore(args.cache_dir)
    dataset = open_dataset(
        args.data, **dataset_options(args), check_cache=CacheLayout(store.cache_dir).checks
    )
    print_dataset_notes(dataset)
    before = set(store.keys())
    options = dict(
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        feature_layer=args.feature_layer,
        image_size=args.image_size,
        mean=args.mean,
        std=args.std,
        amp=not args.no_amp,
        progress=not args.no_progress,
    )
    if settings.get("kind", "local") == "local":
        result = extract_many(dataset, specs, store=store, **options)
    else:
        from analyzer.executors import open_executor
        from analyzer.extract_fanout import extract_on

        # Checks every node sees the store and the data before any candidate is sent.
        executor = open_executor(settings, [store.cache_dir, args.data])
        try:
            result = extract_on(executor, dataset, specs, store=store, **options)
        finally:
            executor.close()
    width = max(len(s) for s in specs)
    # seconds and img/s are those of the extraction that made the entry (a cached one cost nothing now)
    print(f"{'model':<{width}}  {'status':<9}  {'key':<12}  {'N x D':>11}  {'seconds':>8}  {'img/s':>8}")
    for spec in specs:
        entry = result.entries.get(spec)
        if entry is None:
            print(f"{spec:<{width}}  {'failed':<9}")
            continue
        timings = entry.meta.get("timings", {})
        shape = f"{entry.num_samples}x{entry.feature_dim}"
        seconds = timings.get("extraction_seconds")
        rate = timings.get("images_per_second")
        print(
            f"{spec:<{width}}  {'cached' if entry.key in before else 'extracted':<9}  {entry.key[:12]}  {shape:>11}  {seconds if seconds is not None else '-':>8}  "
            f"{rate if rate is not None else '-':>8}"
        )
    print(f"feature store: {store.root}")
    if not result.entries:
        # a fanned-out extraction (--executor ray) brings back one line per failure, not the exception
        raise every_candidate_failed(
            {spec: result.errors.get(spec) or Failure(message) for spec, message in result.failures.items()}
        )
    for spec, message in result.failures.items():
        print(f"FAILED {spec}: {message}", file=sys.stderr)
    return EXIT_PARTIAL if result.failures else EXIT_OK
