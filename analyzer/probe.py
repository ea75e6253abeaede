"""Ground truth for a candidate pool: how well each backbone actually does on the target dataset.

Two measurements, both deterministic for a fixed seed:

- :func:`probe_accuracy` — a cross-validated linear probe on frozen features (standardised features,
  scikit-learn ``LogisticRegression``, stratified K-fold). This is the standard "linear evaluation" number
  that transferability metrics try to predict without training anything.
- the fine-tuning regime (``probe --regime finetune``): the whole backbone and a new linear head trained under
  one fixed protocol (:mod:`analyzer.finetune`). Costlier, closer to what a user does next.

:data:`REGIMES` names the two. :func:`write_truth_csv` writes ``truth.csv`` (columns ``model,regime,accuracy,sem``),
the file ``python -m analyzer evaluate --ground-truth`` reads.
"""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.contracts import Dataset
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

#: The ground-truth regimes: ``linear`` (a linear probe on frozen features, the default) and ``finetune`` (the
#: whole backbone trained, :mod:`analyzer.finetune`).
REGIMES: tuple[str, ...] = ("linear", "finetune")

__all__ = [
    "REGIMES",
    "probe_accuracy",
    "write_truth_csv",
    "write_truth_rows",
    "read_truth_csv",
    "probe_models",
]


def probe_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 20_000,
    fold_accuracies: list[float] | None = None,
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
        fold_accuracies: when a list is given, each fold's accuracy is appended to it (for a standard error).

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
    if fold_accuracies is not None:
        fold_accuracies.extend(correct)
    return float(np.mean(correct))


def probe_models(
    data: str | Dataset,
    models: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    regime: str = "linear",
    max_per_class: int | None = None,
    progress: bool = True,
    failures: dict[str, BaseException] | None = None,
    executor: Any = None,
) -> dict[str, dict[str, Any]]:
    """Measure ground truth for each model spec on ``data`` (a dataset spec, or an opened ``Dataset``).

    ``regime``: ``"linear"`` (the cross-validated linear probe on frozen features) or ``"finetune"`` (the whole
    backbone trained under :data:`analyzer.finetune.PROTOCOL`; ``folds`` is then unused).

    Features come from :func:`analyzer.extract.extract_features` through the feature store, so a probe
    after a ``rank`` run on the same data re-uses the cached features. Results are cached as JSON under
    ``<cache>/probe/`` keyed by the feature entry's key (which pins dataset, weights and preprocessing), the
    folds or the fine-tuning protocol, and the seed, so a repeated probe costs only the store look-ups.

    ``failures``: when a dict is given, a candidate that fails (to load, extract, fine-tune) is recorded there
    (spec -> exception) and the others are still probed; otherwise the first failure is raised. A dataset that
    cannot be probed (one class, a class smaller than ``folds``) raises :class:`DatasetError` before any
    extraction; a candidate that cannot be fine-tuned raises :class:`ConfigError` (exit 2) whatever ``failures``.

    Returns:
        ``{model_spec: {"accuracy": mean accuracy in [0, 1], "sem": its standard error over folds or splits,
        "regime": regime, "seconds": wall time}}``, in the order given.

    ``executor`` (an :class:`analyzer.executors.Executor`, e.g. Ray): extracts the candidates' features in
    parallel into the store first (a failed candidate raises its error here); the probes then run here.
    """
    from analyzer.datasets import open_dataset
    from analyzer.errors import ConfigError
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.records import RecordCache
    from analyzer.store import FeatureStore

    check_regime(regime)
    root = resolve_cache_dir(cache_dir)
    layout = CacheLayout(root)
    records = RecordCache(layout.probe)
    dataset: Dataset
    if isinstance(data, str):
        dataset = open_dataset(data, max_per_class=max_per_class, seed=seed, check_cache=layout.checks)
    else:
        dataset = data
    check_probe_dataset(dataset, folds=folds, regime=regime)
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
    probe_one = _finetune_one if regime == "finetune" else _probe_one
    results: dict[str, dict[str, Any]] = {}
    for spec in models:
        try:
            results[spec] = probe_one(dataset, spec, store, records, folds, seed, progress)
        except (KeyboardInterrupt, DatasetError, ConfigError):
            raise  # Ctrl-C, a fault of the dataset that every candidate would hit, or an untrainable candidate
        except Exception as exc:
            if failures is None:
                raise
            failures[spec] = exc
    return results


def check_regime(regime: str) -> None:
    """Refuse (:class:`ConfigError`, exit 2) a regime other than those of :data:`REGIMES`."""
    from analyzer.errors import ConfigError

    if regime not in REGIMES:
        raise ConfigError(f"unknown ground-truth regime {regime!r}", f"pass --regime {' or '.join(REGIMES)}")


def check_probe_dataset(dataset: Dataset, *, folds: int, regime: str = "linear") -> None:
    """Refuse, before extraction, a dataset the probe cannot score: fewer than 2 classes, ``folds`` < 2, or a
    class with fewer samples than ``folds`` (stratified cross-validation needs one per fold; the fine-tune's
    train/validation/test split needs 3 per class)."""
    from analyzer.datasets import require_classes
    from analyzer.errors import ConfigError

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(
            f"--folds must be a whole number of at least 2, got {folds!r}", "pass --folds 2 or more"
        )
    require_classes(dataset, purpose="the probe")
    values, counts = np.unique(np.asarray(dataset.labels), return_counts=True)
    smallest = int(counts.min())
    name = str(values[int(np.argmin(counts))])
    if regime == "finetune":
        if smallest < 3:
            raise DatasetError(
                f"class {name!r} of dataset {dataset.spec!r} has {smallest} sample(s): the fine-tune's stratified "
                "train/validation/test split needs at least 3 per class",
                "add samples to that class, or use --regime linear",
            )
        return
    if smallest < folds:
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
    progress: bool,
) -> dict[str, Any]:
    """The linear probe of one candidate, from the probe cache where it has the result."""
    from analyzer.extract import extract_features

    start = time.perf_counter()
    entry = extract_features(dataset, spec, store=store, progress=progress)
    record = f"{entry.key}-v{PROBE_VERSION}-f{folds}-s{seed}"
    cached = records.get(record)
    row = dict(cached) if isinstance(cached, dict) else {}
    if "accuracy" not in row or "sem" not in row:
        per_fold: list[float] = []
        row["accuracy"] = probe_accuracy(
            entry.features, entry.labels, folds=folds, seed=seed, fold_accuracies=per_fold
        )
        row["sem"] = float(np.std(per_fold, ddof=1) / np.sqrt(len(per_fold)))  # standard error over folds
    if row != cached:
        records.put(record, row)
    return {
        "accuracy": row["accuracy"],
        "sem": row["sem"],
        "regime": "linear",
        "seconds": time.perf_counter() - start,
    }


def _finetune_one(
    dataset: Dataset,
    spec: str,
    store: FeatureStore,
    records: RecordCache,
    folds: int,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """The fine-tuned accuracy of one candidate (``folds`` unused), each training run cached as it finishes.

    The backbone is loaded and checked trainable first (an untrainable one raises before any extraction); the
    record names start with the feature entry's key, which pins dataset, weights and preprocessing.
    """
    from analyzer.extract import extract_features
    from analyzer.finetune import PROTOCOL, check_trainable, finetune_runs
    from analyzer.sources import load_backbone

    start = time.perf_counter()
    backbone = load_backbone(spec)
    check_trainable(backbone)
    entry = extract_features(dataset, spec, store=store, progress=progress)
    result = finetune_runs(
        dataset,
        backbone,
        records=records,
        record_prefix=f"{entry.key}-",
        seed=seed,
        protocol=PROTOCOL,
        progress=progress,
    )
    return {
        "accuracy": result.accuracy,
        "sem": result.sem,
        "regime": "finetune",
        "seconds": time.perf_counter() - start,
        "learning_rates": list(result.learning_rates),
        "per_split": list(result.per_split),
        "train_seconds": result.train_seconds,
    }


def write_truth_csv(
    path: str | os.PathLike[str],
    truth: Mapping[str, float] | Mapping[str, Mapping[str, Any]],
    *,
    regime: str = "linear",
) -> Path:
    """Write ``truth.csv`` atomically: header ``model,regime,accuracy,sem``, one row per model.

    ``truth``: {model: accuracy in [0, 1]} (the row's regime is ``regime``, its sem empty), or {model: a
    :func:`probe_models` row} (``accuracy``, and ``sem`` and ``regime`` where it has them).
    """
    rows = []
    for model, value in truth.items():
        row = dict(value) if isinstance(value, Mapping) else {"accuracy": value}
        rows.append({"regime": regime, **row, "model": model})
    return write_truth_rows(path, rows)


def write_truth_rows(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write truth rows (each with ``model``, ``regime``, ``accuracy`` and optionally ``sem``) as a
    ``model,regime,accuracy,sem`` CSV, atomically, recorded as the analyzer's own (:mod:`analyzer.outputs`)."""
    from analyzer.outputs import write_all

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["model", "regime", "accuracy", "sem"])
    for row in rows:
        sem = row.get("sem")
        sem_text = f"{float(sem):.6f}" if sem is not None and np.isfinite(float(sem)) else ""
        writer.writerow([row["model"], row["regime"], f"{float(row['accuracy']):.6f}", sem_text])
    path = Path(path)
    return write_all(path.parent, {path.name: buffer.getvalue()})[path.name]  # never half a file


def read_truth_csv(path: str | os.PathLike[str], *, regime: str | None = None) -> dict[str, float]:
    """Read a truth CSV back into ``{model: accuracy}`` (:func:`analyzer.truth.load_ground_truth`; ``regime``
    keeps that regime's rows of a file with a ``regime`` column)."""
    from analyzer.truth import load_ground_truth

    return load_ground_truth(path, regime=regime)
