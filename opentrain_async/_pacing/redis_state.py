"""The shared ``PacingState`` as a Redis hash: every field a string (the Lua scripts in
``_redis/lua/pacing_*.lua`` read and write the same fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .state import SAMPLE_BUCKETS, PacingState

__all__ = ["VERSION", "decode_state", "encode_state", "text"]

VERSION = "v"  # hash field bumped by every write ("0": nothing written yet, see hand_back)


def _encode_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def encode_state(state: PacingState) -> dict[str, str]:
    """``PacingState`` as hash fields (every field a string; tuples comma-joined)."""
    return {f.name: _encode_value(getattr(state, f.name)) for f in attrs.fields(PacingState)}


def decode_state(fields: Mapping[str, str]) -> PacingState:
    """The hash back as a ``PacingState``; missing fields keep their defaults."""
    values: dict[str, Any] = {}
    default = PacingState()
    for f in attrs.fields(PacingState):
        text = fields.get(f.name)
        if text is None:
            continue
        kind = type(getattr(default, f.name))
        if f.name == "limit":
            values[f.name] = float(text) if text else None
        elif kind is bool:
            values[f.name] = text != "0"
        elif kind is tuple:
            numbers = [int(float(x)) for x in text.split(",") if x]
            values[f.name] = tuple(numbers[-SAMPLE_BUCKETS:]) + (0,) * max(
                0, SAMPLE_BUCKETS - len(numbers)
            )
        elif kind is int:
            values[f.name] = int(float(text))
        else:
            values[f.name] = float(text)
    return attrs.evolve(default, **values)


def text(value: Any) -> str:
    """A Redis reply value as text (redis-py gives bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
