"""The upper bounds of every count and size a user gives, and the memory estimates checked before allocating.

One number per bound, used by every command and the dashboard (``--help`` and the README's "Limits" table quote
them); a value outside its range is a :class:`analyzer.errors.ConfigError` (exit code 2) naming the bound, raised
before any work. A leaf module: it imports nothing of the analyzer but the error kinds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from analyzer.errors import ConfigError

#: bootstrap resamples (``--n-bootstrap``): the default is 200 and early stopping settles most rankings in 60;
#: 100 000 already costs 500x the default's scoring
MAX_N_BOOTSTRAP = 100_000
#: a model's input side in pixels (``--image-size``): 4 096 x 4 096 RGB float32 is 192 MiB per image
MAX_IMAGE_SIZE = 4096
#: images per forward pass (``--batch-size``)
MAX_BATCH_SIZE = 4096
#: rows per resumable extraction shard
MAX_SHARD_SIZE = 1_000_000
#: DataLoader worker processes (``--num-workers``; 0 = load in the main process)
MAX_WORKERS = 256
#: seeds (``--seed``): numpy's and torch's generators take 0 .. 2**32 - 1
MAX_SEED = 2**32 - 1
#: cross-validation folds of the probe (``--folds``)
MAX_FOLDS = 100
#: share of the machine's available memory a single allocation may plan to take
MEMORY_SHARE = 0.8


def check_range(
    value: int | float, *, flag: str, low: int | float, high: int | float, what: str = ""
) -> None:
    """Refuse ``value`` outside ``[low, high]`` with a :class:`ConfigError` naming ``flag`` and the bound."""
    if low <= value <= high:
        return
    meaning = f" ({what})" if what else ""
    raise ConfigError(
        f"{flag} {value} is out of range{meaning}: it must be from {low} to {high:,}".replace(",", " "),
        f"pass {flag} between {low} and {high:,}".replace(",", " "),
    )


def bounded_int(flag: str, low: int, high: int, what: str = "") -> Callable[[str], int]:
    """An argparse ``type=``: an integer in ``[low, high]``, else an argparse error naming the bound (exit 2)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        try:
            check_range(value, flag=flag, low=low, high=high, what=what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"{exc.message}; {exc.fix}") from None
        return value

    parse.__name__ = "int"
    return parse


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(needed: int, *, what: str, fix: str) -> None:
    """Refuse a planned allocation of ``needed`` bytes that exceeds :data:`MEMORY_SHARE` of the available memory,
    with the estimate, before it is made (the kernel would otherwise kill the process without a word)."""
    free = available_memory()
    if free is None or needed <= MEMORY_SHARE * free:
        return
    raise ConfigError(
        f"{what} needs about {human(needed)} of memory, more than this machine has available ({human(free)})",
        fix,
    )


def bootstrap_bytes(
    n_resamples: int, n_samples: int, fraction: float, n_candidates: int, n_metrics: int
) -> int:
    """Memory of the bootstrap's bookkeeping: one round's index sets (int64, at most every resample at once without
    early stopping) plus the score tables (float64 per resample, metric and candidate)."""
    per_resample = max(1, round(n_samples * fraction)) * 8
    return n_resamples * per_resample + n_resamples * max(1, n_candidates) * max(1, n_metrics) * 8


def check_bootstrap_memory(
    n_resamples: int, n_samples: int, fraction: float, n_candidates: int, n_metrics: int
) -> None:
    """Refuse a bootstrap whose bookkeeping (:func:`bootstrap_bytes`) exceeds the machine, before it starts."""
    check_memory(
        bootstrap_bytes(n_resamples, n_samples, fraction, n_candidates, n_metrics),
        what=f"the bootstrap ({n_resamples} resamples of {n_samples} samples)",
        fix="pass a smaller --n-bootstrap (the default 200 is enough for P(best) to 0.03; early stopping often "
        "needs 60), or subsample the target with --max-per-class",
    )


def extraction_bytes(
    n_samples: int,
    feature_dim: int,
    batch_size: int,
    image_size: int,
    n_workers: int,
    n_source_classes: int = 0,
) -> int:
    """Memory of one extraction: the N x D float32 features (and N x Cs source probabilities) held until the entry
    is written, twice (the index copy), plus the float32 input batches in flight (two per worker, as the
    DataLoader prefetches, and the one on the device)."""
    arrays = n_samples * (feature_dim + n_source_classes) * 4 * 2
    batch = batch_size * 3 * image_size * image_size * 4
    return arrays + batch * (2 * max(0, n_workers) + 1)
