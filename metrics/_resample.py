"""Scoring many subsets of one candidate's samples: the bootstrap's inner loop, as a pure array-level API.

``compute_resampled(name, features, labels, subsets)`` returns, for every index array ``idx`` in ``subsets``,
what ``compute(name, features[idx], labels[idx])`` returns (None where that raises
:class:`metrics.NotApplicable`, ``LinAlgError`` or ``FloatingPointError``; any other exception propagates).
``resampled_pool_terms`` is the same for a pool metric's raw terms (NCTI): the pool step runs per resample in the
caller, across candidates.

A metric may register a fast path with :func:`metrics._registry.register_resampler`; it reuses what the subsets
share (kNN: one neighbour search over all samples; LogME and NCTI: the full Gram matrix, down-dated by the rows a
subset leaves out) and must give the per-subset values to rounding (kNN: exactly). Without one, or with
``fast=False``, each subset is scored in turn (the generic fallback, the pre-fast-path behaviour).
``tests/metrics/test_resample.py`` compares every fast path with the fallback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from metrics._compute import compute, pool_terms
from metrics._registry import info, resampler, split_params
from metrics._validation import INAPPLICABLE

#: up to max(D, this many) samples a fast path's work per subset is small matrices (the N×N dual, n×k neighbour
#: lists): a second BLAS thread there only adds synchronisation, which on a loaded 2-core machine made the same
#: small eigh and products 10-100x slower (measured); larger problems keep every thread
SINGLE_THREAD_SAMPLES = 1024
#: what a resample may raise that the ranking records as a missing score (None): the metric cannot apply to that
#: subset (:class:`metrics.NotApplicable`: too few samples per class, ...) or its numbers broke down there
#: (a singular matrix, a floating-point trap); anything else (a ValueError such as _lapack's "illegal argument")
#: is a bug and propagates
RESAMPLE_ERRORS = INAPPLICABLE


def _checked_subsets(subsets: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    out = []
    for idx in subsets:
        idx = np.asarray(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("every subset must be a 1-D array of integer sample indices")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"a subset indexes outside the {n} samples")
        out.append(idx)
    return out


def _generic(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    subsets: list[np.ndarray],
    source_probs: np.ndarray | None,
    reference_features: np.ndarray | None,
    params: dict[str, Any],
    *,
    pool: bool,
) -> list[Any]:
    """Score each subset in turn through the public entry points (the reference behaviour)."""
    fn = pool_terms if pool else compute
    out: list[Any] = []
    for idx in subsets:
        probs = None if source_probs is None else source_probs[idx]
        try:
            out.append(
                fn(
                    name,
                    features[idx],
                    labels[idx],
                    source_probs=probs,
                    reference_features=reference_features,
                    **params,
                )
            )
        except RESAMPLE_ERRORS:
            out.append(None)
    return out


def _resampled(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    subsets: Sequence[np.ndarray],
    source_probs: np.ndarray | None,
    reference_features: np.ndarray | None,
    params: dict[str, Any],
    *,
    pool: bool,
    fast: bool,
) -> list[Any]:
    metric = info(name)
    if metric.pool_level != pool:
        raise ValueError(
            f"metric {name!r} is {'' if metric.pool_level else 'not '}pool-level; use "
            f"{'resampled_pool_terms' if metric.pool_level else 'compute_resampled'}"
        )
    split_params(metric, params)
    checked = _checked_subsets(subsets, np.asarray(features).shape[0])
    fast_path = resampler(name) if fast else None
    # the fast paths read features and labels only; a metric given source_probs or reference_features it uses
    # (LEEP, PED with references) is scored subset by subset
    uses_extra = (source_probs is not None and "source_probs" in metric.uses) or (
        reference_features is not None and "reference_features" in metric.uses
    )
    if fast_path is not None and not uses_extra:
        n, d = np.shape(features)[:2] if np.ndim(features) == 2 else (0, 0)
        single = (
            threadpool_limits(limits=1) if n <= max(d, SINGLE_THREAD_SAMPLES) else contextlib.nullcontext()
        )
        try:
            with single:
                values = fast_path(features, labels, checked, **params)
        except RESAMPLE_ERRORS:
            values = None  # the shared precomputation failed (e.g. bad input): each subset decides for itself
        if values is not None:
            return values
    return _generic(name, features, labels, checked, source_probs, reference_features, params, pool=pool)


def compute_resampled(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    subsets: Sequence[np.ndarray],
    *,
    source_probs: np.ndarray | None = None,
    reference_features: np.ndarray | None = None,
    fast: bool = True,
    **params: Any,
) -> list[float | None]:
    """Score ``features`` (N×D) and ``labels`` (N,) restricted to each index array in ``subsets``.

    Returns one float per subset (higher = more transferable, as :func:`metrics.compute`), or None where the metric
    raised on that subset. ``source_probs`` (N×Cs) is restricted with the features; ``reference_features`` is
    passed unchanged. ``fast=False`` skips the metric's registered fast path (the per-subset fallback). Inputs
    are never modified.
    """
    values = _resampled(
        name, features, labels, subsets, source_probs, reference_features, dict(params), pool=False, fast=fast
    )
    return [None if v is None else float(v) for v in values]


def resampled_pool_terms(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    subsets: Sequence[np.ndarray],
    *,
    source_probs: np.ndarray | None = None,
    reference_features: np.ndarray | None = None,
    fast: bool = True,
    **params: Any,
) -> list[dict[str, float] | None]:
    """A pool metric's raw terms (:func:`metrics.pool_terms`) on each subset, None where they raised; combine one
    resample's terms across candidates with :func:`metrics.finalize_pool`."""
    values = _resampled(
        name, features, labels, subsets, source_probs, reference_features, dict(params), pool=True, fast=fast
    )
    return [None if v is None else {k: float(t) for k, t in v.items()} for v in values]
