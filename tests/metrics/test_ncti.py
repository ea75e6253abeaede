"""NCTI: golden pool values and raw terms, the pool normalisation rules, the exact PCA, bad inputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

import metrics
from metrics.ncti import TERMS, _lda_svd, _principal_components, finalize
from tests.conftest import REFERENCE, require_shared


def _golden_pools(metric: str) -> list[tuple[str, dict]]:
    path = REFERENCE / "golden" / "expected.json"
    if not path.exists():
        return [("absent", {})]
    pools = json.loads(path.read_text())["pools"]
    return [
        (case, entry) for case, entries in pools.items() for entry in entries if entry["metric"] == metric
    ]


def _pool_features(data: np.lib.npyio.NpzFile) -> list[np.ndarray]:
    count = sum(1 for name in data.files if name.startswith("features_"))
    return [data[f"features_{i}"] for i in range(count)]


@pytest.mark.parametrize(("case", "entry"), _golden_pools("ncti"))
def test_ncti_matches_golden_pool_values(case: str, entry: dict) -> None:
    data = np.load(require_shared(REFERENCE / "golden" / f"{case}.npz"))
    values = metrics.compute_pool("ncti", _pool_features(data), data["labels"], **entry["params"])
    np.testing.assert_allclose(values, entry["values"], rtol=entry["rtol"])


@pytest.mark.parametrize(("case", "entry"), _golden_pools("ncti"))
def test_ncti_matches_golden_raw_terms(case: str, entry: dict) -> None:
    data = np.load(require_shared(REFERENCE / "golden" / f"{case}.npz"))
    for i, features in enumerate(_pool_features(data)):
        terms = metrics.pool_terms("ncti", features, data["labels"], **entry["params"])
        assert set(terms) == set(entry["terms"])
        for name, values in entry["terms"].items():
            # the reference kept float32 inputs in float32: its terms carry float32 rounding (< 1e-6)
            assert terms[name] == pytest.approx(values[i], rel=1e-6), (i, name)


def test_ncti_finalize_is_min_max_normalised_sum() -> None:
    terms = [
        {"seli_nuclear_norm": 10.0, "ncc_lda_prob": 0.5, "vc_log_class_nuclear_norm": 3.0},
        {"seli_nuclear_norm": 30.0, "ncc_lda_prob": 0.9, "vc_log_class_nuclear_norm": 2.0},
        {"seli_nuclear_norm": 20.0, "ncc_lda_prob": 0.6, "vc_log_class_nuclear_norm": 2.5},
    ]
    # seli_hat = [0, 1, .5], ncc_hat = [0, 1, .25], vc_hat = [1, 0, .5]
    np.testing.assert_allclose(finalize(terms), [-1.0, 2.0, 0.25], rtol=1e-12)


def test_ncti_constant_term_and_pool_of_one_contribute_zero() -> None:
    terms = [
        {"seli_nuclear_norm": 10.0, "ncc_lda_prob": 0.7, "vc_log_class_nuclear_norm": 3.0},
        {"seli_nuclear_norm": 30.0, "ncc_lda_prob": 0.7, "vc_log_class_nuclear_norm": 3.0},
    ]
    assert finalize(terms) == [0.0, 1.0]
    assert finalize(terms[:1]) == [0.0]
    features, labels = _classes()
    assert metrics.compute("ncti", features, labels) == 0.0  # a pool of one


def _classes(seed: int = 0, n: int = 150, d: int = 80, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    features = rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(n_classes, d))[labels]
    return features.astype(np.float32), labels


def test_ncti_principal_components_match_scikit_learn_full_svd() -> None:
    features, _ = _classes()
    scores, variances = _principal_components(features, 64)
    pca = PCA(n_components=64, svd_solver="full").fit(features.astype(np.float64))
    np.testing.assert_allclose(variances, pca.explained_variance_, rtol=1e-9)
    reference = pca.transform(features.astype(np.float64))
    signs = np.sign((scores * reference).sum(axis=0))  # components are defined up to sign
    np.testing.assert_allclose(scores * signs, reference, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("n_classes", "collinear", "singleton"),
    [(2, False, False), (5, False, False), (7, True, True), (30, True, False)],
)
def test_ncti_svd_lda_matches_scikit_learn(n_classes: int, collinear: bool, singleton: bool) -> None:
    rng = np.random.default_rng(n_classes)
    labels = rng.integers(0, n_classes, size=300)
    labels[:n_classes] = np.arange(n_classes)
    if singleton:
        labels[labels == 0] = 1
        labels[0] = 0
    z = rng.normal(size=(300, 12)) + 2.0 * rng.normal(size=(n_classes, 12))[labels]
    if collinear:
        z[:, 10] = z[:, 0] - 2.0 * z[:, 3]
        z[:, 11] = 0.0
    counts = np.bincount(labels).astype(np.float64)
    projected, probs = _lda_svd(z, labels, counts)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Variables are collinear")
        lda = LinearDiscriminantAnalysis(solver="svd")
        expected_projected = lda.fit_transform(z, labels)
        expected_probs = lda.predict_proba(z)
    np.testing.assert_allclose(projected, expected_projected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(probs, expected_probs, rtol=1e-9, atol=1e-12)


def test_ncti_scores_the_better_separated_candidate_higher() -> None:
    weak, labels = _classes(seed=1)
    strong = weak + 3.0 * np.eye(3, weak.shape[1], dtype=np.float32)[labels]
    scores = metrics.compute_pool("ncti", [weak, strong], labels)
    assert scores[1] > scores[0]


def test_ncti_terms_ignore_label_names_and_leave_input_unmodified() -> None:
    features, labels = _classes()
    before = features.copy()
    features.flags.writeable = False
    terms = metrics.pool_terms("ncti", features, labels)
    np.testing.assert_array_equal(features, before)
    renamed = metrics.pool_terms("ncti", features, np.array(["c", "a", "b"])[labels])
    for name in TERMS:
        assert renamed[name] == pytest.approx(terms[name], rel=1e-9)


def test_ncti_handles_low_rank_features_and_a_single_sample_class_without_warnings() -> None:
    features, labels = _classes()
    features = features.astype(np.float64)
    features[:, 10:] = features[:, :1]  # rank 11 < 64: the remaining components have zero variance
    labels = labels.copy()
    labels[0] = 7  # a class of one sample
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        terms = metrics.pool_terms("ncti", features, labels)
    assert all(np.isfinite(v) for v in terms.values())


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.random.default_rng(0).normal(size=(50, 80)), np.arange(50) % 2, "at least 64 samples"),
        (np.random.default_rng(0).normal(size=(100, 20)), np.arange(100) % 2, "64 dimensions"),
        (np.ones((100, 70)), np.arange(100) % 2, "constant"),
        (np.full((100, 70), np.nan), np.arange(100) % 2, "NaN or inf"),
        (np.random.default_rng(0).normal(size=(100, 70)), np.zeros(100), "at least 2"),
        (np.random.default_rng(0).normal(size=(100, 70)), np.arange(99) % 2, "one label per feature row"),
    ],
    ids=["few_samples", "few_dimensions", "all_constant", "nan", "one_class", "shape_mismatch"],
)
def test_ncti_rejects_bad_input_with_a_fix(features: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.compute_pool("ncti", [features], labels)


def test_ncti_finalize_rejects_missing_or_non_finite_terms() -> None:
    with pytest.raises(ValueError, match="empty"):
        finalize([])
    with pytest.raises(ValueError, match="missing"):
        finalize([{"seli_nuclear_norm": 1.0}])
    bad = {"seli_nuclear_norm": np.nan, "ncc_lda_prob": 0.5, "vc_log_class_nuclear_norm": 1.0}
    with pytest.raises(ValueError, match="not finite"):
        finalize([bad])
