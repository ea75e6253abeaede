"""Datasets as model inputs: images decoded and preprocessed once into memory (:func:`predecode`), or decoded
per sample by DataLoader workers (:class:`ImageInputs`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from analyzer.contracts import Backbone, Dataset
from analyzer.errors import AnalyzerError, DatasetError


# -- an in-memory dataset of already-preprocessed tensors ------------------------------------------------------
@dataclass
class PreprocessedDataset:
    """A dataset whose images are already decoded and preprocessed: ``tensors`` is N x C x H x W float32.

    Extraction slices it directly (no decoding, no transform, no DataLoader), which is how the benchmark
    measures the extraction overhead over a bare forward loop on the same tensors. Build one with
    :func:`predecode`. ``fingerprint`` is a content hash of the tensors, so the cache key stays honest.
    """

    tensors: torch.Tensor
    labels: np.ndarray
    sample_ids: list[str]
    name: str = "tensors"
    spec: str = "<in-memory tensors>"
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    fingerprint: str = ""
    problems: list[str] = field(default_factory=list)
    #: the images were decoded when the tensors were made
    checked: bool = True

    def __post_init__(self) -> None:
        if self.tensors.ndim != 4:
            raise ValueError(f"tensors must be N x C x H x W, got shape {tuple(self.tensors.shape)}")
        if not (len(self.tensors) == len(self.labels) == len(self.sample_ids)):
            raise ValueError(
                "tensors, labels and sample_ids must have the same length; pass one of each per image"
            )
        if not self.fingerprint:
            h = hashlib.sha256(self.tensors.detach().cpu().contiguous().numpy().tobytes())
            h.update(np.asarray(self.labels).tobytes())
            self.fingerprint = "tensors-" + h.hexdigest()

    def __len__(self) -> int:
        return len(self.tensors)

    def load_image(self, i: int) -> Image.Image:
        """Always raises: the contract's method, but there is no image to give back."""
        raise DatasetError(
            "a PreprocessedDataset holds tensors, not images",
            "use the original dataset for anything that needs PIL images",
        )

    def to_dict(self) -> dict[str, Any]:
        """The report's ``dataset`` block, as :meth:`analyzer.datasets.Dataset.to_dict` gives it."""
        return {
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "n_samples": len(self),
            "n_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "skipped": [[sample_id, reason] for sample_id, reason in self.skipped],
        }


def predecode(dataset: Dataset, backbone: Backbone) -> PreprocessedDataset:
    """Decode and preprocess every image of ``dataset`` with ``backbone.preprocess`` once, into memory."""
    transform = backbone.preprocess.transform()
    tensors = torch.stack([transform(dataset.load_image(i)) for i in range(len(dataset))])
    return PreprocessedDataset(
        tensors=tensors,
        labels=np.asarray(dataset.labels),
        sample_ids=list(dataset.sample_ids),
        name=f"{dataset.name} (pre-decoded)",
        spec=str(dataset.spec),
        class_names=list(dataset.class_names),
        skipped=list(dataset.skipped),
        fingerprint=f"{dataset.fingerprint}+pre:{hashlib.sha256(str(backbone.preprocess.to_dict()).encode()).hexdigest()[:16]}",
    )


class ImageInputs(torch.utils.data.Dataset):
    """The rows ``positions`` of a dataset, decoded and preprocessed; yields ``(tensor, position)``."""

    def __init__(
        self, dataset: Dataset, positions: Sequence[int], transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.dataset = dataset
        self.positions = list(positions)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        i = self.positions[j]
        try:
            image = self.dataset.load_image(i)
        except AnalyzerError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a message naming the file
            raise DatasetError(
                f"cannot read image {self.dataset.sample_ids[i]} ({type(exc).__name__}: {exc})",
                "fix or delete the file, or rerun with --skip-bad to skip unreadable images (rank, extract and "
                "probe take it)",
            ) from exc
        return self.transform(image), i
