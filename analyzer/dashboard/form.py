"""The new-ranking form: what it offers, how it reports progress, and the run it writes.

The form builds the same :class:`~analyzer.request.RankRequest` the ``rank`` command builds (checked by the same
rules: the form checks nothing itself) and runs it with :func:`analyzer.ranking.run_and_save`, as ``rank`` does,
so the run lands where ``rank`` would put it. Its defaults are the request's (it asks, it does not copy them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.budget import DEFAULT_PARETO_AXIS
from analyzer.errors import AnalyzerError
from analyzer.naming import short_names
from analyzer.request import EXECUTOR_KINDS, RankRequest

if TYPE_CHECKING:
    from analyzer.ranking.progress import ProgressEvent
    from analyzer.result import RankingResult


def parse_candidates(text: str) -> list[str]:
    """Model specs from the form: separated by commas or new lines, blanks and ``#`` comments dropped, duplicates
    removed (an empty list is refused by the request, with the fix)."""
    specs: dict[str, None] = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if part and not part.startswith("#"):
            specs.setdefault(part, None)
    return list(specs)


def default_metrics() -> list[str]:
    """The metrics ``rank`` uses when none are named (asked of the request), so a run started here has the same
    columns, weight spectrum included."""
    from analyzer.request import default_metric_names

    return list(default_metric_names())


def default_bootstrap() -> int:
    """The bootstrap resamples ``rank`` uses when none are given (the request's default)."""
    return int(RankRequest.options()["n_bootstrap"][1])


def available_metrics() -> list[str]:
    """Every metric name the ranking accepts (registered scorers and data-free ones)."""
    from analyzer.request import valid_metric_names

    return list(valid_metric_names())


@dataclass(frozen=True)
class Progress:
    """One line of the form's progress display.

    ``key``: ``"stage:<group>"`` for a stage's bar (features, scores, weight spectrum, bootstrap) or a candidate's
    spec for its status line; ``name``: what the line is called (a stage, or the candidate's short name);
    ``fraction``: done / total of the stage (None on a candidate's line); ``text``; ``failed`` (drawn red).
    """

    key: str
    name: str
    fraction: float | None
    text: str
    failed: bool = False


#: the form's executor choices; ``local`` (in process) is the default, as for ``rank``
EXECUTORS = EXECUTOR_KINDS
EXECUTOR_HELP = (
    "**local**: in this process (the default; same report as `rank`). **ray**: on a Ray cluster, as `rank "
    "--executor ray`: leave the address empty to start a local Ray instance on every CPU and GPU here, or give "
    "`auto` or `ray://host:10001` to join a running cluster (every node must see the cache and data paths)."
)


def executor_settings(kind: str, address: str | None = None) -> dict[str, str]:
    """The ``[executor]`` table ``rank --executor KIND --ray-address ADDRESS`` would build (checked, like every
    other value, when the request is built: an address with the local executor is refused there)."""
    address = (address or "").strip()
    return {"kind": kind, "address": address} if address else {"kind": kind}


def on_node(node: str) -> str:
    """`` on <node>`` for a unit that ran on a cluster node; empty in process (the lines stay as they were)."""
    return f" on {node}" if node not in ("local", "") else ""


def as_problem(exc: Exception) -> AnalyzerError:
    """What the form shows for ``exc``: a user's mistake as it is; an internal failure says it is a bug and how
    to get its traceback."""
    if isinstance(exc, AnalyzerError):
        return exc
    return AnalyzerError(
        f"internal error while ranking: {type(exc).__name__}: {exc}",
        "this is a bug in the analyzer; run the same ranking with `ANALYZER_DEBUG=1 python -m analyzer "
        "rank ...` for the traceback",
    )


def stage_group(event: ProgressEvent) -> str:
    """The bar a progress event counts toward: its stage, by the name views give it (``weight spectrum``)."""
    from analyzer.ranking.progress import STAGE_TITLES

    return STAGE_TITLES.get(event.stage, event.stage)


class CandidateProgress:
    """Turns the Ranker's :class:`analyzer.ranking.ProgressEvent` stream into the form's lines: one bar per stage
    (its ``done`` / ``total``, exactly as the ranking counts them) and one status line per candidate (short name,
    the last unit it finished; red and final once it fails). On a cluster each line also names the node that ran
    the unit (``ProgressEvent.node``), and a failed candidate's line names the node it failed on."""

    def __init__(self, specs: Sequence[str], callback: Callable[[Progress], None] | None) -> None:
        self.names = short_names(list(specs))
        self.failed: dict[str, str] = {}  # spec -> the node it failed on ("local" in process)
        self.callback = callback
        for spec, name in self.names.items():
            self._emit(Progress(spec, name, None, "waiting"))

    def _emit(self, progress: Progress) -> None:
        if self.callback is not None:
            self.callback(progress)

    def event(self, event: ProgressEvent) -> None:
        model = event.model
        if model not in self.names or model in self.failed:
            return
        if event.error is not None:
            # the error itself is shown by finish(), from the result (the event's message is a log line)
            self.failed[model] = event.node
            self._emit(Progress(model, self.names[model], None, f"failed{on_node(event.node)}", failed=True))
            return
        group = stage_group(event)
        where = on_node(event.node)
        if event.total:
            fraction = min(max(event.done / event.total, 0.0), 1.0)
            text = f"{group}: {event.done} of {event.total}" + (f" (last{where})" if where else "")
            self._emit(Progress(f"stage:{group}", group, fraction, text))
        self._emit(Progress(model, self.names[model], None, f"{event.label} done{where}"))

    def finish(self, result: RankingResult) -> None:
        """Every candidate's final line from the result: done, or failed (red) with the error it records."""
        failed = {f.model: f.error for f in result.failed if f.metric is None}
        for spec, name in self.names.items():
            if spec in failed:
                where = on_node(self.failed.get(spec, "local"))
                self._emit(Progress(spec, name, None, f"failed{where}: {failed[spec]}", failed=True))
            else:
                self._emit(Progress(spec, name, None, "done"))


#: The form's cost budget inputs: (RankRequest field, label); 0 means no limit, as a blank flag does.
BUDGET_INPUTS = (
    ("max_params", "Max parameters"),
    ("max_flops", "Max FLOPs/image"),
    ("max_latency_ms", "Max latency ms"),
    ("max_memory_mb", "Max memory MiB"),
)


def budget_fields(values: Mapping[str, float] | None) -> dict[str, Any]:
    """The request's ``max_*`` fields of the form's budget inputs (0 or missing: no limit); checked, as every
    value, when the request is built."""
    whole = {"max_params", "max_flops"}
    return {k: (int(v) if k in whole else float(v)) for k, v in (values or {}).items() if v}


def build_request(
    cache_dir: str | os.PathLike[str],
    *,
    data: str,
    candidates: str | Sequence[str],
    metrics: Sequence[str] | None = None,
    name: str = "dashboard",
    max_per_class: int | None = None,
    n_bootstrap: int | None = None,
    seed: int = 0,
    executor: Mapping[str, Any] | None = None,
    budget: Mapping[str, float] | None = None,
    pareto_axis: str = DEFAULT_PARETO_AXIS,
) -> RankRequest:
    """The form's request: ``candidates`` are specs or the form's text, ``metrics`` None or empty for the
    defaults, ``n_bootstrap`` None for the request's default, ``executor`` an ``[executor]`` table
    (:func:`executor_settings`; None = in process), ``budget`` the form's limits (:func:`budget_fields`),
    ``pareto_axis`` as ``rank --pareto-axis``. A mistake raises the request's RequestError with the fix."""
    specs = parse_candidates(candidates) if isinstance(candidates, str) else list(candidates)
    options: dict[str, Any] = {} if n_bootstrap is None else {"n_bootstrap": n_bootstrap}
    return RankRequest(
        data=(data or "").strip() or None,
        models=tuple(specs),
        metrics=tuple(metrics) if metrics else None,
        name=name,
        cache_dir=str(cache_dir),
        max_per_class=max_per_class,
        seed=seed,
        executor=dict(executor) if executor else {"kind": "local"},
        pareto_axis=pareto_axis,
        **budget_fields(budget),
        **options,
    )


def start_ranking(
    cache_dir: str | os.PathLike[str],
    *,
    progress: Callable[[Progress], None] | None = None,
    **form: Any,
) -> Path:
    """Rank what the form asks (:func:`build_request`'s keywords) with :func:`analyzer.ranking.run_and_save`, as
    ``rank`` does: the run is saved under ``<cache>/runs/<timestamp>-<name>/`` (all four report files); returns
    that directory. A Ray executor connects and checks that every node sees the cache and the data before any
    work is sent, and is closed when the ranking ends. Bad input raises AnalyzerError with the fix."""
    from analyzer.ranking import run_and_save

    request = build_request(cache_dir, **form)
    tracker = CandidateProgress(request.models, progress)
    saved = run_and_save(request, on_progress=tracker.event)
    tracker.finish(saved.result)
    return saved.out
