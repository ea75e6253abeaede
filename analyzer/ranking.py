"""Ranker: candidates x metrics -> RankingResult, with the aggregate, baselines and a bootstrap.

Default metrics and the aggregate
---------------------------------
A default report scores every headline metric, :data:`DEFAULT_METRICS` = ``logme, knn, tmi, ped, sfda,
ncti`` plus the data-free ``alpha``; the aggregate is the **mean rank over** :data:`DEFAULT_AGGREGATE` =
``logme, knn, ncti, sfda`` (with ``metrics`` given: every label metric requested but TMI and PED). TMI and PED are scored and
shown beside it, with each metric's measured record (:mod:`analyzer.metric_record`). Why these four:

* evidence: ``benchmarks/aggregate_study.py`` measured every metric and six aggregates, fixed before looking at
  results, against linear-probe accuracy on three targets (notMNIST and CIFAR-10 with the seven real
  pretrained candidates in ``../shared/benchmarks``, and sklearn digits with the offline zoo). This set had the
  best worst-case weighted tau of those aggregates and zero top-1 regret on every target (README, "Results").
  The first default, ``logme, knn, sfda, tmi``, was dropped because TMI ranked CIFAR-10 *inversely*
  (weighted tau -0.58) and dragged the aggregate down there. No aggregate beat the best single metric (SFDA)
  on every target; the README says so;
* they look at the features from different angles: Bayesian linear evidence (LogME), local neighbourhood
  purity (kNN leave-one-out accuracy), class separability after a Fisher projection (SFDA) and neural-collapse
  geometry normalised across the pool (NCTI); averaging ranks of metrics that fail in different ways is more
  robust than trusting one (the transferability benchmarks find no metric best everywhere);
* none needs a source classifier head, so every backbone (including headless hub models) gets every score;
* all are deterministic and cost seconds at N = 10 000, D = 768, so the bootstrap that re-scores them a few
  hundred times stays affordable. NCTI needs N and D of at least 64; a candidate below that is skipped for
  NCTI (with the reason) and averaged over the metrics it has.

Ranks, not raw scores, are averaged because the metrics live on incomparable scales (nats, accuracies,
mutual information). Ties within a metric get the average of the tied ranks (``scipy.stats.rankdata``
"average"), so a tie neither rewards nor punishes; a candidate missing a metric is averaged over the metrics it
has. The displayed ranks (``rank``, ``metric_ranks``) are competition ranks: tied candidates share the better
rank.

``alpha`` (weightwatcher, :mod:`analyzer.spectrum`) is data-free: it measures how well a backbone was trained,
not how well its features fit *this* dataset, so it is reported beside the aggregate, not in it (add it with
``aggregate=[..., "alpha"]`` if you want it). Its score is the summary ``alpha_weighted`` with
``higher_is_better = False`` (lower is better trained, and the weighted form is the one comparable across
architectures). The baselines ``num_params`` and ``source_accuracy`` (both higher is better) are always
reported, with each metric's Kendall tau against them, because simple priors often rival transferability
metrics.

Bootstrap
---------
"How sure are we" re-scores the aggregate metrics on :attr:`Ranker.run`'s ``n_bootstrap`` (default 200)
resamples of the target samples, reusing the cached features. Each resample draws
``bootstrap_fraction`` (0.8) of every class *without* replacement (a subsampling bootstrap): drawing with
replacement would put exact duplicates in the set, which makes neighbour-based metrics (kNN, TMI) find each
sample's copy as its neighbour and inflates their scores. From the resamples: ``p_best`` (share of resamples in
which the candidate has the best aggregate; ties split) and a 95 % rank interval (2.5th-97.5th percentile of its
rank). Candidates that are best in at least :data:`TIED_P_BEST` of the resamples are "statistically tied" at
the top, and the report says so.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from analyzer.environment import environment_info
from analyzer.errors import AnalyzerError
from analyzer.metric_record import aggregate_reason
from analyzer.naming import short_names
from analyzer.result import AGGREGATE, RankingResult, atomic_write_text
from analyzer.truth import load_ground_truth

#: The label-based metrics every default report scores: the product's headline metrics.
DEFAULT_METRICS: tuple[str, ...] = ("logme", "knn", "ncti", "sfda", "tmi", "ped")
#: The default aggregate, a subset of them (see the module docstring and analyzer/metric_record.json for why).
DEFAULT_AGGREGATE: tuple[str, ...] = ("logme", "knn", "ncti", "sfda")
#: Data-free metrics: computed from weights, not features.
DATA_FREE_METRICS: tuple[str, ...] = ("alpha",)
#: Baselines reported beside every ranking.
BASELINES: tuple[str, ...] = ("num_params", "source_accuracy")
#: A candidate best in at least this share of bootstrap resamples is "tied at the top".
TIED_P_BEST = 0.05
#: A metric "agrees" with a candidate's aggregate position when its rank is within this many places.
AGREE_TOLERANCE = 1


class RankingError(AnalyzerError):
    """A ranking cannot be run as asked (unknown metric names, no candidate left, bad options)."""


# ====================================================================== pure helpers
def rank_values(values: Sequence[float | None], *, higher_is_better: bool = True, method: str = "average"):
    """Ranks (1 = best) of ``values``; None/NaN stays None. ``method`` as ``scipy.stats.rankdata``.

    Returns a list of float ranks (``"average"``) or ints (``"min"``) aligned with ``values``.
    """
    present = [i for i, v in enumerate(values) if v is not None and math.isfinite(float(v))]
    out: list[Any] = [None] * len(values)
    if not present:
        return out
    oriented = np.array([float(values[i]) for i in present])
    oriented = -oriented if higher_is_better else oriented
    ranks = rankdata(oriented, method=method)
    for i, r in zip(present, ranks, strict=True):
        out[i] = int(r) if method == "min" else float(r)
    return out


def mean_ranks(score_table: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Aggregate score per candidate: mean over metrics of average ranks (lower is better).

    ``score_table`` is (n_metrics, n_candidates) raw scores, NaN where missing; a candidate with no score
    at all gets NaN.
    """
    ranks = np.full(score_table.shape, np.nan)
    for i, (row, hib) in enumerate(zip(score_table, higher_is_better, strict=True)):
        r = rank_values([None if not np.isfinite(v) else float(v) for v in row], higher_is_better=hib)
        ranks[i] = [np.nan if v is None else v for v in r]
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(ranks), axis=0)
        sums = np.nansum(ranks, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def bootstrap_summary(
    models: Sequence[str],
    boot_scores: Mapping[str, np.ndarray],
    higher_is_better: Mapping[str, bool],
    *,
    n_resamples: int,
    seed: int,
    fraction: float,
) -> tuple[dict[str, float], dict[str, list[int]], dict[str, Any]]:
    """p_best, 95 % rank intervals and the tie statement from bootstrap scores.

    ``boot_scores`` maps each aggregate metric to a (n_resamples, n_candidates) array of raw scores (NaN where
    missing). Returns ({model: p_best}, {model: [lo, hi]}, the report's ``bootstrap`` block).
    """
    names = list(boot_scores)
    n = len(models)
    best_counts = np.zeros(n)
    rank_samples = np.zeros((n_resamples, n))
    for b in range(n_resamples):
        table = np.vstack([boot_scores[m][b] for m in names])
        agg = mean_ranks(table, [higher_is_better[m] for m in names])
        agg = np.where(np.isfinite(agg), agg, np.inf)
        best = np.flatnonzero(agg == agg.min())
        best_counts[best] += 1.0 / len(best)  # a tie for first splits the win
        rank_samples[b] = rankdata(agg, method="min")
    p_best = {m: float(best_counts[i] / n_resamples) for i, m in enumerate(models)}
    intervals = {
        m: [
            int(np.floor(np.percentile(rank_samples[:, i], 2.5))),
            int(np.ceil(np.percentile(rank_samples[:, i], 97.5))),
        ]
        for i, m in enumerate(models)
    }
    order = sorted(models, key=lambda m: -p_best[m])
    tied = [m for m in order if p_best[m] >= TIED_P_BEST]
    display = short_names(models)  # the statement is read beside tables that use the same short names
    shown = ", ".join(f"{display[m]} {p_best[m]:.0%}" for m in tied)
    if len(tied) <= 1:
        top = order[0]
        statement = (
            f"{display[top]} has the best aggregate in {p_best[top]:.0%} of {n_resamples} resamples "
            f"({fraction:.0%} of each class, without replacement): the top choice is clear."
        )
    else:
        statement = (
            f"The top candidates are statistically tied: {len(tied)} candidates each have the best aggregate in "
            f"at least {TIED_P_BEST:.0%} of {n_resamples} resamples ({shown}). Treat them as equally good and "
            "decide between them on cost or a short fine-tuning run."
        )
    block = {
        "n_resamples": n_resamples,
        "seed": seed,
        "fraction": fraction,
        "method": "stratified subsampling without replacement",
        "tied_top": tied,
        "statement": statement,
    }
    return p_best, intervals, block


def assemble_result(
    *,
    name: str,
    dataset: dict[str, Any],
    config: dict[str, Any],
    metric_entries: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    skipped: list[dict[str, Any]] | None = None,
    failed: list[dict[str, Any]] | None = None,
    boot_scores: Mapping[str, np.ndarray] | None = None,
    bootstrap_params: Mapping[str, Any] | None = None,
    spectrum: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
    created: str | None = None,
) -> RankingResult:
    """Rank scored candidates and compute everything derived from the scores.

    ``metric_entries``: the report's ``metrics`` list (``name``, ``params``, ``higher_is_better``, ``kind``,
    ``in_aggregate``) without the baselines, which are added here. ``candidates``: one dict per candidate with
    ``model``, ``scores`` {metric: raw score or None} and optional ``num_params``, ``source_accuracy``,
    ``feature_dim``, ``extraction_seconds``, ``feature_key``. ``boot_scores``: {aggregate metric:
    (n_resamples, n_candidates)} raw scores in ``candidates`` order, or None for no bootstrap.
    """
    if not candidates:
        raise RankingError(
            "no candidate could be scored", "check the `failed` list of the run and fix those candidates"
        )
    entries = [dict(m) for m in metric_entries if m["name"] not in BASELINES]
    for base in BASELINES:
        entries.append(
            {"name": base, "params": {}, "higher_is_better": True, "kind": "baseline", "in_aggregate": False}
        )
    hib = {m["name"]: bool(m["higher_is_better"]) for m in entries}
    agg_names = [m["name"] for m in entries if m.get("in_aggregate")]
    models = [c["model"] for c in candidates]
    scores = {c["model"]: dict(c.get("scores", {})) for c in candidates}
    for c in candidates:
        for base in BASELINES:
            scores[c["model"]][base] = _num(c.get(base))

    metric_ranks: dict[str, dict[str, int | None]] = {m: {} for m in models}
    for name_ in hib:
        values = [_num(scores[m].get(name_)) for m in models]
        for m, r in zip(models, rank_values(values, higher_is_better=hib[name_], method="min"), strict=True):
            metric_ranks[m][name_] = r

    table = np.array([[_nan(scores[m].get(n)) for m in models] for n in agg_names]).reshape(
        len(agg_names), -1
    )
    agg = mean_ranks(table, [hib[n] for n in agg_names]) if agg_names else np.full(len(models), np.nan)
    agg_rank = rank_values(
        [None if not np.isfinite(a) else float(a) for a in agg], higher_is_better=False, method="min"
    )

    p_best: dict[str, float] = {}
    intervals: dict[str, list[int]] = {}
    bootstrap_block = None
    if boot_scores and agg_names:
        params = dict(bootstrap_params or {})
        p_best, intervals, bootstrap_block = bootstrap_summary(
            models,
            {n: boot_scores[n] for n in agg_names if n in boot_scores},
            hib,
            n_resamples=int(params.get("n_resamples", next(iter(boot_scores.values())).shape[0])),
            seed=int(params.get("seed", 0)),
            fraction=float(params.get("fraction", 0.8)),
        )

    rows = []
    for i, c in enumerate(candidates):
        m = c["model"]
        rank = agg_rank[i]
        agree, disagree = [], []
        if rank is not None:
            for n, r in metric_ranks[m].items():
                if n in BASELINES or r is None:
                    continue
                (agree if abs(r - rank) <= AGREE_TOLERANCE else disagree).append(n)
        rows.append(
            {
                "model": m,
                "rank": rank,
                "aggregate_score": None if not np.isfinite(agg[i]) else float(agg[i]),
                "scores": {n: _num(scores[m].get(n)) for n in hib},
                "metric_ranks": metric_ranks[m],
                "num_params": _int(c.get("num_params")),
                "source_accuracy": _num(c.get("source_accuracy")),
                "feature_dim": _int(c.get("feature_dim")),
                "extraction_seconds": _num(c.get("extraction_seconds")),
                "feature_key": c.get("feature_key"),
                "p_best": p_best.get(m),
                "rank_interval": intervals.get(m),
                "agree": agree,
                "disagree": disagree,
            }
        )
    # Best first; unranked candidates (no aggregate metric scored) last; ties by name for a stable order.
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["model"]))

    agreement, baseline_agreement = _agreement(models, scores, hib, agg)
    return RankingResult(
        name=name,
        created=created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        dataset=dataset,
        config=config,
        metrics=entries,
        aggregate={
            "method": "mean_rank",
            "metrics": agg_names,
            "description": (
                f"mean of average ranks over {', '.join(agg_names) or 'no metric'} (lower is better); "
                "ties share the average rank; a missing score is left out of that candidate's mean. "
                f"Why these metrics: {aggregate_reason(agg_names)}"
            ),
        },
        ranking=rows,
        skipped=list(skipped or []),
        failed=list(failed or []),
        bootstrap=bootstrap_block,
        agreement=agreement,
        baseline_agreement=baseline_agreement,
        spectrum=dict(spectrum or {}),
        validation=None,
        environment=environment if environment is not None else environment_info(),
        timings=dict(timings or {}),
    )


def _agreement(models, scores, hib, agg) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """Kendall tau between every pair of metrics (and the aggregate), and of each metric with the baselines."""
    # scipy's tau-b directly: the agreement matrix needs no weighting, and ranking.py should not depend on a
    # metrics module for a textbook statistic.
    from scipy.stats import kendalltau

    oriented: dict[str, dict[str, float]] = {}
    for n, h in hib.items():
        oriented[n] = {
            m: (1 if h else -1) * float(scores[m][n])
            for m in models
            if scores[m].get(n) is not None and math.isfinite(float(scores[m][n]))
        }
    oriented[AGGREGATE] = {m: -float(a) for m, a in zip(models, agg, strict=True) if np.isfinite(a)}
    names = [n for n in hib if n not in BASELINES] + [AGGREGATE, *BASELINES]

    def tau(a: str, b: str) -> float | None:
        common = [m for m in models if m in oriented[a] and m in oriented[b]]
        if len(common) < 3:
            return None
        x = np.array([oriented[a][m] for m in common])
        y = np.array([oriented[b][m] for m in common])
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return None  # a constant ranking has no order to agree with
        value = float(kendalltau(x, y).statistic)
        return value if math.isfinite(value) else None

    matrix = [[1.0 if a == b else tau(a, b) for b in names] for a in names]
    baseline = {n: {b: tau(n, b) for b in BASELINES} for n in names if n not in BASELINES}
    return {"metrics": names, "kendall_tau": matrix}, baseline


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _nan(value: Any) -> float:
    return np.nan if value is None else float(value)


# ====================================================================== the Ranker
def valid_metric_names() -> list[str]:
    """Every name ``--metrics`` accepts: the registered metrics and the data-free ones."""
    import metrics

    return sorted({*metrics.available(), *DATA_FREE_METRICS})


def check_metric_names(names: Sequence[str]) -> list[str]:
    """``names`` deduplicated in order; an unknown name raises RankingError listing the valid ones."""
    valid = valid_metric_names()
    unknown = [n for n in names if n not in valid and n not in BASELINES]
    if unknown:
        raise RankingError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}",
            f"choose from: {', '.join(valid)} (baselines {', '.join(BASELINES)} are always reported)",
        )
    return [n for n in dict.fromkeys(names) if n not in BASELINES]


def default_run_dir(cache_dir: str | os.PathLike[str], name: str) -> Path:
    """``<cache>/runs/<YYYYmmdd-HHMMSS>-<name>/`` (name made filesystem-safe)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "run"
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(cache_dir) / "runs" / f"{stamp}-{safe[:60]}"


def _params_key(metric: str, params: Mapping[str, Any]) -> str:
    text = json.dumps({"metric": metric, "params": dict(params)}, sort_keys=True, default=str)
    return f"{metric}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class ScoreCache:
    """Per-(feature entry, metric, params) results as small JSON files under ``<cache>/scores/<feature key>/``.

    The feature key already pins the dataset (fingerprint, sample ids, labels), the weights and the
    preprocessing, so a cached score is reused exactly when nothing it depends on changed. An interrupted run
    re-uses every score that finished.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, feature_key: str, name: str) -> Path:
        return self.root / feature_key / f"{name}.json"

    def get(self, feature_key: str, name: str) -> Any:
        path = self._path(feature_key, name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["value"]
        except (OSError, json.JSONDecodeError, KeyError):
            return None

    def put(self, feature_key: str, name: str, value: Any) -> None:
        from analyzer.result import _jsonable

        atomic_write_text(self._path(feature_key, name), json.dumps({"value": _jsonable(value)}))


def stratified_subsamples(labels: np.ndarray, n: int, fraction: float, seed: int) -> list[np.ndarray]:
    """``n`` index sets, each ``fraction`` of every class drawn without replacement (sorted), seeded."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    out = []
    for _ in range(n):
        picks = [
            rng.choice(idx, size=max(2, round(fraction * len(idx))), replace=False) if len(idx) > 2 else idx
            for idx in classes
        ]
        out.append(np.sort(np.concatenate(picks)))
    return out


@dataclass
class _Candidate:
    model: str
    entry: Any = None
    scores: dict[str, float | None] | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """One unit of a ranking's work starting for one candidate, or that candidate failing.

    Attributes:
        stage: ``"features"``, a metric name, ``"weight spectrum"``, ``"bootstrap <metric>"``, or ``"failed"``.
        model: the candidate's spec.
        message: the line the Ranker prints for it (``detail`` for a failure: the error).
    """

    stage: str
    model: str
    message: str


#: ``on_progress(event)``, called as each unit of work starts; cached units are not announced.
ProgressCallback = Callable[[ProgressEvent], None]


class Ranker:
    """Rank candidate backbones for one dataset (the public Python API; the ``rank`` command uses it).

    >>> ranker = Ranker("sklearn:digits", cache_dir="data_cache", max_per_class=30)   # doctest: +SKIP
    >>> result = ranker.run(["timm:resnet18", "torchscript:model.pt"], metrics=["logme", "knn"])  # doctest: +SKIP
    >>> result.table.head(); result.save("out/")                                      # doctest: +SKIP

    ``dataset``: a dataset spec (opened with ``analyzer.datasets.open_dataset`` and ``max_per_class``, ``seed``,
    ``split``) or an opened Dataset. Features are extracted once into ``<cache>/features`` (the feature store)
    and scores cached under ``<cache>/scores``; spectra under ``<cache>/spectrum``.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 64,
        max_per_class: int | None = None,
        seed: int = 0,
        split: str | None = None,
        num_workers: int | None = None,
        progress: bool = True,
        spectrum_timeout: float = 600.0,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        from analyzer.paths import resolve_cache_dir

        self.cache_dir = resolve_cache_dir(cache_dir)
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.progress = progress
        self.spectrum_timeout = spectrum_timeout
        self.on_progress = on_progress
        if isinstance(dataset, str | os.PathLike):
            from analyzer.datasets import open_dataset

            dataset = open_dataset(
                str(dataset),
                max_per_class=max_per_class,
                seed=seed,
                split=split,
                check_cache=self.cache_dir / "checks",
            )
        self.dataset = dataset
        self.scores = ScoreCache(self.cache_dir / "scores")

    def _log(self, message: str) -> None:
        if self.progress:
            print(message, file=__import__("sys").stderr, flush=True)

    def _announce(self, stage: str, model: str, message: str) -> None:
        """Log a unit of work and hand it to ``on_progress`` (the dashboard's per-candidate bars)."""
        self._log(message)
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(stage, model, message))

    def _store(self):
        from analyzer.store import FeatureStore

        return FeatureStore(self.cache_dir)

    def run(
        self,
        candidates: Sequence[str],
        metrics: Sequence[str] | None = None,
        *,
        ground_truth: Mapping[str, float] | str | os.PathLike[str] | None = None,
        n_bootstrap: int = 200,
        bootstrap_fraction: float = 0.8,
        aggregate: Sequence[str] | None = None,
        metric_params: Mapping[str, Mapping[str, Any]] | None = None,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> RankingResult:
        """Extract, score, rank and bootstrap ``candidates`` (model specs); returns the RankingResult.

        ``metrics``: None = :data:`DEFAULT_METRICS` plus ``alpha``. ``aggregate``: the metrics averaged into
        the aggregate rank (None = every label-based one requested except TMI and PED, which the default
        scores beside the aggregate; all of them when nothing else is left). ``ground_truth``: {model: accuracy} or a
        truth CSV path; adds ``validation``. A candidate that fails to load or extract is listed in ``failed``
        and the rest are ranked; a metric that cannot apply to a candidate is listed in ``skipped``.
        """
        import metrics as metrics_lib
        from metrics._registry import split_params

        t_start = time.perf_counter()
        specs = list(dict.fromkeys(str(c).strip() for c in candidates if str(c).strip()))
        if not specs:
            raise RankingError("no candidate models given", "pass at least one model spec")
        names = check_metric_names(
            list(metrics) if metrics is not None else [*DEFAULT_METRICS, *DATA_FREE_METRICS]
        )
        label_metrics = [n for n in names if n not in DATA_FREE_METRICS]
        if aggregate is None:  # every label metric asked for, except the headline ones kept beside (TMI, PED)
            beside = set(DEFAULT_METRICS) - set(DEFAULT_AGGREGATE)
            agg_names = [n for n in label_metrics if n not in beside] or label_metrics
            agg_names = agg_names or [n for n in names if n in DATA_FREE_METRICS]
        else:
            agg_names = check_metric_names(list(aggregate))
            missing = [n for n in agg_names if n not in names]
            if missing:
                raise RankingError(
                    f"aggregate metric(s) {', '.join(missing)} are not among the requested metrics",
                    f"add them to --metrics or choose the aggregate from {', '.join(names)}",
                )
        params = {n: dict((metric_params or {}).get(n, {})) for n in names}
        for n in label_metrics:
            split_params(metrics_lib.info(n), params[n])  # an unknown parameter fails before any work
            if metrics_lib.info(n).stochastic and "random_state" in metrics_lib.info(n).params:
                params[n].setdefault("random_state", self.seed)

        # 1. features (cached in the store; one failing candidate does not stop the others)
        t0 = time.perf_counter()
        store = self._store()
        ok: list[_Candidate] = []
        failed: list[dict[str, Any]] = []
        from analyzer.extract import extract_features

        for spec in specs:
            self._announce("features", spec, f"[rank] features: {spec}")
            try:
                entry = extract_features(
                    self.dataset,
                    spec,
                    store=store,
                    device=self.device,
                    batch_size=self.batch_size,
                    num_workers=self.num_workers,
                    progress=self.progress,
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - reported per candidate; the rest are ranked
                failed.append({"model": spec, "error": _describe(exc)})
                self._announce("failed", spec, f"[rank]   failed: {failed[-1]['error']}")
                continue
            ok.append(_Candidate(spec, entry, {}))
        extraction_seconds = time.perf_counter() - t0
        if not ok:
            raise RankingError(
                "every candidate failed: " + "; ".join(f"{f['model']}: {f['error']}" for f in failed),
                "fix the model specs (`python -m analyzer extract` shows the full error for one model)",
            )

        # 2. scores, cached per (feature key, metric, params)
        t0 = time.perf_counter()
        skipped: list[dict[str, Any]] = []
        for n in label_metrics:
            self._score_metric(n, params[n], ok, skipped)
        scoring_seconds = time.perf_counter() - t0

        # 3. data-free: weight spectrum
        t0 = time.perf_counter()
        spectra: dict[str, Any] = {}
        if "alpha" in names:
            from analyzer.spectrum import analyze_spectrum

            for c in ok:
                self._announce("weight spectrum", c.model, f"[rank] weight spectrum: {c.model}")
                try:
                    spectra[c.model] = analyze_spectrum(
                        c.model,
                        weights_id=str(c.entry.meta.get("weights_id") or c.entry.key),
                        cache_dir=self.cache_dir,
                        timeout=self.spectrum_timeout,
                    )
                    c.scores["alpha"] = spectra[c.model].get("alpha_weighted")
                except AnalyzerError as exc:
                    skipped.append({"model": c.model, "metric": "alpha", "reason": str(exc)})
                    c.scores["alpha"] = None
        spectrum_seconds = time.perf_counter() - t0

        # 4. bootstrap of the aggregate metrics over target samples
        t0 = time.perf_counter()
        boot = None
        boot_labels = [n for n in agg_names if n not in DATA_FREE_METRICS]
        if n_bootstrap and boot_labels and len(ok) >= 2:
            boot = self._bootstrap(boot_labels, params, ok, n_bootstrap, bootstrap_fraction)
            for n in agg_names:  # data-free scores do not depend on the samples: constant across resamples
                if n in DATA_FREE_METRICS:
                    boot[n] = np.tile([_nan(c.scores.get(n)) for c in ok], (n_bootstrap, 1))
        bootstrap_seconds = time.perf_counter() - t0

        info_of = {n: metrics_lib.info(n) for n in label_metrics}
        entries = [
            {
                "name": n,
                "params": params[n],
                "higher_is_better": info_of[n].higher_is_better if n in info_of else False,
                "kind": "label" if n in info_of else "data_free",
                "in_aggregate": n in agg_names,
            }
            for n in names
        ]
        ds = self.dataset
        result = assemble_result(
            name=name or str(getattr(ds, "name", "") or "run"),
            dataset={
                "spec": str(getattr(ds, "spec", "")),
                "name": getattr(ds, "name", None),
                "fingerprint": getattr(ds, "fingerprint", None),
                "n_samples": len(ds),
                "n_classes": len(getattr(ds, "class_names", []) or np.unique(ds.labels)),
                "class_names": [str(c) for c in (getattr(ds, "class_names", []) or [])],
                "skipped": [list(s) for s in (getattr(ds, "skipped", []) or [])],
            },
            config=dict(
                config
                or {
                    "data": str(getattr(ds, "spec", "")),
                    "models": specs,
                    "metrics": names,
                    "aggregate": agg_names,
                    "seed": self.seed,
                    "n_bootstrap": n_bootstrap,
                    "bootstrap_fraction": bootstrap_fraction,
                    "batch_size": self.batch_size,
                    "metric_params": params,
                }
            ),
            metric_entries=entries,
            candidates=[
                {
                    "model": c.model,
                    "scores": c.scores,
                    "num_params": c.entry.meta.get("num_params"),
                    "source_accuracy": c.entry.meta.get("source_accuracy"),
                    "feature_dim": c.entry.features.shape[1],
                    "extraction_seconds": (c.entry.meta.get("timings") or {}).get("extraction_seconds"),
                    "feature_key": c.entry.key,
                }
                for c in ok
            ],
            skipped=skipped,
            failed=failed,
            boot_scores=boot,
            bootstrap_params={"n_resamples": n_bootstrap, "seed": self.seed, "fraction": bootstrap_fraction},
            spectrum=spectra,
            timings={
                "total_seconds": time.perf_counter() - t_start,
                "features_seconds": extraction_seconds,
                "scoring_seconds": scoring_seconds,
                "spectrum_seconds": spectrum_seconds,
                "bootstrap_seconds": bootstrap_seconds,
            },
        )
        if ground_truth is not None:
            truth = (
                dict(ground_truth)
                if isinstance(ground_truth, Mapping)
                else load_ground_truth(ground_truth, dataset=str(getattr(ds, "name", "") or ""))
            )
            result.validate(truth)
        return result

    # ------------------------------------------------------------------ scoring
    def _score_metric(
        self, name: str, params: dict[str, Any], ok: list[_Candidate], skipped: list[dict]
    ) -> None:
        import metrics as metrics_lib

        info = metrics_lib.info(name)
        key = _params_key(name, params)
        usable: list[_Candidate] = []
        for c in ok:
            inputs = ["source_probs"] if c.entry.source_probs is not None else []
            reason = info.why_not_applicable(available_inputs=inputs, regression=False)
            if reason:
                skipped.append({"model": c.model, "metric": name, "reason": reason})
                c.scores[name] = None
            else:
                usable.append(c)
        terms: dict[str, Any] = {}
        for c in usable:
            cached = self.scores.get(c.entry.key, key)
            if cached is None:
                self._announce(name, c.model, f"[rank] {name}: {c.model}")
                try:
                    cached = self._compute(name, params, c.entry, None, pool=info.pool_level)
                except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
                    skipped.append({"model": c.model, "metric": name, "reason": f"{name} failed: {exc}"})
                    c.scores[name] = None
                    continue
                self.scores.put(c.entry.key, key, cached)
            terms[c.model] = cached
        if info.pool_level:
            models = [c for c in usable if c.model in terms]
            values = metrics_lib.finalize_pool(name, [terms[c.model] for c in models]) if models else []
            for c, v in zip(models, values, strict=True):
                c.scores[name] = _num(v)
        else:
            for c in usable:
                if c.model in terms:
                    c.scores[name] = _num(terms[c.model])

    def _compute(self, name: str, params: dict[str, Any], entry: Any, idx: np.ndarray | None, *, pool: bool):
        import metrics as metrics_lib

        feats, labels, probs = entry.features, entry.labels, entry.source_probs
        if idx is not None:
            feats, labels = feats[idx], labels[idx]
            probs = None if probs is None else probs[idx]
        fn = metrics_lib.pool_terms if pool else metrics_lib.compute
        return fn(name, feats, labels, source_probs=probs, **params)

    def _bootstrap(
        self,
        names: list[str],
        params: dict[str, dict[str, Any]],
        ok: list[_Candidate],
        n: int,
        fraction: float,
    ) -> dict[str, np.ndarray]:
        import metrics as metrics_lib

        labels = ok[0].entry.labels
        subsets = stratified_subsamples(labels, n, fraction, self.seed)
        out: dict[str, np.ndarray] = {}
        for name in names:
            info = metrics_lib.info(name)
            key = f"{_params_key(name, params[name])}-boot{n}-s{self.seed}-f{fraction:g}"
            per_candidate: list[list[Any] | None] = []
            for c in ok:
                if c.scores.get(name) is None:
                    per_candidate.append(None)  # skipped or failed on the full set: no bootstrap either
                    continue
                if [str(s) for s in c.entry.sample_ids] != [str(s) for s in ok[0].entry.sample_ids]:
                    raise RankingError(
                        f"{c.model}'s features cover different samples than {ok[0].model}'s",
                        "clear the stale entries with `python -m analyzer cache rm` and run again",
                    )
                cached = self.scores.get(c.entry.key, key)
                if cached is None:
                    self._announce(f"bootstrap {name}", c.model, f"[rank] bootstrap {name} x{n}: {c.model}")
                    cached = []
                    for idx in subsets:
                        try:
                            cached.append(
                                self._compute(name, params[name], c.entry, idx, pool=info.pool_level)
                            )
                        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                            cached.append(None)
                    self.scores.put(c.entry.key, key, cached)
                per_candidate.append(cached)
            table = np.full((n, len(ok)), np.nan)
            for b in range(n):
                if info.pool_level:
                    have = [i for i, v in enumerate(per_candidate) if v is not None and v[b] is not None]
                    if have:
                        values = metrics_lib.finalize_pool(name, [per_candidate[i][b] for i in have])
                        table[b, have] = values
                else:
                    for i, v in enumerate(per_candidate):
                        if v is not None and v[b] is not None:
                            table[b, i] = float(v[b])
            out[name] = table
        return out


def _describe(exc: BaseException) -> str:
    """A one-line message for a failed candidate: the user-facing text for our errors, type and text otherwise."""
    if isinstance(exc, AnalyzerError | ValueError):
        return str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")
