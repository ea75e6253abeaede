"""Invariances every metric declares (``MetricInfo.properties``), one test per property, run over every registered
metric that declares it, in the spirit of scikit-learn's ``metrics/tests/test_common.py``.

A metric is picked up here by registering itself: nothing in this file names a metric.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import metrics


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


# D = 64 and N = 160 satisfy every metric's size needs (NCTI projects on 64 principal components).
N_SAMPLES, N_DIMS, N_CLASSES, N_SOURCE = 160, 64, 4, 10
# scores are sums of many float64 terms: reordering samples or classes moves them by rounding only
RTOL = 1e-7


def make_problem(seed: int = 0, *, dtype: type = np.float32) -> dict[str, np.ndarray]:
    """Class-structured features that no metric saturates on: features (N×D), labels 0..C-1 (N,), source_probs
    (N×Cs, softmax rows that depend on the label, so LEEP/NCE see signal) and reference_features (M×D)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), N_SAMPLES // N_CLASSES)
    rng.shuffle(labels)
    centres = 0.35 * rng.normal(size=(N_CLASSES, N_DIMS))
    features = (rng.normal(size=(N_SAMPLES, N_DIMS)) + centres[labels]).astype(dtype)
    logits = rng.normal(size=(N_SAMPLES, N_SOURCE)) + 1.5 * np.eye(N_CLASSES, N_SOURCE)[labels]
    source_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    reference = rng.normal(size=(100, N_DIMS)).astype(dtype)
    return {
        "features": features,
        "labels": labels,
        "source_probs": source_probs,
        "reference_features": reference,
    }


def score(name: str, problem: dict[str, np.ndarray], **changes: np.ndarray) -> float:
    """``metrics.compute`` on ``problem`` with some inputs replaced; every optional input is always passed, as the
    ranking layer does (a metric ignores what it does not use)."""
    inputs = {**problem, **changes}
    return metrics.compute(
        name,
        inputs["features"],
        inputs["labels"],
        source_probs=inputs["source_probs"],
        reference_features=inputs["reference_features"],
    )


#: Metrics scored from features and labels. The checks below that call ``metrics.compute`` on a feature problem
#: run over these; a data-free metric (alpha, scored from the weights' spectrum) takes no features, declares none
#: of the feature invariances, and has its own checks at the end of this file.
FEATURE_METRICS = metrics.available(kind="label")


def declaring(prop: str) -> list[str]:
    """Every per-candidate metric that declares ``prop``."""
    return [name for name in metrics.available() if prop in metrics.info(name).properties]


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    return make_problem()


def test_every_metric_scores_the_common_problem(problem):
    for name in FEATURE_METRICS:
        value = score(name, problem)
        assert isinstance(value, float) and np.isfinite(value), f"{name} returned {value!r}"


@pytest.mark.parametrize("name", declaring("sample_order"))
def test_score_invariant_to_sample_order(name, problem):
    perm = np.random.default_rng(1).permutation(N_SAMPLES)
    shuffled = {key: problem[key][perm] for key in ("features", "labels", "source_probs")}
    assert score(name, problem, **shuffled) == pytest.approx(score(name, problem), rel=RTOL, abs=1e-12)


RENAMINGS = {
    "sparse_ints": np.array([3, 7, 9, 11]),
    "reversed_ints": np.array([3, 2, 1, 0]),
    "negative_ints": np.array([-5, 100, 0, 42]),
    "strings": np.array(["dog", "cat", "eel", "ant"]),
    "objects": np.array(["b", 2, (1, 2), "a"], dtype=object),
}


@pytest.mark.parametrize("renaming", list(RENAMINGS))
@pytest.mark.parametrize("name", declaring("label_renaming"))
def test_score_invariant_to_label_renaming(name, renaming, problem):
    mapping = RENAMINGS[renaming]
    if mapping.dtype == object:
        renamed = np.empty(N_SAMPLES, dtype=object)
        renamed[:] = [mapping[c] for c in problem["labels"]]
    else:
        renamed = mapping[problem["labels"]]
    assert score(name, problem, labels=renamed) == pytest.approx(score(name, problem), rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("factor", [0.25, 8.0])
@pytest.mark.parametrize("name", declaring("feature_scale"))
def test_score_invariant_to_feature_scale(name, factor, problem):
    # powers of two scale floats exactly, so any difference is the metric's, not the input's rounding
    scaled = {"features": problem["features"] * np.float32(factor)}
    scaled["reference_features"] = problem["reference_features"] * np.float32(factor)
    assert score(name, problem, **scaled) == pytest.approx(score(name, problem), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", declaring("unmodified"))
def test_inputs_left_unmodified(name, dtype):
    inputs = make_problem(2, dtype=dtype)
    inputs["labels"] = np.array(["x", "y", "z", "w"])[inputs["labels"]]
    originals = {key: value.copy() for key, value in inputs.items()}
    score(name, inputs)
    for key, original in originals.items():
        assert inputs[key].dtype == original.dtype
        np.testing.assert_array_equal(inputs[key], original, err_msg=f"{name} modified {key}")


@pytest.mark.parametrize("name", declaring("unmodified"))
def test_read_only_inputs_are_accepted(name, problem):
    frozen = {key: value.copy() for key, value in problem.items()}
    for value in frozen.values():
        value.setflags(write=False)
    assert score(name, frozen) == pytest.approx(score(name, problem), rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("name", FEATURE_METRICS)
def test_memory_layout_does_not_change_score(name, problem):
    # a Fortran-ordered copy and a strided view hold the same numbers as the C-ordered array
    fortran = np.asfortranarray(problem["features"])
    padded = np.zeros((N_SAMPLES, 2 * N_DIMS), dtype=problem["features"].dtype)
    padded[:, ::2] = problem["features"]
    expected = score(name, problem)
    assert score(name, problem, features=fortran) == pytest.approx(expected, rel=RTOL, abs=1e-12)
    assert score(name, problem, features=padded[:, ::2]) == pytest.approx(expected, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("name", FEATURE_METRICS)
def test_metric_is_deterministic(name, problem):
    # stochastic metrics are seeded by their default random_state, so two calls agree exactly too
    assert score(name, problem) == score(name, problem)


@pytest.mark.parametrize("name", metrics.available())
def test_metadata_is_consistent(name):
    meta = metrics.info(name)
    assert meta.kind in ("label", "data_free")
    if (
        meta.kind == "label"
    ):  # oriented so that higher is more transferable; a data-free metric declares its own
        assert meta.higher_is_better
        assert set(meta.requires) <= set(meta.uses), f"{name} requires an input its function does not take"
    else:
        assert meta.requires and not meta.properties, (
            f"{name} must name its input and claim no feature invariance"
        )
    assert meta.summary, f"{name} has no summary line"
    assert (meta.func.__doc__ or "").strip(), f"{name} has no docstring"
    if meta.stochastic:
        assert "random_state" in meta.params, f"{name} is stochastic but takes no random_state"


def test_pool_scoring_matches_per_candidate_scoring(problem):
    other = make_problem(3)
    for name in FEATURE_METRICS:
        if metrics.info(name).pool_level:
            continue
        pooled = metrics.compute_pool(
            name,
            [problem["features"], other["features"]],
            problem["labels"],
            source_probs=[problem["source_probs"], problem["source_probs"]],
            reference_features=problem["reference_features"],
        )
        assert pooled[0] == score(name, problem)
        assert pooled[1] == score(name, problem, features=other["features"])


DATA_FREE_METRICS = metrics.available(kind="data_free")


@pytest.mark.parametrize("name", DATA_FREE_METRICS)
def test_data_free_metric_is_refused_features_and_scores_its_columns(name):
    with pytest.raises(ValueError, match="compute_data_free"):
        metrics.compute(name, np.zeros((4, 2)), np.array([0, 0, 1, 1]))
    wanted = inspect.signature(metrics.info(name).func).parameters  # the per-layer columns it reads
    columns = {col: np.array([3.0, np.nan, 4.0]) for col in [*wanted, "an_unused_column"]}
    frozen = {k: v.copy() for k, v in columns.items()}
    value = metrics.compute_data_free(name, columns)
    assert isinstance(value, float) and np.isfinite(value)
    assert value == metrics.compute_data_free(name, columns)  # deterministic
    for key, original in frozen.items():
        np.testing.assert_array_equal(columns[key], original, err_msg=f"{name} modified {key}")


@pytest.mark.parametrize("name", metrics.available())
def test_every_metric_declares_how_views_present_it(name):
    """Label, one-line summary, explanation, direction and needs come from the registry (no docstring parsing,
    no metric special-cased by name in a view); the direction sentence agrees with ``higher_is_better``."""
    info = metrics.info(name)
    for field in ("label", "summary", "explanation", "direction", "needs"):
        value = getattr(info, field)
        assert isinstance(value, str) and value.strip(), (name, field)
    assert info.direction.lower().startswith("higher" if info.higher_is_better else "lower"), info.direction
    labels = [metrics.info(n).label for n in metrics.available()]
    assert labels.count(info.label) == 1  # one header per column


def test_a_metric_that_declares_no_presentation_is_refused():
    from metrics._registry import register_metric

    with pytest.raises(TypeError):
        register_metric("undeclared", summary="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="declares no direction"):
        register_metric("blank", summary="x", direction="", needs="features")(lambda features, labels: 0.0)
