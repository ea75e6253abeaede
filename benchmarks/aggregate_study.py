"""Which aggregate should ``rank`` use by default? Evidence from real targets, not from one favourite.

    .venv/bin/python benchmarks/aggregate_study.py [--targets notmnist,cifar10,digits] [--out study.md]
                                                  [--cache-dir DIR] [--zoo-cache DIR] [--folds 5] [--seed 0]
                                                  [--check-seed 1] [--regimes linear,finetune] [--shared DIR]

For every target it:

1. extracts (cached, through :func:`analyzer.extract.extract_features` and the feature store) the frozen features
   of every candidate;
2. measures the ground truth: :func:`analyzer.probe.probe_accuracy`, a stratified ``--folds``-fold linear probe
   with a fixed ``--seed``; and, as a check on the truth itself, the same probe with another fold shuffle
   (``--check-seed``), whose weighted tau against the first says how stable the true ranking is;
3. scores every metric of :func:`metrics.available` that applies (LEEP/NCE with the source head's softmax; NCTI
   through :func:`metrics.compute_pool`, normalised over the pool); a metric that errors is skipped, with the
   reason printed;
4. adds the baselines ``num_params`` and ``source_accuracy`` (where the candidate's metadata knows it);
5. forms the candidate aggregates of :data:`CANDIDATE_AGGREGATES` (mean of average ranks, as the Ranker does);
6. reports, per row (metric, baseline, aggregate) and per target, the weighted Kendall tau
   (:func:`metrics.correlation.weighted_tau`, scipy defaults) and the top-1 regret in accuracy points, plus the
   worst case over targets, the ground-truth accuracies and per-target timings.

Targets (each skipped with a message when its data is absent):

- ``notmnist``: ``../shared/benchmarks/notmnist/target.npz`` (1 000 letters A-J) with the seven TorchScript
  candidates in ``../shared/benchmarks/notmnist/models/``;
- ``cifar10``: ``../shared/benchmarks/cifar10/target.npz`` (600 CIFAR-10 test images), same seven candidates;
- ``digits``: ``sklearn:digits`` with the demo's zoo, when ``python -m analyzer zoo build`` has built it in the
  cache directory or in ``--zoo-cache`` (read only; this script never trains the zoo). A pool built with another
  budget than ``full`` is labelled ``digits/<budget>``.

With ``--regimes linear,finetune`` every target is also scored against its fine-tuned truth (``probe --regime
finetune``, cached per training run; CPU-hours cold), as ``<target>/ft``; the leave-one-target-out tables then run
over both regimes, once among the aggregates and once among every candidate (metrics, aggregates, rules).

The aggregates were fixed *before* any result was seen (see :data:`CANDIDATE_AGGREGATES`); nothing here is tuned
on a target. The script prints tables; it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import metrics  # noqa: E402
from analyzer.commands.demo import DEMO_MODELS  # noqa: E402
from analyzer.ranking import DEFAULT_AGGREGATE, mean_ranks  # noqa: E402
from benchmarks.loto import (  # noqa: E402
    DEFAULT_CANDIDATE_KINDS,
    leave_one_target_out,
    loto_markdown,
    worst_case_markdown,
)
from metrics.correlation import top1_regret, weighted_tau  # noqa: E402

SHARED = ROOT.parent / "shared"
ASSETS = ROOT / "assets" / "notmnist"
MODELS_DIR = (
    ASSETS / "models"
)  # the seven shipped candidates (the same files as ../shared/benchmarks/notmnist)
REAL_MODELS = DEMO_MODELS  # the demo's seven candidates, named in one place
#: Baselines: simple priors the metrics must beat (both higher is better).
BASELINES: tuple[str, ...] = ("num_params", "source_accuracy")
#: Metrics that need the source classifier's softmax (and so cannot score a headless backbone).
SOURCE_HEAD_METRICS: tuple[str, ...] = ("leep", "nce")
ALL_LABEL = "all label-only metrics"
ALL_METRICS = "all metrics (incl. leep, nce)"

#: The aggregates compared, fixed before looking at any result. Each is a mean of average ranks over its members
#: (the Ranker's rule). Why each is a candidate:
#:
#: - the Ranker's current default (whatever ``analyzer.ranking.DEFAULT_AGGREGATE`` is when the study runs);
#: - ``logme+knn``: the two cheapest metrics of different kinds (global linear evidence, local neighbourhoods);
#: - ``logme+sfda+knn``: adds a class-separability view (Fisher projection) to the pair;
#: - ``logme+knn+ncti+sfda``: adds NCTI (neural-collapse geometry), which the literature reports as strong;
#: - all label-only metrics (every metric that needs no source head: usable for any backbone);
#: - all metrics, including the source-head ones (LEEP, NCE) where a candidate has a head.
#:
#: ``ALL_LABEL`` / ``ALL_METRICS`` are placeholders expanded from :func:`metrics.available` at run time.
#: - ``knn+ncti``: the two metrics with the best worst cases of the 2026-12-05 study (added, with the rule below,
#:   before the fine-tuned truth existed, for issue 26).
CANDIDATE_AGGREGATES: dict[str, tuple[str, ...]] = {
    "default (" + "+".join(DEFAULT_AGGREGATE) + ")": tuple(DEFAULT_AGGREGATE),
    "logme+knn": ("logme", "knn"),
    "logme+sfda+knn": ("logme", "sfda", "knn"),
    "logme+knn+ncti+sfda": ("logme", "knn", "ncti", "sfda"),
    "knn+ncti": ("knn", "ncti"),
    ALL_LABEL: (ALL_LABEL,),
    ALL_METRICS: (ALL_METRICS,),
}

#: Data-dependent rules, fixed before looking (issue 26): ``name: (metric used below the threshold, aggregate used
#: from it on, images per class threshold)``. The one candidate is the measured record's few-per-class advice
#: (``analyzer/metric_record.json``: trust kNN below 60 images per class) turned into a default.
CANDIDATE_RULES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "rule: knn below 60/class, else logme+knn+ncti+sfda": ("knn", ("logme", "knn", "ncti", "sfda"), 60),
}

#: Suffix of a target's name whose truth is the fine-tuned accuracy (``probe --regime finetune``), e.g.
#: ``notmnist@10/ft``; :func:`benchmarks.loto.group_of` keeps it in its dataset's group.
FINETUNE_SUFFIX = "/ft"


@dataclass
class TargetScores:
    """Everything measured on one target: the inputs of the table (pure data, no models).

    Attributes:
        name: target name, e.g. ``"notmnist"``.
        models: candidate specs in a fixed order.
        truth: {model: probe accuracy in [0, 1]} (higher is better).
        scores: {metric or baseline: {model: score or None}}; every score oriented higher = better.
        truth_check: {model: probe accuracy with the check seed} or empty when not measured.
        skipped: (metric, model, reason) for every score that could not be computed.
        timings: seconds per phase (``extract``, ``probe``, ``scoring``, ``metric:<name>``, ``total``).
        n_samples / n_classes: size of the target set.
    """

    name: str
    models: list[str]
    truth: dict[str, float]
    scores: dict[str, dict[str, float | None]]
    truth_check: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    n_samples: int = 0
    n_classes: int = 0


@dataclass
class Row:
    """One row of the study table: a metric, a baseline or an aggregate, evaluated on every target.

    ``tau`` / ``regret`` map target name to weighted Kendall tau (in [-1, 1], higher is better) and top-1 regret
    (accuracy points in [0, 100], lower is better); NaN where undefined (fewer than 2 scored candidates).
    ``n`` maps target name to the number of candidates the row scored there.
    """

    name: str
    kind: str  # "metric" | "baseline" | "aggregate"
    members: tuple[str, ...] = ()
    tau: dict[str, float] = field(default_factory=dict)
    regret: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)

    @property
    def worst_tau(self) -> float:
        """The lowest weighted tau over the targets (NaN when any target is undefined)."""
        values = list(self.tau.values())
        return min(values) if values and all(np.isfinite(values)) else float("nan")

    @property
    def worst_regret(self) -> float:
        """The highest top-1 regret over the targets, in accuracy points (NaN when any target is undefined)."""
        values = list(self.regret.values())
        return max(values) if values and all(np.isfinite(values)) else float("nan")


# ====================================================================== pure table building
def expand_members(members: Sequence[str], metric_names: Sequence[str]) -> tuple[str, ...]:
    """Resolve the ``ALL_LABEL`` / ``ALL_METRICS`` placeholders against ``metric_names`` (the registry's list)."""
    out: list[str] = []
    for m in members:
        if m == ALL_LABEL:
            out.extend(n for n in metric_names if n not in SOURCE_HEAD_METRICS)
        elif m == ALL_METRICS:
            out.extend(metric_names)
        else:
            out.append(m)
    return tuple(dict.fromkeys(out))


def aggregate_scores(
    scores: Mapping[str, Mapping[str, float | None]], members: Sequence[str], models: Sequence[str]
) -> dict[str, float | None]:
    """The aggregate as a score (higher is better): minus the mean over ``members`` of each metric's average rank.

    A metric absent from ``scores`` or missing for a candidate is left out of that candidate's mean (the Ranker's
    rule); a candidate with no member score gets None. Returns {model: -mean rank or None}.
    """
    present = [m for m in members if m in scores]
    if not present:
        return {model: None for model in models}
    table = np.array(
        [[_as_float(scores[m].get(model)) for model in models] for m in present], dtype=float
    ).reshape(len(present), len(models))
    means = mean_ranks(table, [True] * len(present))
    return {
        model: (None if not np.isfinite(v) else -float(v)) for model, v in zip(models, means, strict=True)
    }


def evaluate_row(row: Row, target: TargetScores, values: Mapping[str, float | None]) -> None:
    """Fill ``row``'s tau, regret (accuracy points) and n for ``target`` from {model: score or None}."""
    s = [_as_float(values.get(m)) for m in target.models]
    t = [_as_float(target.truth.get(m)) for m in target.models]
    row.tau[target.name] = weighted_tau(s, t)
    row.regret[target.name] = 100.0 * top1_regret(s, t)
    row.n[target.name] = int(sum(1 for a, b in zip(s, t, strict=True) if np.isfinite(a) and np.isfinite(b)))


def build_table(
    targets: Sequence[TargetScores],
    *,
    metric_names: Sequence[str],
    aggregates: Mapping[str, Sequence[str]] = CANDIDATE_AGGREGATES,
    rules: Mapping[str, tuple[str, tuple[str, ...], int]] = CANDIDATE_RULES,
) -> list[Row]:
    """Rows for every metric in ``metric_names``, every baseline, and every aggregate, over all ``targets``.

    Rows come in that order (metrics in ``metric_names`` order). An aggregate's placeholders are expanded with
    ``metric_names``; its score on a target is :func:`aggregate_scores` of the members that target has.
    """
    rows: list[Row] = [Row(n, "metric") for n in metric_names]
    rows += [Row(b, "baseline") for b in BASELINES]
    rows += [Row(a, "aggregate", expand_members(m, metric_names)) for a, m in aggregates.items()]
    rows += [Row(r, "rule", (small, *members)) for r, (small, members, _) in rules.items()]
    for target in targets:
        for row in rows:
            if row.kind == "aggregate":
                values = aggregate_scores(target.scores, row.members, target.models)
            elif row.kind == "rule":
                values = rule_scores(target, *rules[row.name])
            else:
                values = target.scores.get(row.name, {})
            evaluate_row(row, target, values)
    return rows


def rule_scores(
    target: TargetScores, small: str, members: Sequence[str], threshold: int
) -> dict[str, float | None]:
    """A data-dependent rule's scores on ``target``: metric ``small``'s below ``threshold`` images per class
    (``n_samples / n_classes``), the aggregate of ``members`` from it on."""
    per_class = target.n_samples / max(target.n_classes, 1)
    if per_class < threshold:
        return dict(target.scores.get(small, {}))
    return aggregate_scores(target.scores, members, target.models)


def best_single(rows: Sequence[Row], target: str) -> tuple[float, float]:
    """The best weighted tau and the best (lowest) regret of any single metric on ``target`` (NaN if none)."""
    taus = [r.tau[target] for r in rows if r.kind == "metric" and np.isfinite(r.tau.get(target, np.nan))]
    regrets = [
        r.regret[target] for r in rows if r.kind == "metric" and np.isfinite(r.regret.get(target, np.nan))
    ]
    return (max(taus) if taus else float("nan"), min(regrets) if regrets else float("nan"))


def verdicts(rows: Sequence[Row], targets: Sequence[str], *, tolerance: float = 1e-9) -> dict[str, list[str]]:
    """Per aggregate, the targets where it is *worse* than the best single metric on that target.

    "Worse" means a lower weighted tau or a higher top-1 regret than the best single metric there (the oracle
    that knew in advance which metric to trust). An empty list means "at least as good as the best single
    metric on every target". Returns {aggregate name: ["target (tau 0.41 < 0.73)", ...]}.
    """
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.kind != "aggregate":
            continue
        worse = []
        for t in targets:
            best_tau, best_regret = best_single(rows, t)
            tau, regret = row.tau.get(t, np.nan), row.regret.get(t, np.nan)
            if not np.isfinite(tau) or (np.isfinite(best_tau) and tau < best_tau - tolerance):
                worse.append(f"{t} (tau {_f(tau)} < {_f(best_tau)})")
            if not np.isfinite(regret) or (np.isfinite(best_regret) and regret > best_regret + tolerance):
                worse.append(f"{t} (regret {_f(regret, 1)} > {_f(best_regret, 1)})")
        out[row.name] = worse
    return out


def inverted_metrics(rows: Sequence[Row], targets: Sequence[str], *, threshold: float = 0.3) -> list[str]:
    """Rows that rank well on one target (tau >= ``threshold``) and inversely on another (tau <= -threshold)."""
    out = []
    for row in rows:
        taus = {t: row.tau.get(t, np.nan) for t in targets}
        good = [t for t, v in taus.items() if np.isfinite(v) and v >= threshold]
        bad = [t for t, v in taus.items() if np.isfinite(v) and v <= -threshold]
        if good and bad:
            out.append(
                f"{row.name}: "
                + ", ".join(f"{t} {_f(taus[t])}" for t in good)
                + " vs "
                + ", ".join(f"{t} {_f(taus[t])}" for t in bad)
            )
    return out


# ====================================================================== markdown
def _f(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def _as_float(value: object) -> float:
    if value is None:
        return float("nan")
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return out if math.isfinite(out) else float("nan")


def table_markdown(
    rows: Sequence[Row], targets: Sequence[str], sizes: Mapping[str, int] | None = None
) -> str:
    """The study table: rows = metric / baseline / aggregate; per target weighted tau and top-1 regret (points);
    then the worst case over targets. Best tau and regret of each target's column are in bold; ``sizes``
    ({target: number of candidates}) marks a row that scored only part of the pool as ``(n/total)``."""
    head = ["row", "kind"]
    for t in targets:
        head += [f"{t} τw", f"{t} regret"]
    head += ["worst τw", "worst regret"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = {t: best_row_values(rows, t) for t in targets}
    for row in rows:
        cells = [row.name, row.kind]
        for t in targets:
            tau, regret = row.tau.get(t, np.nan), row.regret.get(t, np.nan)
            tau_s, regret_s = _f(tau), _f(regret, 1)
            if np.isfinite(tau) and abs(tau - best[t][0]) < 1e-9:
                tau_s = f"**{tau_s}**"
            if np.isfinite(regret) and abs(regret - best[t][1]) < 1e-9:
                regret_s = f"**{regret_s}**"
            n, total = row.n.get(t), (sizes or {}).get(t)
            if n is not None and total is not None and n < total:
                tau_s += f" ({n}/{total})"  # scored only part of the pool
            cells += [tau_s, regret_s]
        cells += [_f(row.worst_tau), _f(row.worst_regret, 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_row_values(rows: Sequence[Row], target: str) -> tuple[float, float]:
    """Best tau and lowest regret over *all* rows (for bolding)."""
    taus = [r.tau[target] for r in rows if np.isfinite(r.tau.get(target, np.nan))]
    regrets = [r.regret[target] for r in rows if np.isfinite(r.regret.get(target, np.nan))]
    return (max(taus) if taus else float("nan"), min(regrets) if regrets else float("nan"))


def truth_markdown(targets: Sequence[TargetScores]) -> str:
    """Ground truth per target: probe accuracy (and the check seed's) per candidate, best first."""
    parts = []
    for t in targets:
        check = bool(t.truth_check)
        head = "| candidate | probe acc | " + ("check-seed acc | " if check else "") + "params |"
        sep = "|---|---|" + ("---|" if check else "") + "---|"
        lines = [f"**{t.name}** ({t.n_samples} images, {t.n_classes} classes)", "", head, sep]
        for m in sorted(t.models, key=lambda m: -_nan_low(t.truth.get(m))):
            params = t.scores.get("num_params", {}).get(m)
            cells = [_short(m), _f(t.truth.get(m))]
            if check:
                cells.append(_f(t.truth_check.get(m)))
            cells.append("n/a" if params is None else f"{int(params):,}")
            lines.append("| " + " | ".join(cells) + " |")
        if check:
            lines.append("")
            lines.append(
                f"Truth stability: weighted tau between the two fold shuffles = "
                f"{_f(weighted_tau([t.truth.get(m) for m in t.models], [t.truth_check.get(m) for m in t.models]))}"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def scores_markdown(target: TargetScores) -> str:
    """Raw scores on one target: a row per metric / baseline, a column per candidate (best truth first), so a
    reader can see *why* a row ranks as it does (e.g. a metric rewarding a degenerate feature space)."""
    order = sorted(target.models, key=lambda m: -_nan_low(target.truth.get(m)))
    lines = [
        f"**{target.name}** raw scores (higher = more transferable)",
        "",
        "| row | " + " | ".join(_short(m) for m in order) + " |",
        "|---|" + "---|" * len(order),
        "| *probe accuracy* | " + " | ".join(_f(target.truth.get(m)) for m in order) + " |",
    ]
    for name, values in target.scores.items():
        cells = [_g(values.get(m)) for m in order]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _g(value: float | None) -> str:
    v = _as_float(value)
    return "n/a" if not np.isfinite(v) else f"{v:.4g}"


def timing_markdown(targets: Sequence[TargetScores]) -> str:
    """Per-target wall-clock seconds: extraction (cached or not), probe, scoring (and the slowest metrics)."""
    lines = [
        "| target | candidates | extract s | probe s | scoring s | slowest metrics | total s |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        per_metric = sorted(
            ((k.split(":", 1)[1], v) for k, v in t.timings.items() if k.startswith("metric:")),
            key=lambda kv: -kv[1],
        )
        slow = ", ".join(f"{k} {v:.1f}" for k, v in per_metric[:3])
        lines.append(
            f"| {t.name} | {len(t.models)} | {t.timings.get('extract', 0):.1f} | {t.timings.get('probe', 0):.1f} "
            f"| {t.timings.get('scoring', 0):.1f} | {slow} | {t.timings.get('total', 0):.1f} |"
        )
    return "\n".join(lines)


def report_markdown(targets: Sequence[TargetScores], rows: Sequence[Row]) -> str:
    """The whole study as markdown: table, reading aids (verdicts, inversions), truth, skips, timings."""
    names = [t.name for t in targets]
    out = [
        "## Aggregate study: weighted Kendall tau (τw, higher is better) and top-1 regret "
        "(accuracy points, lower is better) against the linear-probe accuracy",
        "",
        table_markdown(rows, names, {t.name: len(t.models) for t in targets}),
        "",
        "Aggregates (mean of average ranks; fixed before looking at results):",
    ]
    for row in rows:
        if row.kind == "aggregate":
            out.append(f"- {row.name}: {', '.join(row.members)}")
    out += ["", "Compared with the best single metric on each target (an oracle choice):"]
    for name, worse in verdicts(rows, names).items():
        out.append(
            f"- {name}: "
            + ("at least as good on every target" if not worse else "worse on " + "; ".join(worse))
        )
    flips = inverted_metrics(rows, names)
    out += ["", "Rows that rank well on one target and inversely on another (τw >= 0.3 vs <= -0.3):"]
    out += [f"- {f}" for f in flips] or ["- none"]
    checked = [with_check_truth(t) for t in targets if t.truth_check]
    if checked:
        check_rows = build_table(
            checked,
            metric_names=[r.name for r in rows if r.kind == "metric"],
            aggregates={r.name: r.members for r in rows if r.kind == "aggregate"},
        )
        out += [
            "",
            "### Sensitivity: the same rows against the check-seed truth (another fold shuffle of the probe)",
            "",
            "Where a row's τw moves a lot between the two truths, the candidates it separates are within the "
            "probe's own noise on that target.",
            "",
            table_markdown(check_rows, [t.name for t in checked], {t.name: len(t.models) for t in checked}),
        ]
    out += ["", "### Ground truth (linear probe, cross-validated)", "", truth_markdown(targets)]
    out += ["", "### Raw scores", ""]
    out += ["\n\n".join(scores_markdown(t) for t in targets)]
    skips = [(t.name, m, model, why) for t in targets for (m, model, why) in t.skipped]
    if skips:
        out += ["", "### Skipped scores", ""]
        out += [f"- {t}: {m} on {_short(model)}: {why}" for t, m, model, why in skips]
    out += ["", "### Timings (seconds, wall clock)", "", timing_markdown(targets)]
    return "\n".join(out) + "\n"


def with_check_truth(target: TargetScores) -> TargetScores:
    """A copy of ``target`` whose truth is the check-seed probe accuracy (for the sensitivity table)."""
    return replace(target, truth=dict(target.truth_check), truth_check={})


def _short(spec: str) -> str:
    """A readable candidate name: the file stem of a path spec."""
    tail = spec.rsplit("@", 1)[-1] if "@" in spec else spec.split(":", 1)[-1]
    return Path(tail).stem or spec


def _nan_low(value: float | None) -> float:
    v = _as_float(value)
    return v if np.isfinite(v) else -np.inf


# ====================================================================== measuring (models, features, probe)
def score_target(
    name: str,
    data: str,
    models: Sequence[str],
    *,
    cache_dir: str | None,
    folds: int,
    seed: int,
    check_seed: int | None,
    device: str | None,
    batch_size: int,
    max_per_class: int | None = None,
    log=print,
) -> TargetScores:
    """Extract, probe and score ``models`` on dataset spec ``data``; returns the target's :class:`TargetScores`.

    A candidate that fails to extract is dropped with a message (the table then covers the rest).
    """
    from analyzer.datasets import open_dataset
    from analyzer.extract import extract_features
    from analyzer.probe import probe_accuracy
    from analyzer.store import FeatureStore

    start = time.perf_counter()
    dataset = open_dataset(data, max_per_class=max_per_class, seed=seed)
    store = FeatureStore(cache_dir)
    entries = {}
    t0 = time.perf_counter()
    for spec in models:
        try:
            entries[spec] = extract_features(
                dataset, spec, store=store, device=device, batch_size=batch_size, progress=False
            )
        except Exception as exc:  # noqa: BLE001 - one broken candidate must not lose the study
            log(f"[{name}] {spec}: extraction failed, left out: {type(exc).__name__}: {exc}")
    extract_s = time.perf_counter() - t0
    kept = list(entries)

    t0 = time.perf_counter()
    truth = {m: probe_accuracy(entries[m].features, entries[m].labels, folds=folds, seed=seed) for m in kept}
    check = {}
    if check_seed is not None:
        check = {
            m: probe_accuracy(entries[m].features, entries[m].labels, folds=folds, seed=check_seed)
            for m in kept
        }
    probe_s = time.perf_counter() - t0

    scores: dict[str, dict[str, float | None]] = {}
    skipped: list[tuple[str, str, str]] = []
    timings: dict[str, float] = {}
    t_scoring = time.perf_counter()
    for metric in metrics.available(kind="label"):  # alpha is scored from weights, not these features
        info = metrics.info(metric)
        t0 = time.perf_counter()
        usable = []
        for m in kept:
            inputs = ["source_probs"] if entries[m].source_probs is not None else []
            reason = info.why_not_applicable(available_inputs=inputs)
            if reason:
                skipped.append((metric, m, reason))
            else:
                usable.append(m)
        values: dict[str, float | None] = dict.fromkeys(kept)
        if info.pool_level:
            try:
                pooled = (
                    metrics.compute_pool(
                        metric,
                        [entries[m].features for m in usable],
                        entries[usable[0]].labels,
                        source_probs=[entries[m].source_probs for m in usable],
                    )
                    if usable
                    else []
                )
                values.update(zip(usable, pooled, strict=True))
            except Exception as exc:  # noqa: BLE001 - the reason is reported; the study goes on
                skipped.extend((metric, m, f"{type(exc).__name__}: {exc}") for m in usable)
        else:
            for m in usable:
                e = entries[m]
                try:
                    values[m] = metrics.compute(metric, e.features, e.labels, source_probs=e.source_probs)
                except Exception as exc:  # noqa: BLE001 - the reason is reported; the study goes on
                    skipped.append((metric, m, f"{type(exc).__name__}: {exc}"))
        scores[metric] = {
            m: (None if v is None or not math.isfinite(v) else float(v)) for m, v in values.items()
        }
        timings[f"metric:{metric}"] = time.perf_counter() - t0
        log(f"[{name}] {metric}: {timings[f'metric:{metric}']:.1f}s")
    timings["scoring"] = time.perf_counter() - t_scoring
    for base in BASELINES:
        scores[base] = {m: _as_float(entries[m].meta.get(base)) for m in kept}
        scores[base] = {m: (v if np.isfinite(v) else None) for m, v in scores[base].items()}
    timings.update(extract=extract_s, probe=probe_s, total=time.perf_counter() - start)
    labels = entries[kept[0]].labels if kept else np.array([])
    return TargetScores(
        name=name,
        models=kept,
        truth=truth,
        scores=scores,
        truth_check=check,
        skipped=skipped,
        timings=timings,
        n_samples=len(dataset),
        n_classes=int(len(np.unique(labels))),
    )


def finetuned_target(
    target: TargetScores, data: str, *, cache_dir: str | None, seed: int, max_per_class: int | None, log=print
) -> TargetScores:
    """``target`` with the fine-tuned accuracy as its truth (``probe --regime finetune``, cached per training run
    under ``cache_dir``), named ``<target>/ft``; the scores are the same (the metrics never see the regime)."""
    from analyzer.probe import probe_models

    t0 = time.perf_counter()
    rows = probe_models(
        data,
        target.models,
        cache_dir=cache_dir,
        seed=seed,
        regime="finetune",
        max_per_class=max_per_class,
        progress=False,
    )
    log(f"[{target.name}{FINETUNE_SUFFIX}] fine-tuned truth: {time.perf_counter() - t0:.1f}s")
    timings = {**target.timings, "probe": time.perf_counter() - t0}
    truth = {m: float(r["accuracy"]) for m, r in rows.items()}
    return replace(target, name=target.name + FINETUNE_SUFFIX, truth=truth, truth_check={}, timings=timings)


def zoo_specs(zoo_cache: str | None) -> tuple[list[str], str]:
    """Specs of the demo's zoo candidates found built under ``<zoo_cache>/zoo`` (none are trained here), in pool
    order, and the budget name(s) they were trained with (``"full"``, ``"small"`` or e.g. ``"full+small"``)."""
    from analyzer import zoo

    built = {c.name: c for c in zoo.list_zoo(zoo_cache)}
    pool = [c.name for c in zoo.POOLS["full"] if c.name in built]
    budgets = sorted({str((built[n].sidecar.get("budget") or {}).get("name", "?")) for n in pool})
    return [built[n].spec for n in pool], "+".join(budgets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="notmnist,cifar10,digits", help="comma-separated (default: all)")
    parser.add_argument("--out", default=None, help="also write the markdown report to this file")
    parser.add_argument(
        "--cache-dir", default=None, help="cache root (default: $ANALYZER_CACHE_DIR or data_cache)"
    )
    parser.add_argument("--folds", type=int, default=5, help="probe cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="probe fold shuffle seed (default 0)")
    parser.add_argument(
        "--check-seed",
        type=int,
        default=1,
        help="second probe shuffle to check the truth's stability (-1: off)",
    )
    parser.add_argument("--device", default="cpu", help="extraction device (default cpu)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--zoo-cache",
        default=None,
        help="cache root whose zoo/ holds the built demo pool, read only (default: the --cache-dir)",
    )
    parser.add_argument(
        "--digits-max-per-class", type=int, default=None, help="subsample digits (default: all)"
    )
    parser.add_argument(
        "--few-shot",
        type=int,
        default=0,
        help="also score every target subsampled to this many images per class, truth re-probed (0: off)",
    )
    parser.add_argument(
        "--regimes",
        default="linear",
        help="ground truths, comma-separated: linear (the probe) and/or finetune (probe --regime finetune: CPU-hours "
        "cold, seconds from the cache) (default linear)",
    )
    parser.add_argument("--shared", default=None, help="the shared benchmarks folder (default: ../shared)")
    args = parser.parse_args(argv)
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    if not regimes or set(regimes) - {"linear", "finetune"}:
        parser.error(f"--regimes takes linear and/or finetune, got {args.regimes!r}")
    shared = Path(args.shared) if args.shared else SHARED

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    real = [f"torchscript:{MODELS_DIR / m}.pt" for m in REAL_MODELS]
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(wanted) - {"notmnist", "cifar10", "digits"})
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from notmnist, cifar10, digits")
    check_seed = None if args.check_seed < 0 else args.check_seed
    common = dict(
        cache_dir=args.cache_dir,
        folds=args.folds,
        seed=args.seed,
        check_seed=check_seed,
        device=args.device,
        batch_size=args.batch_size,
        log=log,
    )
    targets: list[TargetScores] = []

    def add(target: TargetScores, data: str, max_per_class: int | None) -> None:
        """Keep ``target`` under each regime asked: its linear-probe truth, and/or the fine-tuned one."""
        if "linear" in regimes:
            targets.append(target)
        if "finetune" in regimes:
            targets.append(
                finetuned_target(
                    target,
                    data,
                    cache_dir=args.cache_dir,
                    seed=args.seed,
                    max_per_class=max_per_class,
                    log=log,
                )
            )

    def add_few_shot(name: str, data: str, specs: list[str]) -> None:
        """The same target at ``--few-shot`` images per class, truth re-probed on that subsample: the regime where
        several metrics break. Folds cannot exceed the class size."""
        if args.few_shot:
            few = {**common, "folds": min(args.folds, args.few_shot)}
            target = score_target(f"{name}@{args.few_shot}", data, specs, max_per_class=args.few_shot, **few)
            add(target, data, args.few_shot)

    for name in wanted:
        if name in ("notmnist", "cifar10"):
            data = (ASSETS if name == "notmnist" else shared / "benchmarks" / name) / "target.npz"
            if not data.exists() or not MODELS_DIR.exists():
                log(
                    f"[{name}] skipped: {data} or {MODELS_DIR} is absent (../shared is not beside the repository)"
                )
                continue
            add(score_target(name, str(data), real, **common), str(data), None)
            add_few_shot(name, str(data), real)
        else:
            specs, budget = zoo_specs(args.zoo_cache or args.cache_dir)
            if len(specs) < 2:
                log(
                    "[digits] skipped: the zoo is not built in the cache; run `python -m analyzer zoo build` first"
                )
                continue
            # The budget is in the name: a small-budget pool is a weaker test than the full one.
            label = "digits" if budget == "full" else f"digits/{budget}"
            digits = score_target(
                label, "sklearn:digits", specs, max_per_class=args.digits_max_per_class, **common
            )
            add(digits, "sklearn:digits", args.digits_max_per_class)
            add_few_shot(label, "sklearn:digits", specs)
    if not targets:
        log("no target could be measured; nothing to report")
        return 1
    rows = build_table(targets, metric_names=metrics.available(kind="label"))
    text = report_markdown(targets, rows)
    text += "\n### Leave one target out (protocol: benchmarks/loto.py)\n\n"
    names = [t.name for t in targets]
    text += loto_markdown(leave_one_target_out(rows, names)) + "\n"
    text += "\n### Choosing the default: every candidate's weighted tau per target and regime (worst case in bold)\n\n"
    text += worst_case_markdown(rows, names, kinds=DEFAULT_CANDIDATE_KINDS) + "\n"
    text += "\n### Leave one target out over those candidates (metrics, aggregates and rules)\n\n"
    text += loto_markdown(leave_one_target_out(rows, names, kinds=DEFAULT_CANDIDATE_KINDS)) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
