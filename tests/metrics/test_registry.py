import numpy as np
import pytest

import metrics
from metrics._validation import check_features, encode_labels


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError, match="available metrics"):
        metrics.info("no_such_metric")


def test_encode_labels_sorts_unique_values_and_counts():
    encoded = encode_labels(np.array([9, 3, 7, 3]), 4)
    assert encoded.y.tolist() == [2, 0, 1, 0]
    assert encoded.counts.tolist() == [2, 1, 1]


def test_encode_labels_rejects_length_mismatch_with_fix():
    with pytest.raises(ValueError, match="one label per feature row"):
        encode_labels(np.array([0, 1, 1]), 4)


def test_check_features_names_nan_rows():
    features = np.ones((4, 3))
    features[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows 2"):
        check_features(features)
