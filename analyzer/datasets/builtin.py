"""Built-in datasets that need no download: ``sklearn:digits``.

``digits`` is scikit-learn's bundled copy of the UCI handwritten digits: 1 797 grey 8×8 images of 0..9 with values
0..16, scaled here to 0..255 uint8 (grey is repeated to RGB when loaded). Each backbone's preprocessing upsamples
them to its input size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analyzer.datasets.arrays import array_table
from analyzer.datasets.formats import ReadOptions, Table, register_format
from analyzer.errors import DatasetError


def _digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no network

    bunch = load_digits()
    # 0..16 → 0..255 with rounding, so 16 maps to exactly 255 and the full 8-bit range is used.
    images = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, bunch.target.astype(np.int64), [str(name) for name in bunch.target_names]


#: name → loader of (images N×H×W[×C] uint8, labels (N,), class names of label values 0..K-1)
BUILTINS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]] = {"digits": _digits}


@register_format(
    "sklearn",
    detect=lambda spec: False,  # only ever chosen through its prefix: sklearn:NAME
    priority=0,
    description="built-in datasets bundled with scikit-learn: sklearn:digits",
)
def read_sklearn(spec: str, options: ReadOptions) -> Table:
    """Built-in datasets bundled with scikit-learn: sklearn:digits."""
    name = spec.strip().lower()
    if name not in BUILTINS:
        raise DatasetError(
            f"unknown built-in dataset 'sklearn:{spec}'",
            "use one of: " + ", ".join(f"sklearn:{n}" for n in BUILTINS),
        )
    images, labels, class_names = BUILTINS[name]()
    return array_table(name, images, labels, source=f"sklearn:{name}", class_names=class_names)
