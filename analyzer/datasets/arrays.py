"""An ``.npz`` archive: ``images`` (N×H×W or N×H×W×C uint8) and ``labels`` (N,), optionally ``class_names``
(names of label values 0..K-1) and ``splits`` (N,) of split names.

Sample ids are ``row:<i>``, the row in the arrays; the fingerprint hashes the selected pixels, not the file, so
re-saving the same arrays (another compression) keeps cached features.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from analyzer.datasets.formats import ReadOptions, Table, register_format
from analyzer.datasets.images import ArrayLoader, check_image_array
from analyzer.datasets.labels import labels_with_gaps
from analyzer.errors import DatasetError


def array_table(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    source: str,
    class_names: list[str] | None = None,
    splits: np.ndarray | None = None,
) -> Table:
    """A :class:`Table` over in-memory arrays, with every check of lengths and label values.

    ``class_names[k]`` names label value ``k``: labels must then be integers in 0..K-1, else the label array does
    not match the names and a :class:`DatasetError` says which values are unknown.
    """
    images = check_image_array(images, source=source)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(
            f"{source}: labels have shape {labels.shape}; one label per image (N,) is expected",
            "store a 1-D label array",
        )
    if len(labels) != len(images):
        raise DatasetError(
            f"{source}: {len(images)} images but {len(labels)} labels",
            "store exactly one label per image, in the same order",
        )
    if labels.dtype.kind in "iub":
        labels, missing = labels.astype(np.int64), []
    elif labels.dtype.kind == "f":
        # Float labels stay float (they are the stored values); NaN marks an unlabelled row.
        missing = np.flatnonzero(np.isnan(labels)).tolist()
        labels = np.where(np.isnan(labels), 0.0, labels).astype(np.float64)
    else:
        labels, missing = labels_with_gaps(labels.tolist())

    declared = None
    if class_names is not None:
        if labels.dtype.kind not in "iu":
            raise DatasetError(
                f"{source}: class_names is given but labels are {labels.dtype} values, not indices into it",
                "store labels as integers 0..K-1 indexing class_names, or drop class_names",
            )
        present = np.setdiff1d(np.unique(labels), np.asarray(missing, dtype=np.int64))
        unknown = present[(present < 0) | (present >= len(class_names))]
        if len(unknown):
            raise DatasetError(
                f"{source}: label value(s) {unknown[:10].tolist()} have no entry in class_names "
                f"({len(class_names)} names, for values 0..{len(class_names) - 1})",
                "make the labels index class_names, or complete class_names",
            )
        declared = {k: str(name) for k, name in enumerate(class_names)}

    if splits is not None:
        splits = np.asarray(splits).astype(str).reshape(-1)
        if len(splits) != len(images):
            raise DatasetError(
                f"{source}: {len(images)} images but {len(splits)} split values",
                "store one split name per image, in the same order",
            )

    return Table(
        name=name,
        sample_ids=[f"row:{i}" for i in range(len(images))],
        labels=labels,
        loader=ArrayLoader(images),
        declared_names=declared,
        splits=splits,
        bad=[(i, "empty label (NaN)") for i in missing],
    )


def _check_zip_magic(path: Path) -> None:
    """An .npz is a zip archive; anything else would reach numpy's pickle branch and be called "pickled"."""
    try:
        with path.open("rb") as handle:
            head = handle.read(6)
    except OSError as error:
        raise DatasetError(
            f"cannot read {path} ({error.strerror or error})", "check the path and its permissions"
        ) from None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return
    what = "a single .npy array" if head.startswith(b"\x93NUMPY") else "not a zip archive"
    raise DatasetError(
        f"{path} is {what}, not an .npz archive (an .npz is a zip of named arrays)",
        "save the data with np.savez(path, images=images, labels=labels)",
    )


@register_format(
    "npz",
    detect=lambda spec: Path(spec).suffix.lower() == ".npz",
    priority=10,
    description="an .npz with images (N×H×W[×C] uint8) and labels, optionally class_names and splits",
)
def read_npz(spec: str, options: ReadOptions) -> Table:
    """An .npz with images (N×H×W[×C] uint8) and labels, optionally class_names and splits."""
    path = Path(spec).expanduser()
    if path.is_dir():
        raise DatasetError(
            f"array file {spec!r} is a directory, not an .npz file",
            "point --data at the .npz file itself, or rename the directory if it is an image folder",
        )
    if not path.is_file():
        raise DatasetError(f"array file {spec!r} does not exist", "check the path of the .npz file")
    _check_zip_magic(path)
    try:
        # allow_pickle=False: an .npz is data, and loading pickles from it would execute code.
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            missing = [key for key in ("images", "labels") if key not in keys]
            if missing:
                raise DatasetError(
                    f"{path} has no {' and no '.join(repr(k) for k in missing)} array; its arrays are {keys}",
                    "save it with np.savez(path, images=images, labels=labels)",
                )
            images = archive["images"]
            labels = archive["labels"]
            class_names = archive["class_names"].astype(str).tolist() if "class_names" in keys else None
            splits_key = next((k for k in ("splits", "split") if k in keys), None)
            splits = archive[splits_key] if splits_key else None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DatasetError(
            f"{path} is not a readable .npz archive ({error})",
            "re-create it with np.savez or np.savez_compressed",
        ) from None
    except ValueError as error:  # object arrays need pickle, which is refused
        raise DatasetError(
            f"{path} holds an array that needs pickle to load ({error})",
            "store images and labels as plain numeric or string arrays (not dtype=object)",
        ) from None
    return array_table(path.stem, images, labels, source=str(path), class_names=class_names, splits=splits)
