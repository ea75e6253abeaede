"""report.json: :meth:`RankingResult.to_dict` as compact JSON (strict: no NaN, which browsers reject).

Compact because the per-layer eigenvalue lists make an indented file several times larger; report.md is the
human-readable form.
"""

from __future__ import annotations

import json

from analyzer.result import RankingResult


def render(result: RankingResult) -> str:
    """The report.json text of ``result``."""
    return json.dumps(result.to_dict(), separators=(",", ":"), allow_nan=False, ensure_ascii=False) + "\n"
