"""The few-images-per-class judgement of a ranking (:meth:`analyzer.result.RankingResult.few_per_class_note`):
which column the measured record says to trust over the aggregate, and whether it agrees with the pick."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer import metric_record

if TYPE_CHECKING:  # the result calls this module: no runtime import back
    from analyzer.result import RankingResult


def few_per_class_view(result: RankingResult) -> tuple[str, bool] | None:
    """(:meth:`RankingResult.few_per_class_note`, :meth:`RankingResult.few_per_class_agrees`) of ``result``, or None
    when the rule does not apply (see those methods)."""
    rule = metric_record.few_per_class()
    trusted, below = str(rule["trust"]), float(rule["below"])
    n, c = result.dataset.n_samples, result.dataset.n_classes
    if not result.ranking or not n or not c or n / c >= below or result.aggregate_metrics == [trusted]:
        return None
    text = (
        f"Few images per class (about {n / c:.0f}; fewer than {below:.0f}): trust {trusted}'s column over the "
        f"aggregate. Measured: {rule['why']}"
    )
    ours = metric_record.few_shot_worst_case(trusted)
    theirs = metric_record.few_shot_worst_case(metric_record.aggregate_key(result.aggregate_metrics))
    if ours is not None and theirs is not None:
        text += f"; worst-case weighted tau there: {trusted} {ours:.3f}, this aggregate {theirs:.3f}"
    names = result.display_names
    scores = result.oriented_scores(trusted) if trusted in result.metric_names() else {}
    if not scores:
        why = (
            "was requested but could be scored for no candidate (see the skipped list)"
            if trusted in result.metric_names()
            else "was not scored in this run: add it to the run's metrics to see its pick"
        )
        return text + f". {trusted} {why}.", False
    best = max(scores.values())
    its_top = [m for m in result.models if scores.get(m) == best]
    pick = result.top_tie()
    if set(its_top) & set(pick):
        return text + f". {trusted} agrees: it ranks {names[its_top[0]]} first too.", True
    ranks = {e.model: e.metric_ranks.get(trusted) for e in result.ranking}
    rank = ranks.get(pick[0])
    where = "" if rank is None else f" (the aggregate's pick, {names[pick[0]]}, is its #{rank:g})"
    listed = " and ".join(names[m] for m in its_top)
    return text + f". {trusted} disagrees: it ranks {listed} first{where}.", False
