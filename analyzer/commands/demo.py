"""``python -m analyzer demo``: the offline end-to-end demo (issue 7)."""

from __future__ import annotations

import argparse
import sys

NAME = "demo"
HELP = "rank an offline pool of backbones on sklearn digits and validate the ranking against probe accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="cache directory (default: $ANALYZER_CACHE_DIR or data_cache/)")


def run(args: argparse.Namespace) -> int:
    print(
        "The offline demo is not built yet: it needs the candidate zoo (python -m analyzer zoo build), "
        "the ranking command and the probe. See the open issues.",
        file=sys.stderr,
    )
    return 1
