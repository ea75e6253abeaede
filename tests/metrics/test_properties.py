"""Property-based tests (hypothesis): invariance under sample order and label renaming for every metric that
declares it, with labels of any hashable kind; LogME prefers targets that are a linear function of the features.

Example counts are small and deadlines off: every example runs real metrics, and the suite must stay fast on two
shared cores. The drawn data are derandomised (fixed seed database) so CI runs are reproducible.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import metrics


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


N_SAMPLES, N_DIMS, N_SOURCE = 96, 64, 6
RTOL = 1e-7

PROPERTY_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _problem(seed: int, n_classes: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(N_SAMPLES) % n_classes
    rng.shuffle(labels)
    centres = 0.4 * rng.normal(size=(n_classes, N_DIMS))
    features = (rng.normal(size=(N_SAMPLES, N_DIMS)) + centres[labels]).astype(np.float32)
    logits = rng.normal(size=(N_SAMPLES, N_SOURCE)) + np.eye(n_classes, N_SOURCE)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {
        "features": features,
        "labels": labels,
        "source_probs": probs,
        "reference_features": features[:50] * 0.9,
    }


def _score(name: str, inputs: dict[str, np.ndarray]) -> float:
    return metrics.compute(
        name,
        inputs["features"],
        inputs["labels"],
        source_probs=inputs["source_probs"],
        reference_features=inputs["reference_features"],
    )


def _declaring(prop: str) -> list[str]:
    return [name for name in metrics.available() if prop in metrics.info(name).properties]


#: distinct class names of one kind: integers anywhere (e.g. [3, 7, 9]) or short ASCII strings. NumPy's unicode
#: arrays strip trailing NUL characters, so the alphabet is printable to keep distinct names distinct.
class_names = st.one_of(
    st.lists(st.integers(-(10**6), 10**6), min_size=4, max_size=4, unique=True),
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=6),
        min_size=4,
        max_size=4,
        unique=True,
    ),
)


@pytest.mark.parametrize("name", _declaring("sample_order"))
@PROPERTY_SETTINGS
@given(seed=st.integers(0, 3), perm_seed=st.integers(0, 2**32 - 1), n_classes=st.integers(2, 4))
def test_sample_order_never_changes_the_score(name, seed, perm_seed, n_classes):
    problem = _problem(seed, n_classes)
    perm = np.random.default_rng(perm_seed).permutation(N_SAMPLES)
    shuffled = dict(problem, **{key: problem[key][perm] for key in ("features", "labels", "source_probs")})
    assert _score(name, shuffled) == pytest.approx(_score(name, problem), rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("name", _declaring("label_renaming"))
@PROPERTY_SETTINGS
@given(seed=st.integers(0, 3), names=class_names, n_classes=st.integers(2, 4))
def test_label_renaming_never_changes_the_score(name, seed, names, n_classes):
    problem = _problem(seed, n_classes)
    renamed = dict(problem, labels=np.array(names[:n_classes])[problem["labels"]])
    assert _score(name, renamed) == pytest.approx(_score(name, problem), rel=RTOL, abs=1e-12)


# label metrics only: a data-free metric (alpha) applies to any target because it never reads features or labels
@pytest.mark.parametrize(
    "name", [n for n in metrics.available(kind="label") if metrics.info(n).supports_regression]
)
@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(40, 200),
    d=st.integers(2, 30),
    k=st.integers(1, 3),
    noise=st.floats(0.0, 0.1),
)
def test_regression_on_a_linear_function_beats_noise(name, seed, n, d, k, noise):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    weights = rng.normal(size=(d, k))
    linear = features @ weights + noise * rng.normal(size=(n, k))
    # noise targets of the same scale, so only the relation to the features differs
    unrelated = rng.normal(size=(n, k)) * linear.std(axis=0)
    assert metrics.compute(name, features, linear) > metrics.compute(name, features, unrelated)
