"""``python -m analyzer cache ls | du | rm``: inspect and prune the feature store."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from analyzer.commands._options import add_cache_dir
from analyzer.errors import EXIT_OK, EXIT_PARTIAL, CacheError, UsageError

if TYPE_CHECKING:
    from analyzer.store import FeatureStore

NAME = "cache"
HELP = "inspect, verify and prune the feature store: ls, du, verify, rm [KEY...] [--all] [--stale]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cache_dir(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("ls", help="list the entries: key, model, dataset, N x D, size, created")
    ls.add_argument("--full-keys", action="store_true", help="print the whole 64-character keys")
    sub.add_parser("du", help="disk use: entries, partial shards of interrupted runs, leftover temp dirs")
    sub.add_parser(
        "verify",
        help="hash every entry's files and every cache record against the checksums written with them; "
        "exit 3 when any is damaged",
    )
    rm = sub.add_parser(
        "rm", help="remove entries by key prefix or model-spec glob, --all, or --stale leftovers"
    )
    rm.add_argument(
        "keys", nargs="*", metavar="KEY", help="key prefixes (from `cache ls`) or globs over keys/specs"
    )
    rm.add_argument("--all", action="store_true", help="remove every entry, partial shard and temp dir")
    rm.add_argument(
        "--stale", action="store_true", help="remove leftovers of killed runs and entries of old formats"
    )
    rm.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="remove every entry the patterns match when they match several",
    )
    # `--cache-dir` is accepted after the action too (`cache ls --cache-dir X`), as users type it.
    for action_parser in (ls, sub.choices["du"], sub.choices["verify"], rm):
        action_parser.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from analyzer.store import FeatureStore, cache_parts_usage, human_bytes

    if not args.action:
        raise UsageError(
            "no cache action given", "use `python -m analyzer cache ls`, `cache du` or `cache rm KEY`"
        )
    store = FeatureStore(args.cache_dir, create=False)  # inspecting creates nothing
    if args.action in ("ls", "du", "verify") and not store.cache_dir.is_dir():
        print(f"no cache at {store.cache_dir} (the directory does not exist)")
        return EXIT_OK
    if args.action == "ls":
        rows = store.ls()
        if not rows:
            print(f"no entries in {store.root}")
            return 0
        kw = 64 if args.full_keys else 12
        spec_w = max(5, *(len(str(r["spec"])) for r in rows))
        print(f"{'key':<{kw}}  {'model':<{spec_w}}  {'N x D':>11}  {'size':>10}  {'created':<25}  dataset")
        for r in rows:
            shape = f"{r['n_samples']}x{r['feature_dim']}"
            flag = (
                "  (damaged: unreadable meta.json; `cache rm` it)"
                if r["damaged"]
                else ""
                if r["valid"]
                else "  (stale: another format version)"
            )
            print(
                f"{r['key'][:kw]:<{kw}}  {str(r['spec']):<{spec_w}}  {shape:>11}  {human_bytes(r['bytes']):>10}  "
                f"{str(r['created']):<25}  {r['dataset']}{flag}"
            )
        print(f"{len(rows)} entries in {store.root}")
        return 0
    if args.action == "du":
        usage = store.du()
        print(f"entries        {len(usage.entries):>6}  {human_bytes(sum(usage.entries.values())):>10}")
        print(f"partial shards {'':>6}  {human_bytes(usage.partial):>10}")
        print(f"temp dirs      {'':>6}  {human_bytes(usage.temp):>10}")
        print(
            f"total          {'':>6}  {human_bytes(usage.total):>10}  ({usage.total} bytes in {store.root})"
        )
        others = cache_parts_usage(store.cache_dir)
        if others:
            print(f"\nbeside the feature store, in {store.cache_dir} (`cache rm` does not touch these):")
            for name, size in others.items():
                print(f"{name:<14} {'':>6}  {human_bytes(size):>10}")
            grand = usage.total + sum(others.values())
            print(f"whole cache    {'':>6}  {human_bytes(grand):>10}  ({grand} bytes)")
        return 0
    if args.action == "verify":
        return _verify(store)
    return _remove(store, args)


def _verify(store: FeatureStore) -> int:
    """``cache verify``: every entry and record checked; each damaged one listed with what is wrong (exit 3)."""
    from analyzer.paths import CacheLayout
    from analyzer.records import QUARANTINE_DIR, RecordCache
    from analyzer.store.files import MEMO_DIR

    damaged = 0
    rows = store.verify()
    for row in rows:
        if row["status"] != "ok":
            damaged += row["status"] == "damaged"
            print(f"{row['status']:<8} entry {row['key'][:12]}  {row['spec']}: {row['problem']}")
    layout = CacheLayout(store.cache_dir)
    folders = [
        layout.scores,
        layout.spectrum,
        layout.probe,
        layout.checks,
        layout.figures,
        store.root / MEMO_DIR,
    ]
    n_records = unverifiable = 0
    for folder in folders:
        for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            if QUARANTINE_DIR in path.relative_to(folder).parts:
                continue
            n_records += 1
            problem = RecordCache(folder).problem(path.relative_to(folder).with_suffix("").as_posix())
            if problem is None:
                continue
            if problem.startswith("no checksum"):
                unverifiable += 1
                continue
            damaged += 1
            print(f"damaged  record {path}: {problem}")
    print(
        f"checked {len(rows)} entries and {n_records} records in {store.cache_dir}: {damaged} damaged"
        + (
            f", {unverifiable} records of an older layout (no checksum: never used, recomputed)"
            if unverifiable
            else ""
        )
    )
    if damaged:
        print(
            "damaged entries and records are never used: the next run that reads one moves it into a quarantine/ "
            "folder and computes it again; `cache rm KEY` removes an entry now"
        )
    return EXIT_PARTIAL if damaged else EXIT_OK


def _remove(store: FeatureStore, args: argparse.Namespace) -> int:
    """``cache rm``: an empty pattern is refused; patterns matching several entries list them and need --yes;
    entries a running process reads are kept (exit code 3)."""
    if args.all and args.keys:
        # `rm --all ab80` removed everything: the pattern looked like a restriction but was ignored
        raise UsageError(
            f"--all removes every entry, so it cannot be combined with the patterns {' '.join(map(repr, args.keys))}",
            "drop --all to remove only the entries the patterns match, or drop the patterns to remove everything",
        )
    if store.root.exists() and not os.access(store.root, os.W_OK | os.X_OK):
        raise CacheError(
            f"the feature store {store.root} is read-only, so nothing can be removed from it",
            "make it writable (or run as its owner), then run `cache rm` again",
        )
    wanted = store.match(args.keys) if args.keys and not args.all else []
    if len(wanted) > 1 and not args.yes:
        rows = {r["key"]: r for r in store.ls()}
        listing = "\n".join(f"  {k[:12]}  {rows[k]['spec']}  ({rows[k]['dataset']})" for k in wanted)
        raise UsageError(
            f"{' '.join(map(repr, args.keys))} match {len(wanted)} entries:\n{listing}",
            "add --yes to remove them all, or give a longer key prefix (see `python -m analyzer cache ls`)",
        )
    targets = store.keys() if args.all else wanted
    busy = [k for k in targets if store.in_use(k)]
    removed = store.rm(args.keys, all=args.all, stale=args.stale)
    for item in removed:
        print(f"removed {item}")
    print(f"removed {len(removed)} item(s) from {store.root}")
    kept = [k for k in busy if k not in removed]
    for key in kept:
        print(f"kept {key[:12]}: a running process is reading it; run `cache rm` again when it ends")
    return EXIT_PARTIAL if kept else EXIT_OK
