"""A Hugging Face ``datasets`` directory written by ``save_to_disk`` (a Dataset, or a DatasetDict of splits).

The image column (``--image-column``, default ``image``) may be an ``Image`` feature (encoded bytes or paths,
decoded here so a corrupt one is reported like a corrupt file) or an array column (H×W[×C] uint8). The label column
(``--label-column``, default ``label``) may be a ``ClassLabel`` (its names become the class names; -1 means
unlabelled) or plain values. ``--split`` picks a DatasetDict split, or filters a ``split`` column.
Sample ids are ``row:<i>`` within the chosen split.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from analyzer.datasets.formats import ReadOptions, Table, register_format
from analyzer.datasets.images import ImageLoader, array_to_image, check_image_array, decode_file, to_rgb
from analyzer.datasets.labels import labels_with_gaps
from analyzer.errors import DatasetError

SPLIT_COLUMN = "split"


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


class HFImageLoader(ImageLoader):
    """Row ``r`` of one column of an on-disk HF dataset. The arrow table is memory-mapped, and pickles by path."""

    def __init__(self, dataset: Any, column: str, encoded: bool, directory: Path) -> None:
        self.dataset = dataset.select_columns([column])
        self.column = column
        self.encoded = encoded
        self.needs_check = encoded
        self.directory = directory

    def load(self, row: int) -> Image.Image:
        value = self.dataset[int(row)][self.column]
        if self.encoded:  # {"bytes": ..., "path": ...} with decoding disabled
            if value is None:
                raise ValueError("the image cell is empty")
            if value.get("bytes"):
                return decode_file(io.BytesIO(value["bytes"]))
            if value.get("path"):
                path = Path(value["path"])
                # Relative paths are stored relative to where the dataset was built; prefer the dataset directory.
                if not path.is_absolute() and (self.directory / path).exists():
                    path = self.directory / path
                return decode_file(path)
            raise ValueError("the image cell has neither bytes nor a path")
        if isinstance(value, Image.Image):
            return to_rgb(value)
        return array_to_image(check_image_array(np.asarray(value)[None], source=f"row {row}")[0])

    def fingerprint(self, rows: np.ndarray) -> Any:
        # The saved files by name, size and mtime (save_to_disk rewrites them all); the rows are in the sample ids.
        files = []
        for dirpath, dirnames, filenames in os.walk(self.directory):
            dirnames.sort()
            for name in sorted(filenames):
                stat = (Path(dirpath) / name).stat()
                files.append(
                    [
                        (Path(dirpath) / name).relative_to(self.directory).as_posix(),
                        stat.st_size,
                        stat.st_mtime_ns,
                    ]
                )
        return {"files": files}


def _load(path: Path, split: str | None) -> tuple[Any, bool, Path]:
    """The chosen Dataset, whether the split was applied, and the directory its files live in."""
    import datasets  # heavy (~1 s): imported only when an HF dataset is opened

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded.keys())
        if split is None:
            if len(names) == 1:
                return loaded[names[0]], False, path / names[0]
            raise DatasetError(
                f"{path} is a DatasetDict with splits {names}; which one to use is ambiguous",
                "pass --split NAME with one of those names",
            )
        if split not in loaded:
            raise DatasetError(
                f"{path} has no split {split!r}; its splits are {names}", "pass one of them to --split"
            )
        return loaded[split], True, path / split
    return loaded, False, path


@register_format(
    "hf",
    detect=lambda spec: _is_saved_dataset(Path(spec)),
    priority=20,
    description="a Hugging Face datasets directory written by save_to_disk (image and label columns configurable)",
)
def read_hf(spec: str, options: ReadOptions) -> Table:
    """A Hugging Face datasets directory written by save_to_disk (image and label columns configurable)."""
    import datasets

    path = Path(spec).expanduser()
    if not _is_saved_dataset(path):
        raise DatasetError(
            f"{spec!r} is not a directory written by datasets' save_to_disk (no dataset_dict.json or state.json)",
            "save it with dataset.save_to_disk(PATH), or pass an image folder / label file instead",
        )
    try:
        dataset, split_applied, directory = _load(path, options.split)
    except (FileNotFoundError, json.JSONDecodeError, ValueError) as error:
        raise DatasetError(
            f"{path} cannot be loaded with load_from_disk ({error})", "save it again with save_to_disk"
        ) from None

    columns = list(dataset.column_names)
    for option, column in (
        ("--image-column", options.image_column),
        ("--label-column", options.label_column),
    ):
        if column not in columns:
            raise DatasetError(
                f"{path} has no column {column!r}; its columns are {columns}", f"pass {option} NAME"
            )

    image_feature = dataset.features[options.image_column]
    encoded = isinstance(image_feature, datasets.Image)
    if encoded:
        # Undecoded cells give the raw bytes, so a corrupt image fails in our decoder and is reported by row.
        dataset = dataset.cast_column(options.image_column, datasets.Image(decode=False))

    label_feature = dataset.features[options.label_column]
    raw = dataset[options.label_column]
    declared = None
    if isinstance(label_feature, datasets.ClassLabel):
        labels = np.asarray(raw, dtype=np.int64)
        missing = np.flatnonzero(labels < 0).tolist()  # ClassLabel's -1: no label
        declared = {k: name for k, name in enumerate(label_feature.names)}
    else:
        labels, missing = labels_with_gaps(list(raw))

    splits = None
    if SPLIT_COLUMN in columns and not split_applied:
        splits = np.asarray([str(v) for v in dataset[SPLIT_COLUMN]])

    return Table(
        name=path.resolve().name,
        sample_ids=[f"row:{i}" for i in range(len(dataset))],
        labels=labels,
        loader=HFImageLoader(dataset, options.image_column, encoded, directory),
        declared_names=declared,
        splits=splits,
        split_applied=split_applied,
        bad=[(i, f"no label ({options.label_column!r} is -1 or empty)") for i in missing],
    )
