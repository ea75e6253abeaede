"""Ground truth for validation: a truth CSV (``model,accuracy[,dataset][,regime][,sem]``) read into {model: accuracy}.

A ``regime`` column (``linear``: linear probe on frozen features; ``finetune``: the whole backbone fine-tuned, as
``probe --regime`` writes) holds several truths in one file: the caller picks one with ``regime``; a file that
mixes regimes read without one is refused (validating against a blend of two truths means nothing).

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
from typing import TYPE_CHECKING

from analyzer.errors import TruthError
from analyzer.inputs import read_user_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TruthError", "check_truth_covers", "load_ground_truth"]

_FIX_FORMAT = "give a UTF-8 CSV with columns model,accuracy[,dataset][,regime], one row per model"


def load_ground_truth(
    path: str | os.PathLike[str], *, dataset: str | None = None, regime: str | None = None
) -> dict[str, float]:
    """Read a truth CSV (``model,accuracy`` and optionally ``dataset``, ``regime``) into {model: accuracy}.

    With a ``dataset`` column, rows whose dataset equals ``dataset`` (the run's dataset name or spec) are kept;
    when the file holds a single dataset it is used whatever its name. With a ``regime`` column, rows of
    ``regime`` are kept; without ``regime``, a file of one regime is used as it is and one of several is refused.
    A ``regime`` asked of a file without the column is refused too (its regime is unknown).
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
    frame = _select_regime(frame, path, regime)
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


def _select_regime(frame: pd.DataFrame, path: Path, regime: str | None) -> pd.DataFrame:
    """The rows of ``regime`` (see :func:`load_ground_truth`); a file of several regimes needs one named."""
    if "regime" not in frame.columns:
        if regime is not None:
            raise TruthError(
                f"--regime {regime} asked, but ground-truth file {path} has no `regime` column",
                "add a `regime` column (linear or finetune; `probe --regime` writes it), or drop --regime",
            )
        return frame
    regimes = sorted(frame["regime"].astype(str).str.strip().unique())
    if regime is None:
        if len(regimes) > 1:
            raise TruthError(
                f"ground-truth file {path} mixes regimes ({', '.join(regimes)})",
                f"choose one with --regime {' or --regime '.join(regimes)}",
            )
        return frame
    kept = frame[frame["regime"].astype(str).str.strip() == regime]
    if kept.empty:
        raise TruthError(
            f"ground-truth file {path} has no rows of regime {regime!r} (it has {', '.join(regimes)})",
            f"pass --regime {' or --regime '.join(regimes)}, or measure it with `probe --regime {regime}`",
        )
    return kept


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
