"""ranking.csv: :attr:`RankingResult.table`, one row per ranked candidate, best first."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyzer.result import RankingResult


def render(result: RankingResult) -> str:
    """The ranking.csv text of ``result`` (columns as :attr:`RankingResult.table`, empty cells for missing)."""
    return result.table.to_csv(index=False, lineterminator="\n", float_format="%.6g")
