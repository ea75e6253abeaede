"""Ground truth for validation: a truth CSV (``model,accuracy[,dataset]``) read into {model: accuracy}.

Accuracies are on one scale, fractions in [0, 1] or percentages in [0, 100] (the scale is kept: rank statistics
do not depend on it, and top-1 regret is reported in the file's own units). A file that mixes the two (61 and
0.53), holds a negative or non-finite value, or lists a model twice is refused: any of them silently changes
the validation (a model listed twice would let the row order decide its accuracy).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from analyzer.errors import TruthError
from analyzer.inputs import read_user_text

__all__ = ["TruthError", "check_truth_covers", "load_ground_truth"]

_FIX_FORMAT = "give a UTF-8 CSV with columns model,accuracy[,dataset], one row per model"


def load_ground_truth(path: str | os.PathLike[str], *, dataset: str | None = None) -> dict[str, float]:
    """Read a truth CSV (``model,accuracy`` and optionally ``dataset``) into {model: accuracy}.

    With a ``dataset`` column, rows whose dataset equals ``dataset`` (the run's dataset name or spec) are kept;
    when the file holds a single dataset it is used whatever its name.
    """
    import pandas as pd

    path = Path(path)
    text = read_user_text(
        path, what="ground-truth file", fix="check the --ground-truth path; " + _FIX_FORMAT, kind=TruthError
    )
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise TruthError(f"cannot read {path} as CSV: {' '.join(str(exc).split())}", _FIX_FORMAT) from exc
    missing = {"model", "accuracy"} - set(frame.columns)
    if missing:
        raise TruthError(
            f"ground-truth file {path} lacks the column(s) {', '.join(sorted(missing))} "
            f"(it has {', '.join(map(str, frame.columns))})",
            "give a CSV with columns model,accuracy[,dataset]",
        )
    if "dataset" in frame.columns:
        names = sorted(frame["dataset"].astype(str).unique())
        if len(names) > 1:
            wanted = {str(dataset)} | ({Path(str(dataset)).name} if dataset else set())
            frame = frame[frame["dataset"].astype(str).isin(wanted)]
            if frame.empty:
                raise TruthError(
                    f"ground-truth file {path} has no rows for dataset {dataset!r} (it has {', '.join(names)})",
                    f"choose the rows with `evaluate --dataset NAME` (one of {', '.join(names)}), or add rows whose "
                    f"`dataset` column is {dataset!r} (the name `rank` looks for)",
                )
    if frame.empty:
        raise TruthError(
            f"ground-truth file {path} has no rows", "add one `model,accuracy` row per candidate"
        )
    models = frame["model"].astype(str).str.strip()
    repeated = sorted(set(models[models.duplicated()]))
    if repeated:
        raise TruthError(
            f"ground-truth file {path}: model {repeated[0]} listed twice"
            + (f" (and {len(repeated) - 1} more: {', '.join(repeated[1:4])})" if len(repeated) > 1 else ""),
            "keep one row per model (per dataset, with a `dataset` column)",
        )
    accuracy = pd.to_numeric(frame["accuracy"], errors="coerce")
    if accuracy.isna().any():
        bad = models[accuracy.isna()].tolist()
        raise TruthError(
            f"ground-truth file {path} has non-numeric accuracy for {', '.join(bad[:5])}",
            "write accuracies as numbers (0.87 or 87.0)",
        )
    truth = dict(zip(models, accuracy.astype(float), strict=True))
    _check_scale(truth, path)
    return truth


def _check_scale(truth: dict[str, float], path: Path) -> None:
    """Refuse values that are not finite, negative, above 100, or a mix of fractions and percentages."""
    fix = "write every accuracy on one scale: fractions in [0, 1] (0.87) or percentages in [0, 100] (87.0)"
    for model, value in truth.items():
        if not math.isfinite(value) or value < 0 or value > 100:
            raise TruthError(
                f"ground-truth file {path}: accuracy {value:g} of {model} is not in [0, 100]", fix
            )
    high = [m for m, v in truth.items() if v > 1]
    low = [m for m, v in truth.items() if v < 1]
    if high and low:
        raise TruthError(
            f"ground-truth file {path} mixes scales: {high[0]} has {truth[high[0]]:g} (a percentage) but "
            f"{low[0]} has {truth[low[0]]:g} (a fraction)",
            fix,
        )


def check_truth_covers(truth: dict[str, float], models: list[str], path: str | os.PathLike[str]) -> None:
    """Refuse, before any extraction, a truth file naming fewer than 2 of the candidates (nothing to validate).

    Models are matched by their exact spec, as ``RankingResult.validate`` matches them.
    """
    known = [m for m in models if m in truth]
    if len(known) < 2:
        raise TruthError(
            f"ground-truth file {path} names {len(known)} of the {len(models)} candidates "
            f"(it has: {', '.join(list(truth)[:5])}{' ...' if len(truth) > 5 else ''})",
            "use the same model specs in the `model` column as in --models (validation needs at least 2)",
        )
