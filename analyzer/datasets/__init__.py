"""Dataset readers: ``open_dataset(spec, ...) -> Dataset``, one module per format.

Formats register themselves on import (see :func:`register_format`); a new format is one new module imported
below plus its tests.
"""

from analyzer.datasets import arrays, builtin, hf, imagefolder, table  # noqa: F401  (registers the formats)
from analyzer.datasets.checks import check_images, validate_dataset
from analyzer.datasets.dataset import Dataset
from analyzer.datasets.formats import Table, available_formats, register_format
from analyzer.datasets.images import ImageLoader
from analyzer.datasets.labels import require_classes
from analyzer.datasets.opening import open_dataset

__all__ = [
    "Dataset",
    "ImageLoader",
    "Table",
    "available_formats",
    "check_images",
    "open_dataset",
    "register_format",
    "require_classes",
    "validate_dataset",
]
