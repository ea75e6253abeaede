"""Short display names for model specs: what tables, charts and reports show instead of the full spec.

A spec such as ``torchscript:../shared/benchmarks/notmnist/models/mnist_lenet5_clntrained.pt`` identifies a
candidate exactly but fills a table column; its display name is ``mnist_lenet5_clntrained``. Names are derived from
the spec text alone (no file or model is touched), so they are the same wherever a report is read, and they stay
unique within one ranking: where two specs would share a name, parent folders are added, then the source prefix, and
as a last resort the full spec is used.

>>> specs = ["timm:resnet18.a1_in1k", "hf:facebook/dinov2-small", "timm:resnet18@/w/zoo/resnet-strokes.safetensors"]
>>> list(short_names(specs).values())
['resnet18.a1_in1k', 'dinov2-small', 'resnet18@resnet-strokes']
>>> list(short_names(["torchscript:a/net.pt", "torchscript:b/net.pt"]).values())
['a/net', 'b/net']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from analyzer.specs import split_spec

#: File endings dropped from a path's last part (checkpoints and exported programs)
_WEIGHT_SUFFIXES = (".safetensors", ".pt2", ".pth", ".pt", ".ts", ".bin", ".ckpt", ".onnx", ".npz")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith(_WEIGHT_SUFFIXES)


def _path_name(text: str, parents: int) -> str:
    """The last part of a path without its weights ending, with ``parents`` folders before it."""
    parts = [p for p in PurePath(text.replace("\\", "/")).parts if p not in ("/", "")]
    if not parts:
        return text
    last = parts[-1]
    for suffix in _WEIGHT_SUFFIXES:
        if last.endswith(suffix) and len(last) > len(suffix):
            last = last[: -len(suffix)]
            break
    return "/".join([*parts[-1 - parents : -1], last]) if parents else last


def _name(spec: str, parents: int, with_source: bool) -> str:
    parts = split_spec(spec)
    if not parts.has_source:  # not a spec: show it as it is
        return spec
    model, weights = parts.model, parts.weights
    # a hub repository "org/name" is named like a path: "name", then "org/name" on a collision
    head = _path_name(model, parents) if _looks_like_path(model) else model
    if weights is not None:
        head += "@" + (_path_name(weights, parents) if _looks_like_path(weights) else weights)
    return f"{parts.source}:{head}" if with_source else head


def short_names(specs: Sequence[str]) -> dict[str, str]:
    """``{spec: display name}`` for every spec, the names unique among these specs.

    The name is the model's own name: a file's stem for a path, the model name for a hub id (``timm:`` names are
    kept whole, ``org/name`` repositories lose the organisation), ``ARCH@STEM`` for an architecture with a local
    weights file. Colliding names get parent folders (up to three), then their source prefix; specs that still
    collide keep their full text.
    """
    unique = list(dict.fromkeys(str(s) for s in specs))
    names: dict[str, str] = {}
    pending = unique
    for parents, with_source in [(0, False), (1, False), (2, False), (3, False), (3, True)]:
        candidates = {spec: _name(spec, parents, with_source) for spec in pending}
        taken = list(names.values())
        counts: dict[str, int] = {}
        for name in [*taken, *candidates.values()]:
            counts[name] = counts.get(name, 0) + 1
        for spec, name in candidates.items():
            if counts[name] == 1 and name not in unique:  # never let a name read as another candidate's spec
                names[spec] = name
        pending = [spec for spec in pending if spec not in names]
        if not pending:
            break
    for spec in pending:
        names[spec] = spec
    return {spec: names[spec] for spec in unique}


def report_display_names(report: Mapping[str, Any]) -> dict[str, str]:
    """:func:`short_names` of every candidate a report mentions: ranked, failed, skipped for a metric, or with a
    spectrum. ``report`` is report.json's dict or anything with those keys (:class:`RankingResult` passes its
    fields), so the reports and the dashboard name each candidate the same way."""
    rows = [*(report.get("ranking") or []), *(report.get("failed") or []), *(report.get("skipped") or [])]
    specs = [row.get("model") for row in rows] + list(report.get("spectrum") or {})
    return short_names([str(spec) for spec in specs if spec is not None])
