"""Pydantic validation errors as lines naming the full key path and the valid keys or values."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError


def describe_errors(exc: ValidationError, model: type[BaseModel] | None, prefix: str = "") -> str:
    """One line per pydantic error: the full key path, what was wrong, the valid keys or values.

    ``model`` is the model that was validated (it lists the valid keys of an unknown one); ``None``
    when unknown (an error a backend's factory raised).
    """
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        path = _join(prefix, loc)
        if error["type"] == "extra_forbidden":
            valid = _keys_at(model, loc[:-1]) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listing = f"; valid keys: {', '.join(valid)}" if valid else ""
            lines.append(f"{path}: unknown key{hint}{listing}")
        elif error["type"] == "value_error":
            lines.append(f"{path}: {error['ctx']['error']}")
        else:
            lines.append(f"{path}: {error['msg']} (got {error.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


# ---------------------------------------------------------------------- helpers


def _join(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by following ``loc`` through fields, dicts and lists."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else members[0]
    return annotation


__all__ = ["describe_errors"]
