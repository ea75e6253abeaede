"""What the verified cache costs: writing and reading one feature-store entry with and without its checksums.

    .venv/bin/python benchmarks/cache_checksum_bench.py [--n 50000] [--d 2048] [--repeats 3] [--quick]

One entry of N x D float32 features (plus labels, ids and a 1000-class source_probs when ``--probs``) is written
with ``FeatureStore.put`` and read back with ``get`` + ``.features`` + ``.labels``:

- write, no checksums: ``put`` with the hashing switched off (the store before issue 30);
- write, checksums: ``put`` as it is (every file hashed after it is written);
- read, verified before: ``get`` of an entry this process has verified already (every later read in a process);
- read, verifying: ``get`` as the first read in a process (every file hashed and compared);
- hash only: the sha256 of the entry's files alone.

Each row is the median of ``--repeats`` runs (wall seconds; the files are in the page cache, as right after an
extraction), with the ratio against the row without checksums timed in the same run, and the process's peak
resident memory after the row. Timings are wall seconds on whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.store import FeatureStore, integrity  # noqa: E402
from analyzer.store import core as store_core  # noqa: E402


def _median_seconds(
    run: Callable[[], object], repeats: int, before: Callable[[], None] = lambda: None
) -> float:
    times = []
    for _ in range(repeats):
        before()
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probs", type=int, default=0, help="source classes (0: no source_probs file)")
    parser.add_argument("--quick", action="store_true", help="N = 2000, D = 64, one repeat (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.d, args.repeats = 2000, 64, 1
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((args.n, args.d), dtype=np.float32)
    labels = np.arange(args.n) % 100
    ids = [f"img{i:07d}.png" for i in range(args.n)]
    probs = rng.dirichlet(np.ones(args.probs), size=args.n).astype(np.float32) if args.probs else None
    mib = (feats.nbytes + (probs.nbytes if probs is not None else 0)) / 2**20

    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(Path(tmp))
        counter = iter(range(10_000))

        def write() -> str:
            key = f"{next(counter):064d}"
            store.put(key, features=feats, labels=labels, sample_ids=ids, source_probs=probs)
            return key

        def clear() -> None:  # one entry on disk at a time (a 50 000 x 2 048 entry is 400 MiB)
            store.rm(all=True)

        real = store_core.checksums
        store_core.checksums = lambda folder, names: {}  # type: ignore[assignment]
        try:
            w_plain = _median_seconds(write, args.repeats, before=clear)
        finally:
            store_core.checksums = real
        peak_plain = _peak_mib()
        w_sums = _median_seconds(write, args.repeats, before=clear)
        peak_sums = _peak_mib()
        clear()
        key = write()

        def read() -> None:
            entry = store.get(key)
            assert entry is not None
            _ = entry.features, entry.labels
            entry.release()

        read()  # verified once: the rows below differ only in the hashing
        r_plain = _median_seconds(read, args.repeats)
        r_verify = _median_seconds(read, args.repeats, before=integrity._verified.clear)
        path = store.entry_path(key)
        names = integrity.entry_files(store.get(key).meta)  # type: ignore[union-attr]
        h_only = _median_seconds(lambda: integrity.checksums(path, names), args.repeats)
        peak_read = _peak_mib()

    print(f"entry: N = {args.n}, D = {args.d} float32 ({mib:.0f} MiB of arrays); median of {args.repeats}")
    print(f"{'operation':<28} {'seconds':>8} {'ratio':>7} {'peak RSS MiB':>13}")
    rows = [
        ("write, no checksums", w_plain, w_plain, peak_plain),
        ("write, checksums", w_sums, w_plain, peak_sums),
        ("read, verified before", r_plain, r_plain, peak_read),
        ("read, verifying (1st read)", r_verify, r_plain, peak_read),
        ("hash only (sha256 of files)", h_only, r_plain, peak_read),
    ]
    for name, seconds, base, peak in rows:
        print(f"{name:<28} {seconds:8.3f} {seconds / base:7.2f} {peak:13.0f}")


if __name__ == "__main__":
    main()
