"""Spectrum stage: one task per candidate analyses its weights' spectrum (weightwatcher, cached by weights), and
the data-free metrics (``metrics.available(kind="data_free")``, e.g. alpha) are computed on the driver from its
per-layer columns with ``metrics.compute_data_free``.

A candidate whose analysis fails or times out gets no data-free score; each requested data-free metric lists it
in ``skipped`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.executors import Executor, Task
from analyzer.ranking.progress import SPECTRUM, ProgressEvent, per_candidate_events
from analyzer.ranking.stages.features import Extracted
from analyzer.report_types import ModelSpectrum, Skipped


@dataclass(frozen=True)
class SpectrumValue:
    """A task's result: the spectrum block of the report, or why it could not be computed."""

    spectrum: Mapping[str, Any] | None = None
    reason: str | None = None


def spectrum_one(spec: str, weights_id: str, cache_dir: str, timeout: float) -> SpectrumValue:
    """The task: the weight spectrum of one candidate (from the spectrum cache, else weightwatcher in a
    subprocess, then cached)."""
    from analyzer.errors import AnalyzerError
    from analyzer.spectrum import analyze_spectrum

    try:
        return SpectrumValue(
            analyze_spectrum(spec, weights_id=weights_id, cache_dir=cache_dir, timeout=timeout)
        )
    except AnalyzerError as exc:
        return SpectrumValue(reason=str(exc))


@dataclass(frozen=True)
class SpectrumInput:
    """The candidates, the data-free metrics asked for (none: the stage does nothing) and the time limit."""

    cache_dir: Path
    candidates: tuple[Extracted, ...]
    metrics: tuple[str, ...]
    timeout: float = 600.0


@dataclass(frozen=True)
class SpectrumOutput:
    """``spectra[model]``: the report's spectrum entry; ``scores[metric][model]``: data-free scores (None when
    skipped); ``skipped``: the data-free metrics that could not be computed, and why."""

    spectra: Mapping[str, ModelSpectrum] = field(default_factory=dict)
    scores: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)


#: The input the spectrum stage gives data-free metrics (``MetricInfo.requires``).
SPECTRUM_INPUT = "weight_spectrum"


def spectrum_columns(spectrum: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The per-layer numeric columns of a spectrum block (``alpha``, ``log_spectral_norm``, ...; NaN where a
    layer has no value), the inputs of the data-free metrics."""
    layers = list(spectrum.get("layers") or [])
    names = [k for k in (layers[0] if layers else {}) if k not in ("layer_id", "name", "flag")]
    return {k: np.array([np.nan if x.get(k) is None else float(x[k]) for x in layers]) for k in names}


def run_spectrum(
    inp: SpectrumInput, executor: Executor, emit: Callable[[ProgressEvent], None]
) -> SpectrumOutput:
    """Analyse every candidate's weights when a data-free metric is asked for; cached spectra run no task."""
    from analyzer.spectrum import cached_spectrum

    if not inp.metrics:
        return SpectrumOutput()
    values: dict[str, SpectrumValue] = {}
    tasks: list[Task] = []
    for c in inp.candidates:
        weights_id = str(c.weights_id or c.feature_key)
        cached = cached_spectrum(inp.cache_dir, weights_id)
        if cached is not None:
            values[c.model] = SpectrumValue(cached)
        else:
            tasks.append(
                Task(
                    "spectrum",
                    c.model,
                    spectrum_one,
                    (c.model, weights_id, str(inp.cache_dir), inp.timeout),
                    own_threads=True,  # weightwatcher runs in its own single-threaded process (spectrum_worker)
                )
            )
    total = len(inp.candidates)
    already = total - len(tasks)

    on_done = per_candidate_events(SPECTRUM, "weight spectrum", total, already, emit)

    for outcome in executor.run(tasks, on_done=on_done):
        ok = outcome.ok and isinstance(outcome.value, SpectrumValue)
        values[outcome.task.model] = outcome.value if ok else SpectrumValue(reason=str(outcome.error))

    spectra: dict[str, ModelSpectrum] = {}
    scores: dict[str, dict[str, float | None]] = {m: {} for m in inp.metrics}
    skipped: list[Skipped] = []
    for c in inp.candidates:
        value = values[c.model]
        if value.spectrum is not None:
            spectra[c.model] = ModelSpectrum.from_dict(value.spectrum, f"the weight spectrum of {c.model}")
        for metric in inp.metrics:
            score, reason = data_free_score(metric, value)
            scores[metric][c.model] = score
            if reason is not None:
                skipped.append(Skipped(model=c.model, metric=metric, reason=reason))
    return SpectrumOutput(spectra, scores, tuple(skipped))


def data_free_score(metric: str, value: SpectrumValue) -> tuple[float | None, str | None]:
    """(score, None), or (None, why it is skipped) for one data-free metric on one candidate's spectrum."""
    import metrics as metrics_lib

    if value.spectrum is None:
        return None, str(value.reason)
    reason = metrics_lib.info(metric).why_not_applicable(available_inputs=[SPECTRUM_INPUT])
    if reason is not None:
        return None, reason
    try:
        return metrics_lib.compute_data_free(metric, spectrum_columns(value.spectrum)), None
    except metrics_lib.INAPPLICABLE as exc:  # anything else is a bug: it propagates (an internal error)
        return None, f"{metric} failed: {exc}"
