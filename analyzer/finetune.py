"""Ground truth in the fine-tuning regime: how well each backbone does once the whole network is trained.

``probe --regime finetune`` measures this (``--regime linear``, the default, is :func:`analyzer.probe.probe_accuracy`
on frozen features). The protocol is fixed, so numbers from different runs and machines mean the same thing:

- **Splits**: :data:`PROTOCOL` ``splits`` repeated stratified splits, split ``r`` drawn with seed ``seed + r``:
  20 % of each class held out as the test part, 20 % of the rest as the validation part, the rest (64 %) trained on.
- **Model**: the backbone (every parameter unfrozen, BatchNorm in training mode) and a new ``Linear(D, C)`` head on
  its features, both trained; the head is initialised from ``torch.manual_seed`` of the split's seed.
- **Optimiser**: SGD, momentum 0.9, weight decay 5e-4 on every parameter, mini-batches of 32 in an order drawn
  from the split's seed, constant learning rate; no augmentation (the images are the ones the frozen-feature
  metrics see, preprocessed once with the backbone's own eval transform).
- **Learning rate**: chosen per split from the grid (0.01, 0.001) by the best validation accuracy (ties: the first
  in the grid); for each rate, at most 10 epochs with early stopping (patience 3 epochs without a better validation
  accuracy), keeping the weights of the best validation epoch.
- **Score**: the chosen model's accuracy on the split's test part; reported as the mean over splits and its
  standard error (sample standard deviation / sqrt(splits)).
- **Determinism**: one torch thread and ``torch.use_deterministic_algorithms(True)`` during training; the same
  machine gives the same digits twice. Another CPU family may differ in the last digits (float32 kernels), which is
  why the shipped truth is a file (``assets/notmnist/truth.csv``), not a recomputation.

Each (split, learning rate) run is cached as one record (keyed by the feature-store entry key, which pins dataset,
weights and preprocessing, plus the protocol), so an interrupted run resumes where it stopped and a repeat costs
only the look-ups.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analyzer.contracts import Backbone, Dataset
from analyzer.errors import ConfigError
from metrics._validation import encode_labels

if TYPE_CHECKING:
    import torch

    from analyzer.records import RecordCache

#: Bump when the protocol's procedure changes (not only its numbers), so cached runs are recomputed.
FINETUNE_VERSION = 1

__all__ = [
    "PROTOCOL",
    "FinetuneProtocol",
    "FinetuneResult",
    "check_trainable",
    "check_trainable_specs",
    "finetune_protocol_text",
    "finetune_runs",
    "split_indices",
]


@dataclass(frozen=True)
class FinetuneProtocol:
    """The fine-tuning protocol's numbers (see the module docstring for the procedure they parameterise)."""

    splits: int = 3
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    learning_rates: tuple[float, ...] = (0.01, 0.001)
    max_epochs: int = 4
    patience: int = 2
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def key(self) -> str:
        """A short stable text naming these numbers, for cache records."""
        rates = "_".join(f"{lr:g}" for lr in self.learning_rates)
        return (
            f"ft{FINETUNE_VERSION}-n{self.splits}-t{self.test_fraction:g}-v{self.val_fraction:g}-lr{rates}"
            f"-e{self.max_epochs}-p{self.patience}-b{self.batch_size}-m{self.momentum:g}-wd{self.weight_decay:g}"
        )


#: The one protocol ``probe --regime finetune`` and the shipped truth use.
PROTOCOL = FinetuneProtocol()


def finetune_protocol_text(protocol: FinetuneProtocol = PROTOCOL) -> str:
    """One line describing ``protocol`` (printed by ``probe --regime finetune`` and written in the READMEs)."""
    rates = ", ".join(f"{lr:g}" for lr in protocol.learning_rates)
    return (
        f"full fine-tune (backbone + new linear head), SGD momentum {protocol.momentum:g}, weight decay "
        f"{protocol.weight_decay:g}, batch {protocol.batch_size}, learning rate chosen from ({rates}) on a "
        f"validation split, <= {protocol.max_epochs} epochs with patience {protocol.patience}, no augmentation; "
        f"{protocol.splits} repeated stratified splits ({1 - protocol.test_fraction:.0%} train+val / "
        f"{protocol.test_fraction:.0%} test), mean test accuracy +- standard error"
    )


@dataclass(frozen=True)
class FinetuneResult:
    """One backbone's fine-tuned accuracy: ``accuracy`` (mean test accuracy over splits, in [0, 1], higher is
    better), ``sem`` (its standard error), ``per_split`` (test accuracy per split) and ``learning_rates`` (the rate
    chosen on each split's validation part), ``train_seconds`` (wall seconds the training runs took when they ran,
    read back from their records when cached)."""

    accuracy: float
    sem: float
    per_split: tuple[float, ...]
    learning_rates: tuple[float, ...]
    train_seconds: float = 0.0


#: Sources whose models cannot be trained, with the reason (``probe --regime finetune`` refuses them up front).
UNTRAINABLE_SOURCES: dict[str, str] = {
    "export": "a torch.export program is fixed in the mode it was exported in (BatchNorm cannot switch to training)",
}
_TRAINABLE_FIX = "use --regime linear for this candidate, or give a trainable form of it (timm:, torchvision:, hf:, torchscript:)"


def check_trainable_specs(specs: Sequence[str]) -> None:
    """Refuse (:class:`ConfigError`, exit 2), before loading anything, a spec whose source cannot be trained."""
    from analyzer.sources import parse_spec

    for spec in specs:
        source = parse_spec(spec).source
        if source in UNTRAINABLE_SOURCES:
            raise ConfigError(f"{spec} cannot be fine-tuned: {UNTRAINABLE_SOURCES[source]}", _TRAINABLE_FIX)


def check_trainable(backbone: Backbone) -> None:
    """Refuse (:class:`ConfigError`, exit 2) a backbone the fine-tune cannot train, before any work.

    A ``torch.export`` program is frozen in the mode it was exported in (its graph cannot switch BatchNorm to
    training), and a module without floating-point parameters has nothing to train.
    """
    from analyzer.sources.torchscript_source import ExportExtractor

    spec = backbone.spec
    if isinstance(backbone.module, ExportExtractor):
        raise ConfigError(f"{spec} cannot be fine-tuned: {UNTRAINABLE_SOURCES['export']}", _TRAINABLE_FIX)
    params = [p for p in backbone.module.parameters() if p.is_floating_point()]
    if not params:
        raise ConfigError(f"{spec} cannot be fine-tuned: it has no floating-point parameters", _TRAINABLE_FIX)


def split_indices(
    labels: np.ndarray, split: int, seed: int, protocol: FinetuneProtocol = PROTOCOL
) -> dict[str, np.ndarray]:
    """The ``split``-th stratified train/val/test split of ``labels`` (N encoded labels) as index arrays.

    Split ``r`` uses seed ``seed + r``; the validation part is stratified within the non-test part. Classes too
    small to stratify (fewer than 3 samples) raise ``ValueError`` from scikit-learn.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(
        idx, test_size=protocol.test_fraction, stratify=labels, random_state=seed + split
    )
    train, val = train_test_split(
        rest, test_size=protocol.val_fraction, stratify=labels[rest], random_state=seed + split
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


@contextlib.contextmanager
def deterministic_torch(threads: int = 1) -> Iterator[None]:
    """One torch thread and deterministic algorithms for the block; the previous settings are restored after."""
    import torch

    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_num_threads(threads_before)


def _accuracy(
    module: torch.nn.Module, head: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor
) -> float:
    """Accuracy of ``head(module(images))`` in eval mode, in batches of 256 (no gradients)."""
    import torch

    module.eval()
    head.eval()
    with torch.no_grad():
        predictions = torch.cat(
            [head(module(images[i : i + 256])).argmax(1) for i in range(0, len(images), 256)]
        )
    return float((predictions == targets).float().mean())


def _train_one(
    module: torch.nn.Module,
    initial: dict[str, torch.Tensor],
    data: dict[str, tuple[torch.Tensor, torch.Tensor]],
    n_classes: int,
    lr: float,
    seed: int,
    protocol: FinetuneProtocol,
    on_epoch: Callable[[], None],
) -> dict[str, float]:
    """Fine-tune ``module`` (reset to ``initial`` first) with a new head at ``lr``; early-stop on validation.

    Returns ``{"val": best validation accuracy, "test": test accuracy at that epoch, "epochs": epochs run,
    "best_epoch": the best epoch (1-based; 0 = before training)}``.
    """
    import torch

    module.load_state_dict(initial)
    module.requires_grad_(True)
    torch.manual_seed(seed)
    x_train, y_train = data["train"]
    with torch.no_grad():
        dim = int(module.eval()(x_train[:2]).shape[1])
    head = torch.nn.Linear(dim, n_classes)
    params = [p for p in module.parameters() if p.is_floating_point()] + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best = {"val": -1.0, "test": 0.0, "best_epoch": 0}
    stale, epoch = 0, 0
    for epoch in range(1, protocol.max_epochs + 1):
        module.train()
        head.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), protocol.batch_size):
            batch = order[start : start + protocol.batch_size]
            if (
                len(batch) < 2
            ):  # BatchNorm cannot train on one sample: that last image waits for the next epoch
                continue
            loss = torch.nn.functional.cross_entropy(head(module(x_train[batch])), y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        on_epoch()
        val = _accuracy(module, head, *data["val"])
        if val > best["val"]:
            best = {"val": val, "test": _accuracy(module, head, *data["test"]), "best_epoch": epoch}
            stale = 0
        else:
            stale += 1
            if stale >= protocol.patience:
                break
    return {**best, "epochs": epoch}


def finetune_runs(
    dataset: Dataset,
    backbone: Backbone,
    *,
    records: RecordCache | None = None,
    record_prefix: str = "",
    seed: int = 0,
    protocol: FinetuneProtocol = PROTOCOL,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``backbone`` on ``dataset`` under ``protocol`` and return its mean test accuracy and error.

    Args:
        dataset: an :mod:`analyzer.datasets` ``Dataset`` (``labels``, ``load_image(i)``), already subsampled.
        backbone: a loaded :mod:`analyzer.sources` ``Backbone`` (``module``: N×3×H×W -> N×D); trained in place
            and restored after (weights, frozen flags, eval mode), so the caller's module ends as it was loaded.
        records / record_prefix: where each (split, learning rate) run is cached (None: no cache).
        seed: split ``r`` uses ``seed + r``. progress: a tqdm bar over the epochs.
    """
    import torch
    from tqdm.auto import tqdm

    check_trainable(backbone)
    encoded = encode_labels(np.asarray(dataset.labels), len(dataset), min_classes=2)
    transform = backbone.preprocess.transform()
    images = torch.stack([transform(dataset.load_image(i)) for i in range(len(dataset))])
    targets = torch.as_tensor(encoded.y, dtype=torch.long)
    module = backbone.module
    initial = {k: v.detach().clone() for k, v in module.state_dict().items()}
    trainable_before = [p.requires_grad for p in module.parameters()]
    total = (protocol.splits - 1 + len(protocol.learning_rates)) * protocol.max_epochs
    bar = tqdm(
        total=total, desc=f"fine-tune {backbone.spec[-40:]}", unit="epoch", disable=not progress, leave=False
    )
    per_split: list[float] = []
    chosen: list[float] = []
    train_seconds = 0.0
    try:
        with deterministic_torch():
            for split in range(protocol.splits):
                parts = split_indices(encoded.y, split, seed, protocol)
                data = {name: (images[idx], targets[idx]) for name, idx in parts.items()}
                # The rate is chosen on split 0's validation part only, then kept: the grid costs one split, not all.
                rates = protocol.learning_rates if split == 0 else (chosen[0],)
                runs = []
                for lr in rates:
                    name = f"{record_prefix}{protocol.key()}-s{seed}-r{split}-lr{lr:g}"
                    run = records.get(name) if records is not None else None
                    if not isinstance(run, dict) or not {"val", "test"} <= set(run):
                        t0 = time.perf_counter()
                        run = _train_one(
                            module, initial, data, encoded.n_classes, lr, seed + split, protocol, bar.update
                        )
                        run["seconds"] = time.perf_counter() - t0
                        if records is not None:
                            records.put(name, run)
                    else:
                        bar.update(protocol.max_epochs)
                    runs.append((float(run["val"]), lr, float(run["test"])))
                    train_seconds += float(run.get("seconds") or 0.0)
                best = max(runs, key=lambda r: (r[0], -protocol.learning_rates.index(r[1])))
                per_split.append(best[2])
                chosen.append(best[1])
    finally:
        bar.close()
        # The caller's module ends as it was loaded: weights, frozen flags and eval mode.
        module.load_state_dict(initial)
        for parameter, flag in zip(module.parameters(), trainable_before, strict=True):
            parameter.requires_grad_(flag)
        module.eval()
    values = np.asarray(per_split)
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return FinetuneResult(float(values.mean()), sem, tuple(per_split), tuple(chosen), train_seconds)
