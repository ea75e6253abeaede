"""Bad input, over every registered metric: each case gives a finite score or a ValueError whose message names the
problem (and, by the project's convention, the fix). Never a silent NaN, never a flood of warnings.

Expectations are the same for every metric, so a new metric is checked by registering itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

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


N_SAMPLES, N_DIMS, N_CLASSES = 120, 64, 4
#: every metric that reads features and labels: these checks feed bad features/labels, which a data-free metric
#: (alpha: scored from the weights' spectrum, see tests/metrics/test_common.py) never receives.
ALL = metrics.available(kind="label")
#: at most this many warnings per call: one informative warning is fine, a warning per class or sample is a flood
MAX_WARNINGS = 1


def _problem(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(N_SAMPLES) % N_CLASSES
    features = rng.normal(size=(N_SAMPLES, N_DIMS)) + 0.5 * rng.normal(size=(N_CLASSES, N_DIMS))[labels]
    probs = rng.dirichlet(np.ones(8), size=N_SAMPLES)
    return {
        "features": features.astype(np.float32),
        "labels": labels,
        "source_probs": probs,
        "reference_features": rng.normal(size=(80, N_DIMS)),
    }


def _call(name: str, inputs: dict[str, np.ndarray], **params) -> Callable[[], float]:
    return lambda: metrics.compute(
        name,
        inputs["features"],
        inputs["labels"],
        source_probs=inputs.get("source_probs"),
        reference_features=inputs.get("reference_features"),
        **params,
    )


def _run_quietly(call: Callable[[], float]) -> tuple[float | None, ValueError | None]:
    """Run ``call``; return (score, None) or (None, the ValueError). Fails on numpy RuntimeWarnings (the sign of a
    NaN silently produced inside), on more than MAX_WARNINGS warnings, and on any other exception type."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: tuple[float | None, ValueError | None] = (call(), None)
        except ValueError as error:
            result = (None, error)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not runtime, f"numeric RuntimeWarning(s): {[str(w.message) for w in runtime[:3]]}"
    assert len(caught) <= MAX_WARNINGS, f"{len(caught)} warnings: {[str(w.message) for w in caught[:3]]}"
    return result


def _assert_raises_naming(call: Callable[[], float], *words: str) -> str:
    value, error = _run_quietly(call)
    assert error is not None, f"expected a ValueError, got the score {value!r}"
    message = str(error).lower()
    assert any(word.lower() in message for word in words), f"message does not name the problem: {error}"
    return message


def _assert_finite_or_explained(call: Callable[[], float], *words: str) -> None:
    value, error = _run_quietly(call)
    if error is None:
        assert isinstance(value, float) and np.isfinite(value), f"silent non-finite score {value!r}"
    else:
        message = str(error).lower()
        assert any(word.lower() in message for word in words), (
            f"ValueError does not name the problem: {error}"
        )
        # a message that names a fix is longer than the bare problem; every project message has a ';' or '.' clause
        assert len(message) > 40, f"ValueError gives no fix: {error}"


FEATURE_READERS = [name for name in ALL if metrics.info(name).reads_features]
SOURCE_ONLY = [name for name in ALL if not metrics.info(name).reads_features]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", FEATURE_READERS)
def test_non_finite_features_raise(name, bad):
    inputs = _problem()
    inputs["features"] = inputs["features"].copy()
    inputs["features"][5, 3] = bad
    message = _assert_raises_naming(_call(name, inputs), "nan", "inf")
    assert "5" in message  # the row is named, so the user can find the sample


@pytest.mark.parametrize("name", SOURCE_ONLY)
def test_metrics_that_never_read_features_ignore_their_values(name):
    # LEEP and NCE score source_probs and labels alone: NaN features give the same, correct score
    inputs = _problem()
    clean = _call(name, inputs)()
    inputs["features"] = np.full_like(inputs["features"], np.nan)
    value, error = _run_quietly(_call(name, inputs))
    assert error is None and value == clean


def test_source_only_metrics_are_the_ones_that_need_source_probs():
    assert SOURCE_ONLY == ["leep", "nce"]


@pytest.mark.parametrize("name", ALL)
def test_label_count_mismatch_raises(name):
    inputs = _problem()
    inputs["labels"] = inputs["labels"][:-3]
    _assert_raises_naming(_call(name, inputs), "label")


@pytest.mark.parametrize("name", ALL)
def test_one_dimensional_features_raise(name):
    inputs = _problem()
    inputs["features"] = inputs["features"][:, 0]
    _assert_raises_naming(_call(name, inputs), "2-d")


@pytest.mark.parametrize("name", ALL)
def test_empty_input_raises(name):
    inputs = _problem()
    inputs["features"] = inputs["features"][:0]
    inputs["labels"] = inputs["labels"][:0]
    inputs["source_probs"] = inputs["source_probs"][:0]
    _assert_raises_naming(_call(name, inputs), "empty", "at least")


@pytest.mark.parametrize("name", ALL)
def test_single_class_raises(name):
    inputs = _problem()
    inputs["labels"] = np.zeros(N_SAMPLES, dtype=int)
    _assert_raises_naming(_call(name, inputs), "class")


@pytest.mark.parametrize("name", ALL)
def test_nan_label_raises(name):
    inputs = _problem()
    inputs["labels"] = inputs["labels"].astype(float)
    inputs["labels"][7] = np.nan
    _assert_raises_naming(_call(name, inputs), "nan")


@pytest.mark.parametrize("name", ALL)
def test_class_with_a_single_sample(name):
    inputs = _problem()
    inputs["labels"] = inputs["labels"].copy()
    inputs["labels"][0] = 99
    _assert_finite_or_explained(_call(name, inputs), "class", "sample")


@pytest.mark.parametrize("name", ALL)
def test_constant_feature_columns(name):
    inputs = _problem()
    inputs["features"] = inputs["features"].copy()
    inputs["features"][:, :10] = 1.5
    inputs["features"][:, 10:14] = 0.0
    _assert_finite_or_explained(_call(name, inputs), "constant")


@pytest.mark.parametrize("name", ALL)
def test_all_features_constant(name):
    inputs = _problem()
    inputs["features"] = np.full((N_SAMPLES, N_DIMS), 2.0, dtype=np.float32)
    _assert_finite_or_explained(_call(name, inputs), "constant", "variation", "zero", "rank")


@pytest.mark.parametrize("name", ALL)
def test_all_zero_features(name):
    inputs = _problem()
    inputs["features"] = np.zeros((N_SAMPLES, N_DIMS), dtype=np.float32)
    _assert_finite_or_explained(_call(name, inputs), "constant", "variation", "zero", "rank")


@pytest.mark.parametrize("name", ALL)
def test_fewer_samples_than_dimensions(name):
    inputs = _problem()
    rng = np.random.default_rng(4)
    inputs["features"] = rng.normal(size=(N_SAMPLES, 300)).astype(np.float32)
    inputs["reference_features"] = rng.normal(size=(80, 300))
    _assert_finite_or_explained(_call(name, inputs), "sample", "dimension", "component")


@pytest.mark.parametrize("name", ALL)
def test_tiny_problem(name):
    # 6 samples, 3 classes of 2: each metric scores it or says which size requirement fails
    rng = np.random.default_rng(5)
    inputs = {
        "features": rng.normal(size=(6, 3)),
        "labels": np.array([0, 0, 1, 1, 2, 2]),
        "source_probs": rng.dirichlet(np.ones(4), size=6),
        "reference_features": rng.normal(size=(5, 3)),
    }
    _assert_finite_or_explained(_call(name, inputs), "sample", "dimension", "component", "k", "class")


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_names_the_valid_ones(name):
    _assert_raises_naming(_call(name, _problem(), no_such_parameter=1), "valid parameters")


SOURCE_USERS = [name for name in ALL if "source_probs" in metrics.info(name).requires]


@pytest.mark.parametrize("name", SOURCE_USERS)
def test_missing_source_probs_raises(name):
    inputs = _problem()
    inputs["source_probs"] = None
    _assert_raises_naming(_call(name, inputs), "source_probs")


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda p: np.log(p), id="logits"),
        pytest.param(lambda p: p[:-1], id="wrong_rows"),
        pytest.param(lambda p: np.where(np.arange(p.shape[1]) == 0, np.nan, p), id="nan"),
        pytest.param(lambda p: p[:, 0], id="one_dimensional"),
    ],
)
@pytest.mark.parametrize("name", SOURCE_USERS)
def test_malformed_source_probs_raise(name, corrupt):
    inputs = _problem()
    inputs["source_probs"] = corrupt(inputs["source_probs"])
    _assert_raises_naming(_call(name, inputs), "source_probs")


REGRESSION_USERS = [name for name in ALL if metrics.info(name).supports_regression]


@pytest.mark.parametrize("name", REGRESSION_USERS)
def test_non_finite_regression_targets_raise(name):
    inputs = _problem()
    targets = np.random.default_rng(6).normal(size=(N_SAMPLES, 2))
    targets[3, 1] = np.nan
    inputs["labels"] = targets
    _assert_raises_naming(_call(name, inputs), "nan")


@pytest.mark.parametrize("name", REGRESSION_USERS)
def test_regression_target_row_mismatch_raises(name):
    inputs = _problem()
    inputs["labels"] = np.random.default_rng(6).normal(size=(N_SAMPLES - 1, 2))
    _assert_raises_naming(_call(name, inputs), "target")


def test_huge_finite_features_are_not_mistaken_for_inf():
    # their float32 sum overflows to inf; the exact check must then find every value finite
    from metrics._validation import check_features

    huge = np.full((4, 3), 3e38, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_features(huge) is huge


def test_source_probs_with_plus_inf_raise():
    from metrics._validation import check_source_probs

    probs = np.full((3, 2), 0.5)
    probs[1, 0] = np.inf
    with pytest.raises(ValueError, match="finite and non-negative"):
        check_source_probs(probs, 3)
    assert check_source_probs(probs[[0, 2]].astype(np.float32), 2, dtype=None).dtype == np.float32
