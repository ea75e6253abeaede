"""Leave-one-target-out check of the aggregate choice (used by ``benchmarks/aggregate_study.py``).

Protocol, fixed before looking at any result (issue 17):

- A *group* is one dataset: a target and its few-samples-per-class variant (``notmnist`` and ``notmnist@10``) form one
  group, so a held-out dataset never has a variant of itself among the training targets.
- For each group G: on every target outside G, each candidate aggregate of the study (the rows of kind
  ``aggregate``, all fixed in advance) has a weighted tau; the rule picks the aggregate with the **highest worst-case
  weighted tau over those training targets** (ties: higher mean tau, then name). The pick is then reported on each
  target of G, beside SFDA alone, kNN alone and the parameter-count baseline on the same target.
- Across all held-out targets: the chosen rule's worst case, and the same for SFDA, kNN and parameter count.

Nothing here reads data or models: it works on the study's :class:`Row` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Single rows every held-out result is compared with.
COMPARED: tuple[str, ...] = ("sfda", "knn", "num_params")
#: Metrics that need the candidate's source classifier: no default may depend on them (most backbones are headless).
NEEDS_SOURCE_HEAD: tuple[str, ...] = ("leep", "nce")
#: The kinds of row that may become the default (issue 26, fixed before looking): every label-only single metric,
#: every candidate aggregate of label-only metrics, and the data-dependent rules.
DEFAULT_CANDIDATE_KINDS: tuple[str, ...] = ("metric", "aggregate", "rule")


def group_of(target: str) -> str:
    """The dataset a target belongs to: ``notmnist@10`` -> ``notmnist``; ``digits/small`` -> ``digits``; a
    regime's variant too: ``notmnist@10/ft`` -> ``notmnist``."""
    return target.split("@", 1)[0].split("/", 1)[0]


@dataclass
class HeldOut:
    """One held-out target: the aggregate chosen without it, and the taus on it (NaN where undefined)."""

    target: str
    chosen: str
    chosen_tau: float
    chosen_regret: float
    compared: dict[str, float]


def _tau(row: Any, target: str) -> float:
    return float(row.tau.get(target, np.nan))


def is_candidate(row: Any, kinds: Sequence[str]) -> bool:
    """Whether ``row`` may be chosen: its kind is one of ``kinds`` and it needs no source-head metric."""
    members = {row.name, *getattr(row, "members", ())}
    return row.kind in kinds and not members & set(NEEDS_SOURCE_HEAD)


def choose(rows: Sequence[Any], train: Sequence[str], kinds: Sequence[str] = ("aggregate",)) -> str:
    """The candidate row (of ``kinds``, by default the aggregates; never one needing a source head) with the best
    worst-case weighted tau on ``train`` (ties: mean tau, then name)."""
    best: tuple[float, float, str] | None = None
    for row in rows:
        if not is_candidate(row, kinds):
            continue
        taus = [_tau(row, t) for t in train]
        if not taus or not all(np.isfinite(taus)):
            continue
        key = (min(taus), float(np.mean(taus)), row.name)
        if best is None or key[:2] > best[:2] or (key[:2] == best[:2] and key[2] < best[2]):
            best = key
    if best is None:
        raise ValueError("no aggregate has a weighted tau on every training target")
    return best[2]


def leave_one_target_out(
    rows: Sequence[Any], targets: Sequence[str], kinds: Sequence[str] = ("aggregate",)
) -> list[HeldOut]:
    """Apply the protocol above: one :class:`HeldOut` per target, grouped by dataset; the rule chooses among the
    rows of ``kinds`` (default: the aggregates, as the 2026-12-05 study did)."""
    by_name = {r.name: r for r in rows}
    out: list[HeldOut] = []
    for group in dict.fromkeys(group_of(t) for t in targets):
        train = [t for t in targets if group_of(t) != group]
        if not train:
            continue
        chosen = choose(rows, train, kinds)
        for target in (t for t in targets if group_of(t) == group):
            row = by_name[chosen]
            compared = {name: _tau(by_name[name], target) for name in COMPARED if name in by_name}
            out.append(
                HeldOut(target, chosen, _tau(row, target), float(row.regret.get(target, np.nan)), compared)
            )
    return out


def worst_case_markdown(rows: Sequence[Any], targets: Sequence[str], kinds: Sequence[str]) -> str:
    """Every candidate row (of ``kinds``) with its weighted tau on each target, its worst cell in bold, and its
    worst case; the row(s) with the best worst case are marked ``(best)``."""
    candidates = [r for r in rows if is_candidate(r, kinds)]
    worst = {r.name: min((_tau(r, t) for t in targets), default=np.nan) for r in candidates}
    best = max((w for w in worst.values() if np.isfinite(w)), default=np.nan)
    lines = [
        "| row | kind | " + " | ".join(f"{t} τw" for t in targets) + " | worst τw |",
        "|---|---|" + "---|" * (len(targets) + 1),
    ]
    for row in candidates:
        cells = []
        for t in targets:
            text = _f(_tau(row, t))
            cells.append(
                f"**{text}**" if np.isfinite(worst[row.name]) and _tau(row, t) == worst[row.name] else text
            )
        mark = " (best)" if np.isfinite(worst[row.name]) and abs(worst[row.name] - best) < 1e-12 else ""
        lines.append(
            f"| {row.name}{mark} | {row.kind} | " + " | ".join(cells) + f" | {_f(worst[row.name])} |"
        )
    return "\n".join(lines)


def _f(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def loto_markdown(held: Sequence[HeldOut]) -> str:
    """The held-out table and the worst cases, as markdown."""
    if not held:
        return "Leave-one-target-out needs at least two datasets; only one was measured."
    names = list(held[0].compared)
    lines = [
        "| held-out target | chosen on the others | its τw | its regret | "
        + " | ".join(f"{n} τw" for n in names)
        + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for h in held:
        lines.append(
            f"| {h.target} | {h.chosen} | {_f(h.chosen_tau)} | {_f(h.chosen_regret)} | "
            + " | ".join(_f(h.compared[n]) for n in names)
            + " |"
        )

    def worst(values: list[float]) -> str:
        finite = [v for v in values if np.isfinite(v)]
        return _f(min(finite)) if finite else "n/a"

    lines.append(
        f"| **worst case** | | {worst([h.chosen_tau for h in held])} | | "
        + " | ".join(worst([h.compared[n] for h in held]) for n in names)
        + " |"
    )
    return "\n".join(lines)
