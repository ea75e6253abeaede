"""The ranking's default metrics, aggregate and baselines (a leaf module: the plan, the measured record and the
reports read them without importing the ranking)."""

from __future__ import annotations

#: The label-based metrics every default report scores: the product's headline metrics.
DEFAULT_METRICS: tuple[str, ...] = ("logme", "knn", "ncti", "sfda", "tmi", "ped")
#: The default aggregate, a subset of them (see :mod:`analyzer.ranking` and analyzer/metric_record.json for why).
DEFAULT_AGGREGATE: tuple[str, ...] = ("logme", "knn", "ncti", "sfda")
#: Baselines reported beside every ranking.
BASELINES: tuple[str, ...] = ("num_params", "source_accuracy")
