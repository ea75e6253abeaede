"""``python -m analyzer zoo build|ls``: the offline candidate pool (see :mod:`analyzer.zoo`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyzer.zoo import BuiltCandidate

NAME = "zoo"
HELP = "build (or list) the offline pool of small timm backbones pretrained on synthetic source tasks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="zoo_action", metavar="ACTION")
    build = actions.add_parser("build", help="train the pool (cached: built candidates are skipped)")
    build.add_argument(
        "--budget", choices=("small", "full"), default="full", help="pool size and steps (default full)"
    )
    build.add_argument(
        "--only", default=None, help="comma-separated candidate names to build (default: the pool)"
    )
    build.add_argument(
        "--cache-dir", default=None, help="cache directory (default: $ANALYZER_CACHE_DIR or data_cache/)"
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    ls = actions.add_parser("ls", help="list the built candidates as model specs")
    ls.add_argument(
        "--cache-dir", default=None, help="cache directory (default: $ANALYZER_CACHE_DIR or data_cache/)"
    )
    ls.add_argument(
        "--long", action="store_true", help="also show source task, source accuracy and train seconds"
    )
    parser.set_defaults(zoo_action=None)


def _describe(candidate: BuiltCandidate) -> str:
    side = candidate.sidecar
    accuracy = side.get("source_accuracy")
    acc = "   -  " if accuracy is None else f"{accuracy:6.3f}"
    return f"{candidate.name:20s} {side.get('source_task', '?'):20s} {acc} {side.get('train_seconds', 0):7.1f}s  {candidate.spec}"


def run(args: argparse.Namespace) -> int:
    from analyzer import zoo

    if args.zoo_action == "build":
        only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
        built = zoo.build_zoo(args.cache_dir, budget=args.budget, only=only, progress=not args.quiet)
        fresh = [b for b in built if not b.cached]
        print(
            f"{len(built)} candidates ({len(fresh)} built now, {len(built) - len(fresh)} cached) in {zoo.zoo_dir(args.cache_dir)}"
        )
        print(f"{'name':20s} {'source task':20s} {'src acc':>6s} {'train':>8s}  spec")
        for candidate in built:
            print(_describe(candidate))
        return 0
    if args.zoo_action == "ls":
        found = zoo.list_zoo(args.cache_dir)
        if not found:
            print("no zoo built yet; run: python -m analyzer zoo build")
            return 0
        for candidate in found:
            print(_describe(candidate) if args.long else candidate.spec)
        return 0
    from analyzer.errors import UsageError

    raise UsageError("no zoo action given", "use `python -m analyzer zoo build` or `zoo ls` (see --help)")
