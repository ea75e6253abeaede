"""The feature-space tab: a candidate's cached features in 2-D and the classes its neighbours confuse.

Reads the feature store only (never extracts). Samples with the project's own stratified sampling
(:func:`analyzer.datasets.subsample.stratified_subsample`, the one behind ``--max-per-class``) and counts neighbours with
the kNN metric's own search and vote (:mod:`metrics.knn`, cosine, the run's ``k``), so the confusion's accuracy
equals the table's kNN score whenever the sample is the whole run; :func:`knn_confusion` says when it is not.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from analyzer.datasets.subsample import stratified_subsample
from analyzer.errors import AnalyzerError, CacheError
from analyzer.report_types import DatasetInfo
from analyzer.result import RankingResult


class FeaturesUnavailable(CacheError):
    """The cached features of a candidate cannot be shown (no key recorded, entry pruned, store missing)."""


def sample_indices(labels: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most about ``max_points`` samples, the same share of every class (the project's
    per-class cap, ``ceil(max_points / n_classes)``); all indices when the set is small enough."""
    labels = np.asarray(labels)
    if len(labels) <= max_points:
        return np.arange(len(labels))
    n_classes = len(np.unique(labels))
    return stratified_subsample(labels, max(1, math.ceil(max_points / n_classes)), seed)


@dataclass(frozen=True)
class Projection:
    """A 2-D view of sampled features: ``coords`` (n × 2), ``labels`` (n,), ``method`` ("pca" or "tsne"),
    ``explained``: PCA's explained-variance share per axis (None for t-SNE)."""

    coords: np.ndarray
    labels: np.ndarray
    method: str
    explained: tuple[float, float] | None = None


def project_2d(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    method: str = "pca",
    seed: int = 0,
    tsne_iterations: int = 1000,
) -> Projection:
    """PCA (randomised SVD on wide features) or t-SNE (after PCA to 50 dimensions, ``tsne_iterations`` steps,
    at least 250) of features (n × D)."""
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown projection method {method!r}; use 'pca' or 'tsne'")
    if features.ndim != 2 or features.shape[0] != len(labels) or features.shape[0] < 3:
        raise ValueError(f"need n × D features with n >= 3 and one label per row, got {features.shape}")
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float32)
    x = x - x.mean(axis=0)
    if method == "pca":
        if x.shape[1] < 2:
            return Projection(np.column_stack([x[:, 0], np.zeros(len(x))]), labels, "pca", (1.0, 0.0))
        pca = PCA(
            n_components=2, svd_solver="randomized" if min(x.shape) > 200 else "full", random_state=seed
        )
        coords = pca.fit_transform(x)
        explained = (float(pca.explained_variance_ratio_[0]), float(pca.explained_variance_ratio_[1]))
        return Projection(coords.astype(np.float32), labels, "pca", explained)
    from sklearn.manifold import TSNE

    if x.shape[1] > 50:
        x = PCA(n_components=min(50, x.shape[0]), random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3)))
    tsne = TSNE(
        n_components=2, init="pca", perplexity=perplexity, random_state=seed, max_iter=tsne_iterations
    )
    coords = tsne.fit_transform(x)
    return Projection(coords.astype(np.float32), labels, "tsne")


@dataclass(frozen=True)
class KnnConfusion:
    """Leave-one-out kNN confusion: ``matrix[i, j]`` share of class-``i`` samples voted ``j`` (rows sum to 1),
    ``counts``, ``classes`` (label values in row order), ``accuracy`` (the kNN metric's value on these samples),
    ``k``, ``n_used`` and ``n_total`` (samples in the run), ``note`` (how it relates to the table's kNN)."""

    matrix: np.ndarray
    counts: np.ndarray
    classes: np.ndarray
    accuracy: float
    k: int
    n_used: int
    n_total: int
    note: str


def knn_confusion(
    features: np.ndarray, labels: np.ndarray, *, k: int, n_total: int, table_knn: float | None = None
) -> KnnConfusion:
    """The kNN metric's leave-one-out vote (cosine, ``k``) on ``features`` (n × D), as a confusion matrix."""
    from metrics.knn import neighbours, vote

    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    n = len(y)
    if n < 2:
        raise ValueError("need at least 2 samples for a leave-one-out kNN confusion")
    k = min(k, n - 1)
    idx, dist = neighbours(np.ascontiguousarray(features, dtype=np.float32), k, metric="cosine")
    pred = vote(y[idx], dist, len(classes), weights="uniform")
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (y, pred), 1)
    matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    accuracy = float(np.trace(counts) / n)
    if n == n_total:
        note = f"All {n:,} samples, k = {k}, cosine: the same computation as the table's kNN column"
        if table_knn is not None and abs(table_knn - accuracy) > 1e-9:
            note += f" (the table says {table_knn:.3f}: the cached features differ from the run's)"
    else:
        shown = "" if table_knn is None else f" ({table_knn:.3f})"
        note = (
            f"A stratified sample of {n:,} of the {n_total:,} samples, k = {k}, cosine; the table's kNN{shown} used "
            "all samples, and fewer neighbours to choose from usually lowers the accuracy a little"
        )
    return KnnConfusion(matrix, counts, classes, accuracy, k, n, n_total, note)


def knn_k(result: RankingResult) -> int:
    """The ``k`` the run's kNN metric used (its recorded params over the registered default), so the confusion
    counts the same neighbours as the table's kNN column."""
    import metrics

    params = dict(metrics.info("knn").params)
    if "knn" in result.metric_names():
        params.update(result.metric("knn").params)
    return int(params["k"])


def class_names_for(labels: np.ndarray, dataset: DatasetInfo) -> dict[Any, str]:
    """Display names for label values: the dataset's ``class_names`` when labels are indices into it."""
    names = list(dataset.class_names)
    out: dict[Any, str] = {}
    for value in np.unique(np.asarray(labels)).tolist():
        out[value] = str(names[value]) if isinstance(value, int) and 0 <= value < len(names) else str(value)
    return out


def load_sample(
    cache_dir: str | os.PathLike[str], feature_key: str | None, model: str, *, max_points: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(features n × D float32, labels (n,), N)``: :func:`sample_indices` rows of a candidate's cached entry.

    Only the sampled rows leave the store's flat index. Raises :class:`FeaturesUnavailable` with the fix when the
    entry is not there (pruned, another cache dir, never extracted)."""
    fix = (
        "point the dashboard at the cache the run used (ANALYZER_CACHE_DIR), or run `python -m analyzer rank` "
        "again with the same data and candidates to re-extract"
    )
    if not feature_key:
        raise FeaturesUnavailable(
            f"the report records no cached features for {model} (its extraction failed or was skipped)",
            "re-run the ranking with this candidate to extract and cache its features",
        )
    from analyzer.store import FeatureStore

    try:
        entry = FeatureStore(cache_dir).get(feature_key)
    except AnalyzerError as exc:
        raise FeaturesUnavailable(
            f"the cached features of {model} cannot be read: {exc.message}", exc.fix or fix
        ) from exc
    if entry is None:
        raise FeaturesUnavailable(
            f"the features of {model} (key {feature_key[:12]}…) are not in the cache at {cache_dir}", fix
        )
    labels = np.asarray(entry.labels)
    idx = sample_indices(labels, max_points, seed)
    index = entry.index()
    if hasattr(index, "reconstruct_batch") and len(idx) < len(labels):
        features = index.reconstruct_batch(idx.astype(np.int64))
    else:
        features = np.asarray(entry.features)[idx]
    return np.ascontiguousarray(features, dtype=np.float32), labels[idx], len(labels)
