"""Transferability metrics: pure functions over frozen features and target labels.

Every metric answers "how well will this backbone transfer to these labels?" with one number,
oriented so that **higher is more transferable**. Metrics never do I/O, never load models and never
modify their inputs.

>>> import numpy as np, metrics
>>> rng = np.random.default_rng(0)
>>> labels = np.repeat([0, 1, 2], 20)
>>> features = rng.normal(size=(60, 8)) + labels[:, None]
>>> score = metrics.compute("logme", features, labels)
>>> isinstance(score, float)
True

A new metric is one module in this package that registers itself with
:func:`metrics._registry.register_metric`; it is picked up here automatically.
"""

from __future__ import annotations

from metrics import _openblas  # noqa: F401 - first: it must run before numpy loads

# isort: split
import importlib
import pkgutil

from metrics._compute import compute, compute_data_free, compute_pool, finalize_pool, pool_terms
from metrics._registry import MetricInfo, available, info
from metrics._resample import compute_resampled, resampled_pool_terms
from metrics._validation import INAPPLICABLE, NotApplicable

__all__ = [
    "INAPPLICABLE",
    "MetricInfo",
    "NotApplicable",
    "available",
    "compute",
    "compute_data_free",
    "compute_pool",
    "compute_resampled",
    "finalize_pool",
    "info",
    "pool_terms",
    "resampled_pool_terms",
]

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
