"""NCE: Negative Conditional Entropy of the target labels given the source classifier's predicted labels.

Card
----
- Paper: Tran et al., "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019. Reference:
  thuml/LogME ``NCE.py`` (read, not copied); ``../shared/reference/METRICS.md`` § nce.
- Formula: source labels ``z_i = argmax_z θ_iz``; joint ``J[c, z] = count(y = c, z) / N``, ``p_z = Σ_c J[c, z]``;
  for every z with p_z > 0, ``q_c = J[c, z] / p_z + 1e-20`` and ``H_z = −Σ_c q_c log q_c`` (the reference's 1e-20
  sits inside both factors); ``NCE = −Σ_z p_z H_z = −H(Y | Z)``.
- Direction: higher = more transferable (the paper's negative entropy; no extra flip); ≤ 0 up to the 1e-20 term.
- Inputs: ``features`` N×D (only their shape is checked: NCE never reads them, so NaN there changes nothing; a
  broken forward pass shows as NaN in θ, which is refused), class ``labels`` (N,), ``source_probs`` θ (N×Cs,
  required).
- Failure modes: as LEEP (missing or malformed ``source_probs``, NaN/inf in θ, < 2 classes -> ValueError). Ties in
  ``argmax θ`` go to the lowest source class, as ``numpy.argmax`` (and the reference) does.
- Complexity: O(N·Cs) for the argmax, fused with the check of θ into one pass over memory; O(N + C·Cs) for the
  counts; memory O(C·Cs).
"""

from __future__ import annotations

import numpy as np

from metrics._registry import register_metric
from metrics._validation import check_features, encode_labels, source_predictions


@register_metric(
    "nce",
    direction="higher = more transferable (the paper's negative entropy; no extra flip); ≤ 0 up to the 1e-20 term.",
    needs="source_probs (a backbone with a source classifier head); features N×D (only their shape is checked: NCE never reads them, so NaN there changes nothing; a broken forward pass shows as NaN in θ, which is refused), class labels (N,), source_probs θ (N×Cs, required).",
    requires=("source_probs",),
    summary="NCE: negative conditional entropy H(Y | Z)",
    reads_features=False,
)
def nce(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray) -> float:
    """NCE score (≤ 0, higher = more transferable) of class ``labels`` (N,) given the source classifier's
    probabilities ``source_probs`` (N×Cs); only their argmax is used. Only the shape of ``features`` is checked."""
    n = check_features(features, finite=False).shape[0]
    encoded = encode_labels(labels, n)
    source = source_predictions(source_probs, n)
    n_source = np.shape(source_probs)[1]
    joint = np.bincount(encoded.y * n_source + source, minlength=encoded.n_classes * n_source)
    joint = joint.reshape(encoded.n_classes, n_source) / n
    p_z = joint.sum(axis=0)
    seen = p_z > 0
    q = joint[:, seen] / p_z[seen] + 1e-20
    entropy = -(q * np.log(q)).sum(axis=0)
    return float(-(p_z[seen] * entropy).sum())
