"""The one parser of model-spec syntax: ``SOURCE:MODEL[@WEIGHTS]`` (no registry, no torch).

``analyzer.sources.parse_spec`` adds the check that the source is registered; display names
(:mod:`analyzer.naming`) and the store's cheap cache check (:mod:`analyzer.extract`) read the parts from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """A spec split into its parts.

    Attributes:
        text: the spec, stripped. source: the prefix before the first ``:`` ("" when there is none).
        target: what follows the ``:``, stripped (what the source's adapter interprets).
        model: ``target`` before the first ``@``; weights: what follows it, or None.
    """

    text: str
    source: str
    target: str
    model: str
    weights: str | None

    @property
    def has_source(self) -> bool:
        """True when the text had a ``SOURCE:`` prefix."""
        return bool(self.source)

    def named_paths(self) -> list[str]:
        """Every string of the spec that may name a local file or folder: the target, and its parts around
        ``@`` (``timm:ARCH@PATH``), in order, without repeats."""
        return [t for t in dict.fromkeys([self.target, *self.target.split("@")]) if t]


def split_spec(text: str) -> ModelSpec:
    """Split ``SOURCE:MODEL[@WEIGHTS]``; a text without ``:`` has ``source == ""`` and the whole text as target.

    >>> split_spec("timm:resnet18@/w/r18.safetensors").weights
    '/w/r18.safetensors'
    """
    stripped = str(text).strip()
    source, sep, target = stripped.partition(":")
    if not sep:
        source, target = "", stripped
    target = target.strip()
    model, at, weights = target.partition("@")
    return ModelSpec(stripped, source, target, model, weights if at else None)
