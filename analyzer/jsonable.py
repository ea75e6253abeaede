"""Plain JSON values, and typed records that read and write themselves as JSON objects (a leaf module).

:func:`to_jsonable` is the one conversion to JSON types (numpy scalars and arrays, NaN/inf as null, paths as
text, :class:`Record` instances as objects); report.json, the record caches and the spectrum worker use it.

A :class:`Record` is a frozen dataclass whose JSON object has one key per field, in field order, so adding a key
to report.json is adding one field (with a default, so older reports still read). :meth:`Record.from_dict` reads
an object back by the fields' type hints and raises :class:`SchemaError` naming the path of the first value that
does not fit (``report.json.ranking[2].p_best is not a number: 'x'``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

#: ``field(metadata=OMIT_NONE)``: the key is left out of the JSON object while the value is None (keys that only
#: some runs have, such as the bootstrap's early-stopping fields).
OMIT_NONE: Mapping[str, bool] = types.MappingProxyType({"omit_none": True})

R = TypeVar("R", bound="Record")


class SchemaError(ValueError):
    """A JSON value that does not fit its record; the message starts with the value's path."""


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, NaN and inf as None, Paths as str, records as objects."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


class Record:
    """Base of the frozen dataclasses serialised as JSON objects (see the module docstring).

    A field whose metadata is :data:`OMIT_NONE` is left out while None; a field with ``metadata={"transient":
    True}`` is never written nor read.
    """

    #: Dataclass fields, declared here so that mypy knows every Record is one.
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: one key per field, in field order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("transient") or (value is None and f.metadata.get("omit_none")):
                continue
            out[f.name] = to_jsonable(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        """The record of a JSON object: missing keys (and nulls where None does not fit) take the field's
        default; unknown keys are ignored; anything else that does not fit raises :class:`SchemaError`."""
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where} is not an object: {_shown(data)}")
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.metadata.get("transient") or not f.init:
                continue
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            value = data.get(f.name)
            if f.name not in data or (value is None and has_default and not _allows_none(hints[f.name])):
                if not has_default:
                    raise SchemaError(f"{where} lacks {f.name!r}")
                continue
            kwargs[f.name] = convert(hints[f.name], value, f"{where}.{f.name}")
        return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a record class (resolved once: ``get_type_hints`` evaluates the strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _allows_none(tp: Any) -> bool:
    return tp is Any or type(None) in typing.get_args(tp)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` (decoded JSON) as the type ``tp``: records built, arrays as lists (tuples for ``tuple[...]``
    fields), numbers kept as written (an
    integer in a float field stays an integer, so a report written again has the same bytes)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, where)
            except SchemaError as exc:
                errors.append(exc)
        raise errors[0]
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value, where)
    if origin in (tuple, list, Sequence, typing.Sequence):
        if not isinstance(value, list | tuple):
            raise SchemaError(f"{where} is not an array: {_shown(value)}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise SchemaError(f"{where} does not have {len(args)} values: {_shown(value)}")
            return tuple(
                convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        converted = [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted  # a Sequence field holds a list (== JSON's)
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise SchemaError(f"{where} is not an object: {_shown(value)}")
        item = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        return {str(k): convert(item, v, f"{where}[{k!r}]") for k, v in value.items()}
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise SchemaError(f"{where} is not true or false: {_shown(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise SchemaError(f"{where} is not a number: {_shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SchemaError(f"{where} is not an integer: {_shown(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SchemaError(f"{where} is not text: {_shown(value)}")
    raise TypeError(
        f"{where}: no JSON conversion for the type {tp!r}"
    )  # a field type this module lacks: a bug
