"""The command line: ``python -m analyzer COMMAND ...``.

Each command is one module in ``analyzer/commands/`` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Exit codes (README, "Exit codes and errors"):

* 0: done, every candidate handled;
* 3: done and the output written, but some candidates failed (each listed with its reason);
* 2: the user's input cannot be used (:class:`analyzer.errors.AnalyzerError` and its kinds only):
  ``error: <what is wrong>`` and ``fix: <what to do>``, each on its own line; nothing was written;
* 1: an internal failure (any other exception, ``ValueError`` included): a bug, with the traceback only
  under ``ANALYZER_DEBUG=1``;
* 130: interrupted (Ctrl-C); finished work is cached.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from analyzer.errors import EXIT_INTERNAL, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, AnalyzerError

#: Commands in the order ``--help`` lists them.
COMMANDS = ("demo", "rank", "extract", "evaluate", "probe", "zoo", "cache")

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "build_parser", "main"]


def _load_command(name: str) -> ModuleType:
    return importlib.import_module(f"analyzer.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analyzer",
        description="Rank pretrained backbones for a dataset from their frozen features.",
    )
    from analyzer import __version__

    parser.add_argument("--version", action="version", version=f"backbone-analyzer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = _load_command(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"analyzer.commands.{name}":
                raise
            continue
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except AnalyzerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
        if os.environ.get("ANALYZER_DEBUG"):
            traceback.print_exc()
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; finished work is cached, run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a message, not a traceback
        if os.environ.get("ANALYZER_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in the analyzer; rerun with ANALYZER_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
