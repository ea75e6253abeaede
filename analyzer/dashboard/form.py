"""The new-ranking form: what it offers, how it reports progress, and the run it writes.

The form runs :class:`analyzer.ranking.Ranker` exactly as the ``rank`` command does, with the ranking's own
default metrics (it asks the ranking, it does not copy the list), and writes the run where ``rank`` would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.budget import DEFAULT_PARETO_AXIS, Budget, check_budget, check_pareto_axis
from analyzer.errors import AnalyzerError
from analyzer.naming import short_names

if TYPE_CHECKING:
    from analyzer.ranking.progress import ProgressEvent
    from analyzer.result import RankingResult


def parse_candidates(text: str) -> list[str]:
    """Model specs from the form: separated by commas or new lines, blanks and ``#`` comments dropped, duplicates
    removed. Raises AnalyzerError when none is given."""
    specs: dict[str, None] = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if part and not part.startswith("#"):
            specs.setdefault(part, None)
    if not specs:
        raise AnalyzerError(
            "no candidate models given",
            "enter one model spec per line or comma-separated, e.g. timm:resnet18 or torchscript:path/model.pt",
        )
    return list(specs)


def default_metrics() -> list[str]:
    """The metrics ``rank`` uses when none are named (asked of the ranking), so a run started here has the same
    columns, weight spectrum included."""
    from analyzer.ranking import default_metric_names

    return list(default_metric_names())


def default_bootstrap() -> int:
    """The bootstrap resamples ``rank`` uses when none are given (read off :meth:`analyzer.ranking.Ranker.run`)."""
    import inspect

    from analyzer.ranking import Ranker

    return int(inspect.signature(Ranker.run).parameters["n_bootstrap"].default)


def available_metrics() -> list[str]:
    """Every metric name the ranking accepts (registered scorers and data-free ones)."""
    from analyzer.ranking import valid_metric_names

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


EXECUTORS = (
    "local",
    "ray",
)  #: the form's executor choices; ``local`` (in process) is the default, as for ``rank``
EXECUTOR_HELP = (
    "**local**: in this process (the default; same report as `rank`). **ray**: on a Ray cluster, as `rank "
    "--executor ray`: leave the address empty to start a local Ray instance on every CPU and GPU here, or give "
    "`auto` or `ray://host:10001` to join a running cluster (every node must see the cache and data paths)."
)


def executor_settings(kind: str, address: str | None = None) -> dict[str, str] | None:
    """The ``[executor]`` table ``rank --executor KIND --ray-address ADDRESS`` would build: None for the in-process
    default, ``{"kind": "ray"}`` (start a local Ray instance) or with ``"address"`` (``auto``, ``ray://host:10001``).

    An address with the local executor is refused rather than ignored (AnalyzerError with the fix).
    """
    address = (address or "").strip()
    if kind not in EXECUTORS:
        raise AnalyzerError(f"unknown executor {kind!r}", f"choose one of: {', '.join(EXECUTORS)}")
    if kind == "local":
        if address:
            raise AnalyzerError(
                f"a Ray address ({address}) was given but the executor is local",
                "choose the ray executor to use that cluster, or clear the address to rank in this process",
            )
        return None
    return {"kind": "ray", "address": address} if address else {"kind": "ray"}


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


#: The form's cost budget inputs: (RankConfig key, label); 0 means no limit, as a blank flag does.
BUDGET_INPUTS = (
    ("max_params", "Max parameters"),
    ("max_flops", "Max FLOPs/image"),
    ("max_latency_ms", "Max latency ms"),
    ("max_memory_mb", "Max memory MiB"),
)


def budget_of(values: Mapping[str, float] | None) -> Budget:
    """The :class:`~analyzer.budget.Budget` of the form's inputs (0 or missing: no limit), checked as ``rank``'s."""
    values = values or {}
    whole = {"max_params", "max_flops"}
    limits = {k: (int(v) if k in whole else float(v)) for k, v in values.items() if v}
    return check_budget(Budget.from_mapping(limits))


def start_ranking(
    cache_dir: str | os.PathLike[str],
    *,
    data: str,
    candidates: str | Sequence[str],
    metrics: Sequence[str] | None = None,
    name: str = "dashboard",
    max_per_class: int | None = None,
    n_bootstrap: int = 100,
    seed: int = 0,
    progress: Callable[[Progress], None] | None = None,
    executor: Mapping[str, Any] | None = None,
    budget: Mapping[str, float] | None = None,
    pareto_axis: str = DEFAULT_PARETO_AXIS,
) -> Path:
    """Rank ``candidates`` (specs, or the form's text) on ``data`` with the Ranker, save the run under
    ``<cache>/runs/<timestamp>-<name>/`` (all four report files) and return that directory.

    ``metrics``: None or empty for :func:`default_metrics`. ``executor``: an ``[executor]`` table
    (:func:`executor_settings`; None = in process), opened as ``rank`` opens it (a Ray one connects and checks
    that every node sees the cache and the data before any work is sent) and closed when the ranking ends.
    ``budget``: the form's limits (:func:`budget_of`), ``pareto_axis`` as ``rank --pareto-axis``.
    Bad input raises AnalyzerError with the fix.
    """
    specs = parse_candidates(candidates) if isinstance(candidates, str) else list(candidates)
    if not specs:
        raise AnalyzerError("no candidate models given", "pass at least one model spec")
    if not (data or "").strip():
        raise AnalyzerError(
            "no dataset given",
            "enter an image folder, a .csv/.jsonl/.npz file, a save_to_disk directory, or sklearn:digits",
        )
    from analyzer.executors import open_executor
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.ranking import Ranker
    from analyzer.reports import save

    cache = resolve_cache_dir(cache_dir)
    runner = open_executor(executor, [cache, data.strip()])
    tracker = CandidateProgress(specs, progress)
    try:
        ranker = Ranker(
            data.strip(),
            cache_dir=cache,
            max_per_class=max_per_class,
            seed=seed,
            progress=False,
            on_progress=tracker.event,
            executor=runner,
        )
        result = ranker.run(
            specs,
            metrics=list(metrics) if metrics else None,
            n_bootstrap=n_bootstrap,
            name=name,
            budget=budget_of(budget),
            pareto_axis=check_pareto_axis(pareto_axis),
        )
    finally:
        runner.close()
    out = CacheLayout(ranker.cache_dir).new_run_dir(name)
    result = save(result, out)
    tracker.finish(result)
    return out
