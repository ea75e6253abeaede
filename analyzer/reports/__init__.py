"""Report writers of one :class:`analyzer.result.RankingResult`: json, csv, markdown, self-contained html.

Each writer is a pure function of the result (``render(result) -> str``), so the bytes written only depend on the
result, and the four files are written all or nothing (:func:`analyzer.outputs.write_all`): a dashboard reading a run never
sees a half-written report, and a run interrupted or out of disk space keeps its previous reports whole.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from analyzer.outputs import write_all
from analyzer.paths import CacheLayout
from analyzer.reports import csv_report, html, json_report, markdown
from analyzer.result import RankingResult

#: File name -> renderer, in the order they are written (report.json last: its presence marks a complete run).
WRITERS = {
    "ranking.csv": csv_report.render,
    "report.md": markdown.render,
    "report.html": html.render,
    "report.json": json_report.render,
}


def write_reports(
    result: RankingResult,
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Write ranking.csv, report.md, report.html and report.json into ``out_dir`` (created if missing).

    ``cache_dir``: the analyzer's cache, where report.html's plots are remembered (``figures/``), so a result
    rendered before is not drawn again (same bytes either way). Returns {file name: path}.
    """
    figures = None if cache_dir is None else CacheLayout(cache_dir).figures
    texts = {
        name: html.render(result, figures) if render is html.render else render(result)
        for name, render in WRITERS.items()
    }
    # all rendered before any is written, and written all or nothing: a run directory never holds a partial set
    return write_all(Path(out_dir), texts)


def save(
    result: RankingResult,
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RankingResult:
    """Write ``result``'s four report files into ``out_dir`` (see :func:`write_reports`); returns the result
    with ``run_dir`` set to that directory."""
    write_reports(result, out_dir, cache_dir=cache_dir)
    return dataclasses.replace(result, run_dir=Path(out_dir))


__all__ = ["WRITERS", "save", "write_reports"]
