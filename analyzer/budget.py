"""Budgets, the Pareto front and the recommendation: pure functions over the ranking's rows and their costs.

No I/O, no torch: the rows are ``(model, aggregate mean rank)`` in the ranking's order (best first, lower rank is
better) and each model's cost block (:meth:`analyzer.cost.Cost.to_dict`, or None where it could not be measured).

- :class:`Budget`: the user's limits (``--max-params``, ``--max-flops``, ``--max-latency-ms``,
  ``--max-memory-mb``); a candidate is within budget when each limit set holds (``<=``); with no limit every
  candidate is; with a limit and no measured cost it is not known to be (``within_budget`` None), so never picked.
- :func:`pareto_front`: the candidates no other candidate dominates in (aggregate mean rank, the cost axis), both
  lower is better; a candidate dominates another when it is no worse on both and better on one.
- :func:`recommend`: the candidate with the best aggregate within budget; when the candidates statistically tied
  for the top (the bootstrap's tied set, :meth:`analyzer.result.RankingResult.top_tie`) hold more than one within
  budget, the one of them clearly cheapest (:func:`clearly_cheapest`: on the cost axis, a latency by more than its
  spread, else on FLOPs, else parameters), and the reason says so; when no cost separates them, the best aggregate
  and the reason says the tie could not be broken; when none fits, no model, and the reason names the closest (the
  least relative excess over its worst-exceeded limit).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The budget's limits: (the option's key, the cost field it bounds).
LIMITS: tuple[tuple[str, str], ...] = (
    ("max_params", "params"),
    ("max_flops", "flops"),
    ("max_latency_ms", "latency_ms"),
    ("max_memory_mb", "peak_memory_mb"),
)
#: The axes the Pareto front can use (``--pareto-axis``); the default is the first.
PARETO_AXES: tuple[str, ...] = ("latency_ms", "flops", "params")
DEFAULT_PARETO_AXIS = PARETO_AXES[0]

Costs = Mapping[str, Mapping[str, Any] | None]


#: The unit each cost field is shown with in messages.
UNITS = {"params": "", "flops": " FLOPs", "latency_ms": " ms", "peak_memory_mb": " MiB", "weights_mb": " MiB"}


def format_quantity(value: float, unit: str = "") -> str:
    """A short human number, 3 significant digits: counts with a k/M/G suffix (``300k``, ``81.1M FLOPs``),
    measured units as they are (``1.25 ms``, ``13.8 MiB``)."""
    v = float(value)
    if unit.strip() not in ("ms", "MiB"):
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{suffix}{unit}"
    return f"{v:.3g}{unit}" if abs(v) < 1000 else f"{v:.0f}{unit}"


@dataclass(frozen=True)
class Budget:
    """Upper limits on a candidate's cost (None: no limit). ``max_params`` / ``max_flops`` count parameters and
    FLOPs per image; ``max_latency_ms`` is batch-1 latency; ``max_memory_mb`` the peak memory in MiB."""

    max_params: int | None = None
    max_flops: int | None = None
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Budget:
        """From a mapping with any of the keys (the config's ``[budget]`` keys, a report's ``budget`` block)."""
        data = data or {}
        return cls(**{key: data.get(key) for key, _ in LIMITS})

    def limits(self) -> dict[str, float]:
        """``{cost field: limit}`` of the limits that are set."""
        return {field: float(getattr(self, key)) for key, field in LIMITS if getattr(self, key) is not None}

    def is_set(self) -> bool:
        return bool(self.limits())

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key, _ in LIMITS}

    def describe(self) -> str:
        """``params <= 300k, latency_ms <= 5 ms``, or ``no budget``."""
        parts = [
            f"{field} <= {format_quantity(getattr(self, key), UNITS[field])}"
            for key, field in LIMITS
            if getattr(self, key) is not None
        ]
        return ", ".join(parts) or "no budget"


def violations(cost: Mapping[str, Any] | None, budget: Budget) -> list[str]:
    """The limits ``cost`` exceeds, as ``params 648k > 300k`` (empty when within budget or no limit is set; a
    limit whose value is unmeasured reads ``latency_ms not measured``)."""
    out = []
    for field, limit in budget.limits().items():
        value = None if cost is None else cost.get(field)
        if value is None:
            out.append(f"{field} not measured")
        elif float(value) > limit:
            out.append(
                f"{field} {format_quantity(value, UNITS[field])} > {format_quantity(limit, UNITS[field])}"
            )
    return out


def within_budget(cost: Mapping[str, Any] | None, budget: Budget) -> bool | None:
    """True when every set limit holds; False when one is exceeded; None when one cannot be checked (unmeasured)."""
    limits = budget.limits()
    values = {field: None if cost is None else cost.get(field) for field in limits}
    if any(float(v) > limits[f] for f, v in values.items() if v is not None):
        return False
    return None if any(v is None for v in values.values()) else True


def excess(cost: Mapping[str, Any] | None, budget: Budget) -> float:
    """How far over budget: the largest ``value / limit - 1`` over the set limits (0 within budget; inf when a
    limit is unmeasured or 0 and exceeded)."""
    worst = 0.0
    for field, limit in budget.limits().items():
        value = None if cost is None else cost.get(field)
        if value is None:
            return float("inf")
        if float(value) > limit:
            worst = max(worst, float(value) / limit - 1 if limit > 0 else float("inf"))
    return worst


def pareto_front(rows: Sequence[tuple[str, float | None]], costs: Costs, axis: str) -> list[str]:
    """The models of ``rows`` (model, aggregate mean rank) no other dominates in (mean rank, ``cost[axis]``),
    in the rows' order; a model without a rank or without that cost is on no front (it cannot be compared)."""
    points = []
    for model, rank in rows:
        cost = costs.get(model) or {}
        if rank is not None and cost.get(axis) is not None:
            points.append((model, float(rank), float(cost[axis])))

    def dominated(r: float, c: float) -> bool:
        return any(r2 <= r and c2 <= c and (r2 < r or c2 < c) for _, r2, c2 in points)

    return [model for model, r, c in points if not dominated(r, c)]


@dataclass(frozen=True)
class Recommendation:
    """The pick: ``model`` (None when no candidate fits), the ``reason`` in one or two sentences, whether a
    statistical tie was broken on cost (``tie_broken``) and, when none fits, the ``closest`` candidate."""

    model: str | None
    reason: str
    tie_broken: bool = False
    closest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "reason": self.reason,
            "tie_broken": self.tie_broken,
            "closest": self.closest,
        }


def recommend(
    rows: Sequence[tuple[str, float | None]],
    costs: Costs,
    budget: Budget,
    *,
    tied: Collection[str] = (),
    axis: str = DEFAULT_PARETO_AXIS,
    names: Mapping[str, str] | None = None,
) -> Recommendation:
    """The candidate to use (see the module docstring). ``rows``: (model, aggregate mean rank), best first;
    ``tied``: the models statistically tied for the top; ``names``: display names for the reason."""
    name = dict(names or {})

    def show(model: str) -> str:
        return name.get(model, model)

    ranked = [(m, r) for m, r in rows if r is not None]
    if not ranked:
        return Recommendation(None, "No candidate has an aggregate rank: nothing to recommend.")
    fits = [m for m, _ in ranked if within_budget(costs.get(m), budget)]
    scope = f"within the budget ({budget.describe()})" if budget.is_set() else "(no budget set)"
    if not fits:
        closest = min((m for m, _ in ranked), key=lambda m: excess(costs.get(m), budget))
        return Recommendation(
            None,
            f"No candidate fits the budget ({budget.describe()}). The closest is {show(closest)} "
            f"({'; '.join(violations(costs.get(closest), budget))}).",
            closest=closest,
        )
    best = fits[0]
    mean_rank = dict(ranked)[best]
    reason = f"{show(best)}: the best aggregate mean rank ({mean_rank:.2f}) {scope}."
    skipped = [m for m, _ in ranked[: [m for m, _ in ranked].index(best)]]
    if skipped:
        reason += f" Better ranked but over budget: {', '.join(show(m) for m in skipped)}."
    group = [m for m in fits if m in set(tied)]
    if best not in group or len(group) < 2:
        return Recommendation(best, reason)
    tied_names = " and ".join(show(m) for m in group)
    decided = clearly_cheapest(group, costs, axis)
    if decided is None:
        return Recommendation(
            best,
            f"{tied_names} are statistically tied for the top {scope}; the tie cannot be broken on cost (no one "
            f"is cheaper beyond the latency's spread, nor in FLOPs or parameters): {show(best)} has the better "
            "mean rank.",
        )
    cheapest, used = decided
    values = ", ".join(f"{show(m)} {format_quantity(costs[m][used], UNITS.get(used, ''))}" for m in group)  # type: ignore[index]
    return Recommendation(
        cheapest,
        f"{tied_names} are statistically tied for the top {scope}; the tie is broken on cost: {show(cheapest)} "
        f"has the lowest {used} ({values}).",
        tie_broken=True,
    )


def clearly_cheapest(group: Sequence[str], costs: Costs, axis: str) -> tuple[str, str] | None:
    """(the member of ``group`` clearly cheapest, the cost it was decided on), trying ``axis``, then FLOPs, then
    parameters; None when no axis decides. Clearly: cheaper than every other member, on latency by more than the
    larger of the two interquartile ranges (a difference inside the spread is noise)."""
    for used in dict.fromkeys([axis, "flops", "params"]):
        values = {m: (costs.get(m) or {}).get(used) for m in group}
        if any(v is None for v in values.values()):
            continue
        order = sorted(group, key=lambda m: float(values[m]))  # type: ignore[arg-type]
        first, second = order[0], order[1]
        spread = 0.0
        if used == "latency_ms":
            spread = max(float((costs.get(m) or {}).get("latency_iqr_ms") or 0.0) for m in (first, second))
        if float(values[second]) - float(values[first]) > spread:  # type: ignore[arg-type]
            return first, used
    return None


def cost_blocks(
    rows: Sequence[tuple[str, float | None]],
    costs: Costs,
    budget: Budget,
    *,
    tied: Collection[str] = (),
    axis: str = DEFAULT_PARETO_AXIS,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What the report adds from the costs: ``within_budget`` {model: bool | None}, ``budget`` (the limits),
    ``recommendation`` {model, reason, tie_broken, closest} and ``pareto`` {axis, models}."""
    return {
        "within_budget": {model: within_budget(costs.get(model), budget) for model, _ in rows},
        "budget": budget.to_dict(),
        "recommendation": recommend(rows, costs, budget, tied=tied, axis=axis, names=names).to_dict(),
        "pareto": {"axis": axis, "models": pareto_front(rows, costs, axis)},
    }


def check_pareto_axis(axis: str) -> str:
    """``axis`` when it is one of :data:`PARETO_AXES`; else a UsageError naming them."""
    if axis not in PARETO_AXES:
        from analyzer.errors import ConfigError

        raise ConfigError(f"unknown Pareto axis {axis!r}", f"pass --pareto-axis {' | '.join(PARETO_AXES)}")
    return axis


def check_budget(budget: Budget) -> Budget:
    """``budget`` when every limit set is a positive number; else a ConfigError naming the flag."""
    from analyzer.errors import ConfigError

    for key, _ in LIMITS:
        value = getattr(budget, key)
        if value is not None and (isinstance(value, bool) or not value > 0):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} must be a positive number, got {value!r}",
                f"pass e.g. {flag} 300000, or leave it out",
            )
    return budget
