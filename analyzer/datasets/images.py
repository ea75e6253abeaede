"""Decoding images to RGB, and the loaders that decode row ``r`` of a source (files or an in-memory stack)."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from analyzer.errors import DatasetError


# ----------------------------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------------------------
def to_rgb(image: Image.Image) -> Image.Image:
    """A loaded PIL image as an 8-bit RGB copy.

    Integer and float single-channel modes ("I;16", "I", "F") are rescaled to 0..255 first, because
    ``convert("RGB")`` would clip them to white; palette images with transparency go through RGBA so PIL does not
    warn. Alpha is dropped, as timm's and torchvision's loaders do.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        if image.mode.startswith("I;16") or 255 < top <= 65535:
            array = array / 257.0
        elif image.mode == "F" and top <= 1.0:
            array = array * 255.0
        image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def decode_file(source: str | os.PathLike[str] | Any) -> Image.Image:
    """Open, fully decode and convert one image (a path or a binary file object) to RGB.

    ``load()`` forces the whole decode, so a truncated or corrupt file raises here (``OSError`` /
    ``PIL.UnidentifiedImageError`` / ``SyntaxError`` from some plugins), not later inside a DataLoader worker.
    """
    with Image.open(source) as image:
        image.load()
        return to_rgb(image)


def array_to_image(array: np.ndarray) -> Image.Image:
    """One ``H×W`` or ``H×W×C`` (C in 1, 3, 4) uint8 array as an RGB PIL image (grey is repeated to RGB)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), "L").convert("RGB")
    if array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array), "RGB")
    return Image.fromarray(np.ascontiguousarray(array), "RGBA").convert("RGB")


def check_image_array(images: np.ndarray, *, source: str) -> np.ndarray:
    """Validate an image stack (N×H×W or N×H×W×C, C in 1/3/4) and return it as uint8.

    Integer arrays whose values lie in 0..255 are accepted and cast; floats and out-of-range values are refused
    because guessing their scale (0..1? 0..255?) silently changes every feature.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] not in (1, 3, 4) and images.shape[1] in (1, 3, 4):
        raise DatasetError(
            f"{source}: images have shape {images.shape}, which looks channels-first (N×C×H×W)",
            "store them channels-last: np.transpose(images, (0, 2, 3, 1))",
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise DatasetError(
            f"{source}: images have shape {images.shape}; expected N×H×W (grey) or N×H×W×C with C = 1, 3 or 4",
            "reshape the image array to one of those layouts",
        )
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        low, high = (int(images.min()), int(images.max())) if images.size else (0, 0)
        if low >= 0 and high <= 255:
            return images.astype(np.uint8)
        raise DatasetError(
            f"{source}: integer images range over {low}..{high}, outside 0..255",
            "rescale them to 0..255 and store them as uint8",
        )
    raise DatasetError(
        f"{source}: images have dtype {images.dtype}; 8-bit images (uint8, 0..255) are expected",
        "convert them, e.g. (images * 255).round().astype(np.uint8) for floats in 0..1",
    )


class ImageLoader(ABC):
    """Decodes row ``r`` of a source to an RGB image. Must stay picklable (DataLoader workers receive it)."""

    #: whether decoding can fail (files, encoded bytes) and so must be checked before extraction
    needs_check: bool = True

    @abstractmethod
    def load(self, row: int) -> Image.Image:
        """Row ``row`` of the source as an RGB PIL image."""

    def check(self, row: int) -> str | None:
        """``None`` when row ``row`` decodes, else the reason it does not (decodes fully: catches truncation)."""
        # PIL plugins raise OSError, ValueError, SyntaxError, struct.error...: every one of them means a bad file.
        try:
            self.load(row)
        except Exception as error:
            return f"cannot decode: {type(error).__name__}: {error}"
        return None

    @abstractmethod
    def fingerprint(self, rows: np.ndarray) -> Any:
        """A JSON-serialisable identity of the content of ``rows`` (file sizes and mtimes, or content hashes)."""


class FileLoader(ImageLoader):
    """Images stored as files: ``paths[r]`` resolved against ``root`` (absolute paths stay absolute)."""

    def __init__(self, root: Path, paths: Sequence[str]) -> None:
        self.root = Path(root)
        self.paths = list(paths)

    def file(self, row: int) -> Path:
        return self.root / self.paths[row]

    def load(self, row: int) -> Image.Image:
        return decode_file(self.file(row))

    def fingerprint(self, rows: np.ndarray) -> Any:
        # Sizes and nanosecond mtimes instead of content hashes: stat is ~1000× cheaper than reading every image,
        # and any rewrite of a file changes its mtime.
        listing = []
        for row in rows:
            stat = self.file(int(row)).stat()
            listing.append([self.paths[int(row)], stat.st_size, stat.st_mtime_ns])
        return {"files": listing}


class ArrayLoader(ImageLoader):
    """Images held in memory as a uint8 stack (N×H×W or N×H×W×C); decoding cannot fail."""

    needs_check = False

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def load(self, row: int) -> Image.Image:
        return array_to_image(self.images[row])

    def check(self, row: int) -> str | None:
        return None

    def fingerprint(self, rows: np.ndarray) -> Any:
        digest = hashlib.sha256()
        digest.update(repr((self.images.dtype.str, self.images.shape[1:])).encode())
        # Hash row by row so a subsample never materialises a copy of the stack.
        for row in rows:
            digest.update(np.ascontiguousarray(self.images[int(row)]).tobytes())
        return {"pixels_sha256": digest.hexdigest()}
