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


class _Walk:
    """What one reading of an image folder has walked: each real directory once, symlinks it did not follow.

    A symlinked folder is followed only when its real target lies outside the dataset's root and has not been
    walked already: a link back into the dataset (``0/loop -> ..``, ``1/self -> ../1``, a link into another
    class) would read the same images again, under the wrong label or in a loop, so it is not followed and is
    named in the dataset's warnings.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.walked: set[str] = set()
        self.not_followed: list[str] = []

    @staticmethod
    def _inside(real: str, folder: str) -> bool:
        return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)

    def list_class_files(self, class_dir: Path) -> tuple[list[Path], int]:
        """Image files under ``class_dir`` (recursive, sorted, hidden entries skipped) and the count of others."""
        images: list[Path] = []
        others = 0
        class_real = os.path.realpath(class_dir)
        self.walked.add(class_real)
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            kept = []
            for d in sorted(dirnames):  # sorted: which of two links to one folder is read never varies
                if _is_hidden(d):
                    continue
                sub = Path(dirpath) / d
                real = os.path.realpath(sub)
                if sub.is_symlink() and (
                    self._inside(real, self.real_root)  # back into the dataset: its files are read there
                    or self._inside(self.real_root, real)  # an ancestor of the dataset: a loop
                    or self._inside(class_real, real)
                ):
                    self.not_followed.append(sub.relative_to(self.root).as_posix())
                    continue
                if real in self.walked:  # a folder reached twice (two links to it, a loop outside the root)
                    if sub.is_symlink():
                        self.not_followed.append(sub.relative_to(self.root).as_posix())
                    continue
                self.walked.add(real)
                kept.append(d)
            dirnames[:] = kept
            for filename in filenames:
                if _is_hidden(filename):
                    continue
                path = Path(dirpath) / filename
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    images.append(path)
                else:
                    others += 1
        # One global order by path text (os.walk lists a folder's files before its sub-folders'), so the order is
        # the same on every filesystem and equals ``sorted(sample_ids)``.
        images.sort(key=lambda p: p.as_posix())
        return images, others

    @staticmethod
    def root_of(class_dir: Path) -> Path:
        return class_dir.parent


def list_class_files(class_dir: Path) -> tuple[list[Path], int]:
    """Image files under ``class_dir`` (recursive, sorted, hidden entries skipped) and the count of other files;
    symlinked folders followed as :class:`_Walk` says."""
    return _Walk(class_dir.parent).list_class_files(class_dir)


def _drop_repeats(paths: list[str], labels: list[str], root: Path) -> tuple[list[str], list[str], int]:
    """Each real file once: a file reached under two paths (a symlinked file) is kept where it really lies in the
    dataset when one path is not a link, else at its first path; returns the kept paths, labels and the count
    dropped."""
    real_root = os.path.realpath(root)

    def direct(rel: str) -> bool:  # the file lies where its path says, not reached through a link
        return os.path.realpath(root / rel) == os.path.join(real_root, rel)

    by_real: dict[str, int] = {}
    for i, rel in enumerate(paths):
        real = os.path.realpath(root / rel)
        j = by_real.get(real)
        if j is None or (not direct(paths[j]) and direct(rel)):
            by_real[real] = i
    keep = sorted(by_real.values())
    return [paths[i] for i in keep], [labels[i] for i in keep], len(paths) - len(keep)


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
    walk = _Walk(root)
    for class_dir in class_dirs:
        files, others = walk.list_class_files(class_dir)
        ignored += others
        if not files:
            empty.append(class_dir.name)
        for file in files:
            paths.append(file.relative_to(root).as_posix())
            labels.append(class_dir.name)
    paths, labels, repeats = _drop_repeats(paths, labels, root)
    if walk.not_followed:
        problems.append(
            f"{len(walk.not_followed)} symlinked folder(s) lead back into the dataset or to a folder already read "
            f"and are not followed (each real folder is read once): {', '.join(walk.not_followed[:10])}"
        )
    if repeats:
        problems.append(f"{repeats} image file(s) reached twice through symlinks are counted once")
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
