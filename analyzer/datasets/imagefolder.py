"""An image-folder directory: one sub-folder per class (``root/<class>/**/<image>``), torchvision's layout.

Labels are the class folder names (str); sample ids are paths relative to the root (``cat/001.png``), sorted.
A split is a sub-folder holding the class folders (``root/<split>/<class>/...``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analyzer.datasets.formats import ReadOptions, Table, register_format
from analyzer.datasets.images import FileLoader
from analyzer.errors import DatasetError

#: the extensions PIL decodes that image datasets use (torchvision's IMG_EXTENSIONS plus webp/gif), lower case
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".pbm", ".tif", ".tiff", ".webp", ".gif"}
)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def list_class_files(class_dir: Path) -> tuple[list[Path], int]:
    """Image files under ``class_dir`` (recursive, sorted, hidden entries skipped) and the count of other files."""
    images: list[Path] = []
    others = 0
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        for filename in filenames:
            if _is_hidden(filename):
                continue
            path = Path(dirpath) / filename
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                others += 1
    # One global order by path text (os.walk lists a folder's files before its sub-folders'), so the order is the
    # same on every filesystem and equals ``sorted(sample_ids)``.
    images.sort(key=lambda p: p.as_posix())
    return images, others


def _detect(spec: str) -> bool:
    return Path(spec).is_dir()


@register_format(
    "imagefolder",
    detect=_detect,
    priority=90,
    description="a directory with one sub-folder of images per class",
)
def read_imagefolder(spec: str, options: ReadOptions) -> Table:
    """A directory with one sub-folder of images per class."""
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"image folder {spec!r} is not a directory", "pass the directory holding the class folders"
        )
    split_applied = False
    if options.split is not None:
        split_root = root / options.split
        if not split_root.is_dir():
            raise DatasetError(
                f"image folder {spec!r} has no split sub-folder {options.split!r}",
                f"an image folder's split is a sub-folder holding the class folders ({root}/{options.split}/<class>/...); "
                "drop --split or point --data at the folder of the split",
            )
        root, split_applied = split_root, True

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not class_dirs:
        raise DatasetError(
            f"image folder {str(root)!r} has no class sub-folders"
            + (f" ({len(loose)} images lie directly in it)" if loose else ""),
            "put each class's images in its own sub-folder: ROOT/<class name>/<image>",
        )

    paths: list[str] = []
    labels: list[str] = []
    problems: list[str] = []
    empty: list[str] = []
    ignored = 0
    for class_dir in class_dirs:
        files, others = list_class_files(class_dir)
        ignored += others
        if not files:
            empty.append(class_dir.name)
        for file in files:
            paths.append(file.relative_to(root).as_posix())
            labels.append(class_dir.name)
    if not paths:
        raise DatasetError(
            f"image folder {str(root)!r} has class folders but no image files "
            f"(extensions read: {', '.join(sorted(IMAGE_EXTENSIONS))})",
            "check the path, or convert the images to one of those formats",
        )
    if empty:
        problems.append(
            f"{len(empty)} class folder(s) hold no image and are ignored: {', '.join(empty[:20])}"
        )
    if ignored:
        problems.append(f"{ignored} non-image file(s) under the class folders are ignored")
    if loose:
        problems.append(f"{len(loose)} image(s) directly in {str(root)!r} belong to no class and are ignored")

    return Table(
        name=Path(spec).expanduser().resolve().name,
        sample_ids=paths,
        labels=np.array(labels, dtype=str),
        loader=FileLoader(root, paths),
        split_applied=split_applied,
        problems=problems,
    )
