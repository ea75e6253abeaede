"""What the verified cache costs: writing and reading one feature-store entry with and without its checksums.

    .venv/bin/python benchmarks/cache_checksum_bench.py [--n 50000] [--d 2048] [--repeats 3] [--quick]

One entry of N x D float32 features (plus labels, ids and a 1000-class source_probs when ``--probs``) is written
with ``FeatureStore.put`` and read back with ``get`` + ``.features`` + ``.labels``:

- write, no checksums: ``put`` with the hashing switched off (the store before issue 30);
- write, checksums: ``put`` as it is (every file hashed after it is written);
- read, verified before: ``get`` of an entry this process has verified already (every later read in a process);
- read, verifying: ``get`` as the first read in a process (every file hashed and compared);
- hash only: the sha256 of the entry's files alone.

Each row is the median of ``--repeats`` runs, interleaved (one of each per repeat, so a load that drifts hits every
row alike; wall seconds; the files are in the page cache, as right after an extraction), with the ratio against the
row without checksums timed in the same run, and the process's peak resident memory after the row. Timings are wall seconds on whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.store import FeatureStore, integrity  # noqa: E402
from analyzer.store import core as store_core  # noqa: E402

ROWS = (
    "write, no checksums",
    "write, checksums",
    "read, verified before",
    "read, verifying (1st read)",
    "hash only (sha256 of files)",
)


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

        def write_plain() -> str:
            real = store_core.checksums
            store_core.checksums = lambda folder, names: {}  # type: ignore[assignment]
            try:
                return write()
            finally:
                store_core.checksums = real

        def read(key: str) -> None:
            entry = store.get(key)
            assert entry is not None
            _ = entry.features, entry.labels
            entry.release()

        # interleaved, one of each per repeat: a load that drifts (a shared machine) hits every row alike
        times: dict[str, list[float]] = {name: [] for name in ROWS}
        peaks: dict[str, float] = {}
        for _ in range(args.repeats):
            for (
                name
            ) in ROWS:  # the two writes come first: the second leaves the entry (with checksums) read next
                if name.startswith("write"):
                    clear()
                else:
                    key = store.keys()[0]
                    read(key)  # verified once in this process; "verifying" forgets that, as a new process
                    if name == "read, verifying (1st read)":
                        integrity._verified.clear()
                t0 = time.perf_counter()
                if name == "write, no checksums":
                    write_plain()
                elif name == "write, checksums":
                    write()
                elif name.startswith("read"):
                    read(key)
                else:
                    path = store.entry_path(key)
                    integrity.checksums(path, integrity.entry_files(store.get(key).meta))  # type: ignore[union-attr]
                times[name].append(time.perf_counter() - t0)
                peaks[name] = _peak_mib()

    print(f"entry: N = {args.n}, D = {args.d} float32 ({mib:.0f} MiB of arrays); median of {args.repeats}")
    print(f"{'operation':<28} {'seconds':>8} {'ratio':>7} {'peak RSS MiB':>13}")
    med = {name: statistics.median(values) for name, values in times.items()}
    for name in ROWS:
        base = med["write, no checksums"] if name.startswith("write") else med["read, verified before"]
        print(f"{name:<28} {med[name]:8.3f} {med[name] / base:7.2f} {peaks[name]:13.0f}")


if __name__ == "__main__":
    main()
