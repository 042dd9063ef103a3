"""Dataclasses to and from plain JSON types, for run.json and `--json`.

A field whose metadata says `json=False` is working data between stages (a policy rule's parsed
priority, a finding's structured facts): it never reaches the JSON, so records stay stable while
the stages exchange richer values. A field whose metadata has `json_name` is written and read
under that key: the name JSON wants may be a Python keyword (a diagnosis's `class`).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

INTERNAL: dict[str, Any] = {"json": False}  # field(metadata=INTERNAL): not serialised


def json_key(f: dataclasses.Field[Any]) -> str:
    """The key FIELD has in JSON: its own name unless its metadata renames it."""
    return str(f.metadata.get("json_name", f.name))


def to_dict(obj: Any) -> Any:
    """Dataclasses to plain JSON types (tuples become lists, enums their values)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            json_key(f): to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)
        }
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: Any, data: Any) -> Any:
    """Inverse of to_dict for the model's dataclasses (nested ones, tuples and dicts of them)."""
    if data is None:
        return None
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = json_key(f)
        if key not in data or not f.metadata.get("json", True):
            continue
        kwargs[f.name] = _convert(hints[f.name], data[key])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        elem = args[0] if args else Any
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(elem, v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=False))
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _convert(args[1], v) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    return value
