"""Command-line options shared by several commands: one definition, one help text, one parser for each.

Every command that opens a dataset (``rank``, ``extract``, ``probe``) takes the same dataset options
(:func:`add_dataset_options`), so a fix hint naming ``--skip-bad``, ``--split``, ``--image-column`` or
``--label-column`` works on each of them.

``rank`` passes ``default=None`` where a value may also come from its ``--config`` TOML file (a flag left out
must not override the file), so the defaults are parameters here rather than constants.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analyzer.errors import UsageError
from analyzer.inputs import read_user_text
from analyzer.limits import MAX_BATCH_SIZE, MAX_SEED, bounded_int

DATA_HELP = (
    "dataset: image folder, .csv/.jsonl (path,label), .npz, a save_to_disk directory, or sklearn:digits"
)
MODELS_HELP = (
    "model specs, comma-separated (timm:NAME, torchscript:PATH, ...), or @file.txt with one per line"
)
CACHE_DIR_HELP = "cache directory (default: $ANALYZER_CACHE_DIR or data_cache/)"


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def channel_floats(text: str) -> float | list[float]:
    """argparse type: one number (the same for every RGB channel), or three comma-separated numbers."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from exc
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or three (one per RGB channel)")
    return values[0] if len(values) == 1 else values


def parse_models(text: str) -> list[str]:
    """``SPEC[,SPEC...]`` or ``@file.txt`` (one spec per line; blank lines and ``#`` comments ignored).

    Several ``@file`` and spec items may be mixed in the comma list; duplicates are dropped, order kept.
    """
    specs: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            lines = read_user_text(
                path,
                what="model list",
                fix="pass --models @FILE with an existing text file holding one model spec per line",
                kind=UsageError,
            ).splitlines()
            specs.extend(line.split("#", 1)[0].strip() for line in lines)
        else:
            specs.append(item)
    specs = list(dict.fromkeys(s for s in specs if s))
    if not specs:
        raise UsageError(
            "no model spec given", "pass --models SPEC[,SPEC...] or --models @file.txt with one spec per line"
        )
    return specs


def add_data_and_models(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data`` and ``--models`` (not required where a config file may give them)."""
    parser.add_argument("--data", required=required, default=None, help=DATA_HELP)
    parser.add_argument("--models", required=required, default=None, help=MODELS_HELP)


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help=CACHE_DIR_HELP)


def add_subsample(parser: argparse.ArgumentParser, *, seed_default: Any = 0, seed_help: str) -> None:
    """``--max-per-class`` and ``--seed`` (what the seed also drives differs per command, hence ``seed_help``)."""
    parser.add_argument(
        "--max-per-class",
        type=positive_int,
        default=None,
        help="stratified subsample: keep at most N samples per class",
    )
    parser.add_argument(
        "--seed",
        type=bounded_int("--seed", 0, MAX_SEED),
        default=seed_default,
        help=f"{seed_help}; 0 to {MAX_SEED}",
    )


def add_device(parser: argparse.ArgumentParser, *, batch_size_default: int | None = 64) -> None:
    """``--device`` and ``--batch-size`` for the forward passes."""
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--batch-size",
        type=bounded_int("--batch-size", 1, MAX_BATCH_SIZE),
        default=batch_size_default,
        help=f"images per forward pass (default 64, at most {MAX_BATCH_SIZE})",
    )


def add_dataset_options(parser: argparse.ArgumentParser, *, from_config: bool = False) -> None:
    """``--split``, ``--skip-bad``, ``--image-column``, ``--label-column``: how a dataset spec is read.

    ``from_config``: the values may also come from ``rank``'s config file, so a flag left out is None.
    """
    parser.add_argument("--split", default=None, help="keep only this split (a split column or sub-folder)")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        default=None if from_config else False,
        help="skip unreadable images and empty labels (listed as skipped) instead of stopping",
    )
    parser.add_argument(
        "--image-column",
        default=None if from_config else "image",
        help="column of images or image paths in a CSV/JSONL/Hugging Face dataset (default: path or image)",
    )
    parser.add_argument(
        "--label-column",
        default=None if from_config else "label",
        help="column of class labels in a CSV/JSONL/Hugging Face dataset (default: label)",
    )


def dataset_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`analyzer.datasets.open_dataset` keywords of :func:`add_dataset_options` and ``--max-per-class``."""
    return {
        "max_per_class": args.max_per_class,
        "seed": args.seed,
        "split": args.split,
        "skip_bad": bool(args.skip_bad),
        "image_column": args.image_column,
        "label_column": args.label_column,
    }


EXECUTOR_HELP = (
    "where the work runs: local (in this process, the default) or ray (a local Ray instance with every CPU/GPU, "
    "or the cluster given by --ray-address)"
)
RAY_ADDRESS_HELP = (
    "with --executor ray: auto (the cluster this machine joined with `ray start`), HOST:6379 or "
    "ray://HOST:10001; default: start a local Ray instance"
)


def add_executor(parser: argparse.ArgumentParser) -> None:
    """``--executor`` and ``--ray-address`` (None when left out, so a ``--config`` file's choice stands)."""
    parser.add_argument("--executor", choices=("local", "ray"), default=None, help=EXECUTOR_HELP)
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS", help=RAY_ADDRESS_HELP)


def executor_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The executor flags given on the command line, as ``[executor]`` table keys (left-out flags absent)."""
    settings: dict[str, Any] = {}
    if getattr(args, "executor", None):
        settings["kind"] = args.executor
    if getattr(args, "ray_address", None):
        settings["address"] = args.ray_address
        settings.setdefault("kind", "ray")  # an address only means something to Ray
    return settings
