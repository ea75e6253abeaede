"""Ground truth for a candidate pool: how well each backbone actually does on the target dataset.

Two measurements, both deterministic for a fixed seed:

- :func:`probe_accuracy` — a cross-validated linear probe on frozen features (standardised features,
  scikit-learn ``LogisticRegression``, stratified K-fold). This is the standard "linear evaluation" number
  that transferability metrics try to predict without training anything.
- :func:`finetune_accuracy` — an optional short full fine-tune (backbone and a new linear head, fixed
  number of steps) scored on a stratified held-out split. Costlier, closer to what a user would do next.

:func:`write_truth_csv` writes ``truth.csv`` (columns ``model,accuracy``), the file
``python -m analyzer evaluate --ground-truth`` reads.
"""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.contracts import Backbone, Dataset
from analyzer.errors import DatasetError
from metrics._validation import check_features, encode_labels

if TYPE_CHECKING:
    from analyzer.records import RecordCache
    from analyzer.store import FeatureStore

#: Bump when the probe's procedure changes, so cached probe results are recomputed.
#: 2: the logistic regression converges to its optimum (``PROBE_TOL``), so its accuracy no longer depends on the
#: BLAS kernel or the last bits of the features.
PROBE_VERSION = 2
#: lbfgs' gradient tolerance. The default 1e-4 stopped ~70 iterations in, short of the optimum, where the iterate
#: depends on float rounding: on notMNIST, features differing by 4e-7 (torch's AVX2 against its AVX-512 kernels)
#: moved two ResNets' accuracies by 0.001. At 1e-10 lbfgs reaches the optimum (the same accuracies as Newton's
#: method to 1e-10, on both sets of features) in 170-400 iterations.
PROBE_TOL = 1e-10

__all__ = ["probe_accuracy", "finetune_accuracy", "write_truth_csv", "read_truth_csv", "probe_models"]


def probe_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 20_000,
) -> float:
    """Mean held-out accuracy of a linear probe over stratified K folds.

    Args:
        features: N×D frozen features (any float dtype; NaN/inf rejected).
        labels: N class labels (any hashable values; remapped internally).
        folds: number of stratified folds (>= 2, <= the size of the smallest class).
        seed: shuffles the fold assignment; the same seed gives the same number.
        C: inverse L2 regularisation strength of the logistic regression (strictly convex: one optimum).
        max_iter: iteration cap of the lbfgs solver, which runs in float64 to the gradient tolerance
            :data:`PROBE_TOL` (the optimum); a fold that reaches the cap warns (its accuracy may then depend on
            float rounding).

    Returns:
        Accuracy in [0, 1], the mean over folds of the fraction of held-out samples classified correctly.
        Higher is better; 1/C is chance for balanced classes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = check_features(features, min_samples=2).astype(np.float64, copy=False)
    encoded = encode_labels(np.asarray(labels), x.shape[0], min_classes=2)
    folds = int(folds)
    if folds < 2:
        raise ValueError(f"probe needs at least 2 folds, got folds={folds}; pass folds=2 or more")
    smallest = int(encoded.counts.min())
    if smallest < folds:
        raise ValueError(
            f"the smallest class has {smallest} samples, fewer than folds={folds}, so stratified "
            f"{folds}-fold cross-validation is impossible; pass folds={max(2, smallest)} or fewer "
            "(needs at least 2 samples per class), or add samples to the small classes"
        )
    from threadpoolctl import threadpool_limits

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    correct = []
    capped = 0
    # One BLAS thread: these fits are small, and multi-threaded BLAS spin-waits badly on a busy machine
    # (measured: minutes instead of seconds per model on 2 shared cores).
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # lbfgs reports an "abnormal" line search when the gradient is at rounding level: that is the optimum
        warnings.simplefilter("ignore")
        for train_idx, test_idx in splitter.split(x, encoded.y):
            # Standardising inside the fold keeps test statistics out of training (no leakage).
            model = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=PROBE_TOL, max_iter=max_iter))
            model.fit(x[train_idx], encoded.y[train_idx])
            capped += int(np.max(model[-1].n_iter_) >= max_iter)
            correct.append(float(np.mean(model.predict(x[test_idx]) == encoded.y[test_idx])))
    if capped:
        warnings.warn(
            f"the linear probe stopped at max_iter={max_iter} in {capped} of {folds} folds, short of its optimum: "
            "its accuracy may differ in the last digit between machines; pass a larger max_iter",
            RuntimeWarning,
            stacklevel=2,
        )
    return float(np.mean(correct))


def finetune_accuracy(
    dataset: Dataset,
    backbone: Backbone,
    *,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 1e-3,
    test_fraction: float = 0.2,
    seed: int = 0,
    threads: int | None = None,
) -> float:
    """Held-out accuracy after a short full fine-tune of ``backbone`` with a new linear head.

    Args:
        dataset: an :mod:`analyzer.datasets` ``Dataset`` (``labels``, ``load_image(i)``).
        backbone: an :mod:`analyzer.sources` ``Backbone`` (``module`` N×3×H×W → N×D, ``preprocess``).
            Its module is deep-copied; the caller's weights are not changed.
        steps: optimiser steps (the fixed budget); batch_size: images per step.
        lr: AdamW learning rate for all parameters.
        test_fraction: share of each class held out for scoring (stratified split with ``seed``).
        seed: seeds the split, the head's initialisation and the batch order.
        threads: torch CPU threads during the fine-tune (None leaves the current setting).

    Returns:
        Accuracy in [0, 1] on the held-out split; higher is better.
    """
    import copy

    import torch
    from sklearn.model_selection import train_test_split

    encoded = encode_labels(np.asarray(dataset.labels), len(dataset), min_classes=2)
    if int(encoded.counts.min()) < 2:
        raise ValueError(
            "fine-tuning needs at least 2 samples in every class (one to train, one to test); "
            "drop the tiny classes or add samples"
        )
    idx = np.arange(len(dataset))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, stratify=encoded.y, random_state=seed
    )
    transform = backbone.preprocess.transform()
    # Images are small (the zoo's are 32×32), so preprocessing everything once is cheaper than a loader.
    images = torch.stack([transform(dataset.load_image(int(i))) for i in idx])
    targets = torch.as_tensor(encoded.y, dtype=torch.long)

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        # The loaded backbone is frozen (requires_grad off, the feature extractors' contract): unfreeze the copy,
        # or only the new head would train and this would be a second linear probe, not a fine-tune.
        module = copy.deepcopy(backbone.module).train().requires_grad_(True)
        with torch.no_grad():
            dim = int(module(images[:2]).shape[1])
        head = torch.nn.Linear(dim, encoded.n_classes)
        params = list(module.parameters()) + list(head.parameters())
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        generator = torch.Generator().manual_seed(seed)
        train_t = torch.as_tensor(train_idx)
        order = train_t[torch.randperm(len(train_t), generator=generator)]
        position = 0
        for _ in range(int(steps)):
            if position + batch_size > len(order):
                order = train_t[torch.randperm(len(train_t), generator=generator)]
                position = 0
            batch = order[position : position + batch_size]
            position += batch_size
            if len(batch) < 2:  # BatchNorm cannot train on a single sample
                batch = order[:2]
            loss = torch.nn.functional.cross_entropy(head(module(images[batch])), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        module.eval()
        with torch.no_grad():
            test_t = torch.as_tensor(test_idx)
            predictions = torch.cat(
                [head(module(images[test_t[i : i + 256]])).argmax(1) for i in range(0, len(test_t), 256)]
            )
        return float((predictions == targets[test_t]).float().mean())
    finally:
        torch.set_num_threads(old_threads)


def probe_models(
    data: str | Dataset,
    models: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    finetune: bool = False,
    finetune_steps: int = 200,
    max_per_class: int | None = None,
    progress: bool = True,
    failures: dict[str, BaseException] | None = None,
    executor: Any = None,
) -> dict[str, dict[str, float]]:
    """Measure ground truth for each model spec on ``data`` (a dataset spec, or an opened ``Dataset``).

    Features come from :func:`analyzer.extract.extract_features` through the feature store, so a probe
    after a ``rank`` run on the same data re-uses the cached features. Results are cached as JSON under
    ``<cache>/probe/`` keyed by the feature entry's key (which pins dataset, weights and preprocessing), the
    folds, the seed and the fine-tune budget, so a repeated probe costs only the store look-ups.

    ``failures``: when a dict is given, a candidate that fails (to load, extract, fine-tune) is recorded there
    (spec -> exception) and the others are still probed; otherwise the first failure is raised. A dataset that
    cannot be probed (one class, a class smaller than ``folds``) raises :class:`DatasetError` before any
    extraction.

    Returns:
        ``{model_spec: {"accuracy": linear-probe accuracy, "seconds": wall time,
        ["finetune_accuracy": ...]}}``, in the order given.

    ``executor`` (an :class:`analyzer.executors.Executor`, e.g. Ray): extracts the candidates' features in
    parallel into the store first (a failed candidate raises its error here); the probes then run here.
    """
    from analyzer.datasets import open_dataset
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.records import RecordCache
    from analyzer.store import FeatureStore

    root = resolve_cache_dir(cache_dir)
    layout = CacheLayout(root)
    records = RecordCache(layout.probe)
    dataset: Dataset
    if isinstance(data, str):
        dataset = open_dataset(data, max_per_class=max_per_class, seed=seed, check_cache=layout.checks)
    else:
        dataset = data
    check_probe_dataset(dataset, folds=folds, finetune=finetune)
    store = FeatureStore(root)
    if executor is not None:
        from analyzer.extract_fanout import extract_on

        fanned = extract_on(executor, dataset, list(models), store=store, progress=progress, command="probe")
        for spec, message in fanned.failures.items():
            from analyzer.errors import BackboneError

            error = BackboneError(f"cannot extract features of {spec}: {message}")
            if failures is None:
                raise error
            failures[spec] = error
        models = [spec for spec in models if spec not in fanned.failures]
    results: dict[str, dict[str, float]] = {}
    for spec in models:
        try:
            results[spec] = _probe_one(
                dataset, spec, store, records, folds, seed, finetune, finetune_steps, progress
            )
        except (KeyboardInterrupt, DatasetError):
            raise  # Ctrl-C, or a fault of the dataset that every candidate would hit
        except Exception as exc:
            if failures is None:
                raise
            failures[spec] = exc
    return results


def check_probe_dataset(dataset: Dataset, *, folds: int, finetune: bool = False) -> None:
    """Refuse, before extraction, a dataset the probe cannot score: fewer than 2 classes, ``folds`` < 2, or a
    class with fewer samples than ``folds`` (stratified cross-validation needs one per fold)."""
    from analyzer.datasets import require_classes
    from analyzer.errors import ConfigError

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(
            f"--folds must be a whole number of at least 2, got {folds!r}", "pass --folds 2 or more"
        )
    require_classes(dataset, purpose="the probe")
    values, counts = np.unique(np.asarray(dataset.labels), return_counts=True)
    smallest = int(counts.min())
    need = max(folds, 2 if finetune else 0)
    if smallest < need:
        name = str(values[int(np.argmin(counts))])
        raise DatasetError(
            f"class {name!r} of dataset {dataset.spec!r} has {smallest} sample(s), fewer than --folds {folds}: "
            "stratified cross-validation needs one per fold",
            f"pass --folds {max(2, smallest)} (at least 2 samples per class needed), or add samples to that class",
        )


def _probe_one(
    dataset: Dataset,
    spec: str,
    store: FeatureStore,
    records: RecordCache,
    folds: int,
    seed: int,
    finetune: bool,
    finetune_steps: int,
    progress: bool,
) -> dict[str, float]:
    """Probe (and optionally fine-tune) one candidate, from the probe cache where it has the result."""
    from analyzer.extract import extract_features

    start = time.perf_counter()
    entry = extract_features(dataset, spec, store=store, progress=progress)
    record = f"{entry.key}-v{PROBE_VERSION}-f{folds}-s{seed}"
    cached = records.get(record)
    row = dict(cached) if isinstance(cached, dict) else {}
    if "accuracy" not in row:
        row["accuracy"] = probe_accuracy(entry.features, entry.labels, folds=folds, seed=seed)
    ft_key = f"finetune_accuracy_{finetune_steps}"
    if finetune and ft_key not in row:
        from analyzer.sources import load_backbone

        row[ft_key] = finetune_accuracy(dataset, load_backbone(spec), steps=finetune_steps, seed=seed)
    if row != cached:
        records.put(record, row)
    out = {"accuracy": row["accuracy"], "seconds": time.perf_counter() - start}
    if finetune:
        out["finetune_accuracy"] = row[ft_key]
    return out


def write_truth_csv(path: str | os.PathLike[str], truth: Mapping[str, float]) -> Path:
    """Write ``truth.csv``: header ``model,accuracy``, one row per model (accuracy in [0, 1]), atomically, recorded
    as the analyzer's own (:mod:`analyzer.outputs`)."""
    from analyzer.outputs import write_all

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["model", "accuracy"])
    for model, accuracy in truth.items():
        writer.writerow([model, f"{float(accuracy):.6f}"])
    path = Path(path)
    return write_all(path.parent, {path.name: buffer.getvalue()})[path.name]  # never half a file


def read_truth_csv(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read a ``model,accuracy`` CSV back into ``{model: accuracy}`` (:func:`analyzer.truth.load_ground_truth`)."""
    from analyzer.truth import load_ground_truth

    return load_ground_truth(path)
