"""The contracts between the layers (DESIGN.md, "Contracts between the layers"), as ``typing.Protocol``s.

Code that consumes a dataset, a backbone or a feature-store entry is typed against these, not against the
concrete classes, so any object with the same members works: ``analyzer.datasets.Dataset`` and
``analyzer.extract.PreprocessedDataset`` are both a :class:`Dataset`; ``analyzer.sources.Backbone`` is a
:class:`Backbone`; ``analyzer.store.FeatureEntry`` is a :class:`FeatureEntry`. Data members are read-only properties here, so a plain attribute, a dataclass field or a
property all satisfy them. The protocols are ``runtime_checkable`` for tests; ``isinstance`` checks only that
the members exist, not their types.

Shapes: N samples, D feature dimensions, Cs source-task classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing the contracts costs no torch import
    import numpy as np
    import torch
    from PIL import Image

__all__ = ["Backbone", "Dataset", "FeatureEntry", "Preprocess"]


@runtime_checkable
class Dataset(Protocol):
    """A labelled image dataset ready for extraction (``analyzer.datasets.open_dataset`` returns one)."""

    @property
    def name(self) -> str:
        """Display name."""

    @property
    def spec(self) -> str:
        """What the user typed to open it."""

    @property
    def sample_ids(self) -> list[str]:
        """N stable ids (relative paths, or ``row:<i>``)."""

    @property
    def labels(self) -> np.ndarray:
        """N original label values (int64, float64 or str)."""

    @property
    def class_names(self) -> list[str]:
        """One name per class present (C)."""

    @property
    def fingerprint(self) -> str:
        """Hex hash of everything that determines the samples; any change gives another fingerprint."""

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(sample id, reason)`` of samples dropped as unreadable."""

    @property
    def problems(self) -> list[str]:
        """Warnings for the caller (one-sample classes, ignored files); never fatal."""

    @property
    def checked(self) -> bool:
        """Every image was decoded successfully (False: validate before extraction)."""

    def __len__(self) -> int:
        """N."""

    def load_image(self, i: int) -> Image.Image:
        """Sample ``i`` (0..N-1) as an RGB PIL image."""

    def to_dict(self) -> dict[str, Any]:
        """The report's ``dataset`` block (JSON-able)."""


@runtime_checkable
class Preprocess(Protocol):
    """How an image becomes a model input (``analyzer.sources.Preprocess`` is the implementation)."""

    @property
    def input_size(self) -> tuple[int, int, int]:
        """``(3, H, W)`` in pixels."""

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean for inputs scaled to [0, 1]."""

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel std for inputs scaled to [0, 1]."""

    @property
    def interpolation(self) -> str:
        """A PIL interpolation name (``bilinear``, ``bicubic``, ...)."""

    @property
    def crop_pct(self) -> float:
        """Fraction of the resized image the centre crop keeps, in (0, 1]."""

    @property
    def crop_mode(self) -> str:
        """``center`` (keep aspect) or ``squash``."""

    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable callable: PIL image -> float32 ``3×H×W`` tensor, normalised."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and stable: part of the feature-store key."""


@runtime_checkable
class Backbone(Protocol):
    """A loaded candidate model, frozen, ready for feature extraction (``analyzer.sources.load_backbone``)."""

    @property
    def spec(self) -> str:
        """The model spec (``timm:...``, ``torchscript:...``)."""

    @property
    def module(self) -> torch.nn.Module:
        """``module(batch)``: float32 ``N×3×H×W`` (already transformed) -> ``N×D`` features."""

    @property
    def classify(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``batch -> N×Cs`` source-task logits, or None without a classifier head."""

    @property
    def preprocess(self) -> Preprocess:
        """The model's eval preprocessing."""

    @property
    def weights_id(self) -> str:
        """Content hash of the weights, or a hub revision: part of the feature-store key."""

    @property
    def num_params(self) -> int:
        """Parameter count."""

    @property
    def source_accuracy(self) -> float | None:
        """Source-task top-1 as a fraction in [0, 1], when known."""

    @property
    def feature_layer(self) -> str:
        """Which layer the features come from (``pre_logits`` by default)."""

    @property
    def weights_path(self) -> str | None:
        """A weights file weightwatcher can read, or None."""

    @property
    def feature_dim(self) -> int | None:
        """D, when known before a forward pass."""

    @property
    def num_source_classes(self) -> int | None:
        """Cs, when the model has a classifier head."""

    def features_and_logits(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(N×D features, N×Cs logits or None)``, in one forward pass where the module allows it."""

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata (the feature store's meta, the reports)."""


@runtime_checkable
class FeatureEntry(Protocol):
    """Features of one backbone over one dataset (``analyzer.extract.extract_features`` returns one)."""

    @property
    def key(self) -> str:
        """The feature-store key (sha256 hex of what determines the content)."""

    @property
    def features(self) -> np.ndarray:
        """N×D float32, row i is ``sample_ids[i]``."""

    @property
    def labels(self) -> np.ndarray:
        """N original label values."""

    @property
    def sample_ids(self) -> Sequence[str]:
        """N sample ids, aligned with the rows of ``features``."""

    @property
    def source_probs(self) -> np.ndarray | None:
        """N×Cs softmax of the source head, or None without a head."""

    @property
    def meta(self) -> dict[str, Any]:
        """meta.json: spec, key parts, versions, timings, the backbone's ``describe()``."""

    def index(self) -> Any:
        """The faiss flat L2 index over ``features`` (exact kNN: ``index.search(queries, k)``)."""
