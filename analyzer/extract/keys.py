"""The entry key before any forward pass, and before any model load when a spec's remembered resolution still
holds (its local files unchanged)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyzer.contracts import Backbone, Dataset
from analyzer.specs import split_spec
from analyzer.store import FeatureStore, key_parts


# -- keys ------------------------------------------------------------------------------------------------------
def entry_key_parts(dataset: Dataset, backbone: Backbone) -> dict[str, Any]:
    """The store key parts for ``backbone`` over ``dataset`` (no forward pass)."""
    return key_parts_from(
        dataset,
        spec=backbone.spec,
        weights_id=backbone.weights_id,
        preprocess=backbone.preprocess.to_dict(),
        feature_layer=backbone.feature_layer,
    )


def key_parts_from(
    dataset: Dataset, *, spec: str, weights_id: str, preprocess: dict[str, Any], feature_layer: str | None
) -> dict[str, Any]:
    return key_parts(
        spec=spec,
        weights_id=weights_id,
        preprocess=preprocess,
        feature_layer=feature_layer,
        dataset_fingerprint=dataset.fingerprint,
        sample_ids=dataset.sample_ids,
        labels=dataset.labels,
    )


# -- resolving a spec without loading it -----------------------------------------------------------------------
def _spec_dependencies(spec: str, weights_path: str | None) -> list[Path] | None:
    """The local files a spec's weights id and preprocessing come from, or None for a hub-only spec.

    Every existing path named in the spec (``torchscript:PATH``, ``timm:ARCH@PATH``, ``hf:DIR``), the sidecars a
    source may read beside a file (``PATH.json`` with either suffix rule, present or not: one appearing later
    changes the preprocessing), every file of a named directory, and the backbone's ``weights_path``.
    """
    named = [Path(t).expanduser() for t in split_spec(spec).named_paths()]
    paths = [p.resolve() for p in named if p.exists()]
    if not paths:
        return None  # a hub model: only loading it can tell which revision the hub cache holds
    deps: set[Path] = set()
    for path in paths:
        if path.is_dir():
            deps.update(p for p in path.rglob("*") if p.is_file())
        else:
            deps.update((path, path.with_suffix(".json"), path.with_name(path.name + ".json")))
    if weights_path:
        deps.add(Path(weights_path).resolve())
    return sorted(deps)


def _stat_listing(paths: Sequence[Path]) -> list[list[Any]]:
    listing = []
    for path in paths:
        try:
            stat = path.stat()
            listing.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            listing.append([str(path), None, None])  # absence is part of the state too
    return listing


def _memo_name(spec: str, overrides: dict[str, Any]) -> str:
    from analyzer import __version__

    text = repr((str(spec), sorted((k, repr(v)) for k, v in overrides.items()), __version__))
    return hashlib.sha256(text.encode()).hexdigest()


def recall_resolution(store: FeatureStore, spec: str, overrides: dict[str, Any]) -> dict[str, Any] | None:
    """What ``spec`` resolved to last time, if none of the local files it depends on changed since."""
    memo = store.read_memo(_memo_name(spec, overrides))
    if not memo or memo.get("spec_typed") != str(spec):
        return None
    deps = _spec_dependencies(spec, memo.get("weights_path"))
    if deps is None or _stat_listing(deps) != memo.get("files"):
        return None
    return memo


def remember_resolution(
    store: FeatureStore, spec: str, overrides: dict[str, Any], backbone: Backbone
) -> None:
    deps = _spec_dependencies(spec, backbone.weights_path)
    if deps is None:
        return
    store.write_memo(
        _memo_name(spec, overrides),
        {
            "spec_typed": str(spec),
            "spec": backbone.spec,
            "weights_id": backbone.weights_id,
            "preprocess": backbone.preprocess.to_dict(),
            "feature_layer": backbone.feature_layer,
            "weights_path": backbone.weights_path,
            "files": _stat_listing(deps),
        },
    )
