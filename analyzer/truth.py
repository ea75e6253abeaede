"""Ground truth for validation: a truth CSV (``model,accuracy[,dataset]``) read into {model: accuracy}."""

from __future__ import annotations

import os
from pathlib import Path

from analyzer.errors import AnalyzerError


class TruthError(AnalyzerError):
    """A ground-truth file cannot be used as given (missing, unreadable, wrong columns, bad values)."""


def load_ground_truth(path: str | os.PathLike[str], *, dataset: str | None = None) -> dict[str, float]:
    """Read a truth CSV (``model,accuracy`` and optionally ``dataset``) into {model: accuracy}.

    With a ``dataset`` column, rows whose dataset equals ``dataset`` (the run's dataset name or spec) are kept;
    when the file holds a single dataset it is used whatever its name.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise TruthError(
            f"ground-truth file {path} does not exist", "check the --ground-truth path"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TruthError(
            f"cannot read {path} as CSV: {exc}", "give a CSV with columns model,accuracy"
        ) from exc
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
                    "add rows for this dataset, or name it in the `dataset` column",
                )
    accuracy = pd.to_numeric(frame["accuracy"], errors="coerce")
    if accuracy.isna().any():
        bad = frame["model"][accuracy.isna()].astype(str).tolist()
        raise TruthError(
            f"ground-truth file {path} has non-numeric accuracy for {', '.join(bad[:5])}",
            "write accuracies as numbers (0.87 or 87.0)",
        )
    truth = dict(zip(frame["model"].astype(str), accuracy.astype(float), strict=True))
    if not truth:
        raise TruthError(
            f"ground-truth file {path} has no rows", "add one `model,accuracy` row per candidate"
        )
    return truth
