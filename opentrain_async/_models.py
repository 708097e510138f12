"""Frozen attrs models and the one cattrs converter that maps them to the API's JSON.

Field names are snake_case here and camelCase on the wire; the converter derives the
mapping from the attribute names, so a model never spells a wire name by hand.  Unknown
fields from the server are ignored (forward compatible); optional fields default.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = [
    "Message",
    "OutgoingMessage",
    "WireModel",
    "converter",
    "parse_datetime",
    "structure",
    "to_camel",
]

T = TypeVar("T")

_CAMEL_RE = re.compile(r"_([a-z0-9])")


def to_camel(name: str) -> str:
    """``conversation_id`` -> ``conversationId``."""
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)


def parse_datetime(value: Any) -> datetime:
    """Parse the API's ISO-8601 timestamps into timezone-aware datetimes (UTC if naive)."""
    parsed: datetime | None
    if isinstance(value, str):
        try:
            # Python 3.11+ reads the API's "...Z" form directly: the fast path.
            parsed = _fromisoformat(value)
        except ValueError:
            parsed = _parse_loose(value)
        if parsed is None:
            # Raised here, outside any handler, and without the text: a hostile server
            # may put anything in a timestamp field, the request's token included.
            raise ValueError(f"expected an ISO-8601 timestamp, got {len(value)} characters")
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise TypeError(f"expected an ISO-8601 timestamp string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


_fromisoformat = datetime.fromisoformat


def _parse_loose(value: str) -> datetime | None:
    """``value`` with a ``Z`` suffix or spaces around (Python 3.10); None if not a timestamp."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return _fromisoformat(text)
    except ValueError:
        return None


def _structure_datetime(value: Any, _: type) -> datetime:
    return parse_datetime(value)


def _structure_optional_datetime(value: Any, _: type) -> datetime | None:
    return None if value is None else parse_datetime(value)


def _format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if value is not True and value is not False:
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


converter = cattrs.Converter(detailed_validation=False)
"""The SDK's single converter: camelCase <-> snake_case for every model.

``detailed_validation`` is off because it costs ~40% of structuring time on the send
path; a malformed answer still fails loudly and becomes ``UnexpectedResponseError``."""
converter.register_structure_hook(datetime, _structure_datetime)
converter.register_unstructure_hook(datetime, _format_datetime)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(int, _strict_int)


def _optional_str(value: Any, _: type) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string or null, got {type(value).__name__}")


# Optional fields get direct hooks: cattrs would otherwise dispatch on every call.
converter.register_structure_hook(str | None, _optional_str)
converter.register_structure_hook(datetime | None, _structure_optional_datetime)


def _camel_overrides(cls: type) -> dict[str, Any]:
    return {a.name: override(rename=to_camel(a.name)) for a in attrs.fields(cls)}


converter.register_structure_hook_factory(
    attrs.has,
    lambda cls: make_dict_structure_fn(cls, converter, **_camel_overrides(cls)),
)
converter.register_unstructure_hook_factory(
    attrs.has,
    lambda cls: make_dict_unstructure_fn(cls, converter, **_camel_overrides(cls)),
)


def structure(data: Any, cls: type[T]) -> T:
    """Structure API JSON into ``cls`` with the SDK's converter."""
    return converter.structure(data, cls)


class WireModel:
    """Base of every model: ``to_dict()``/``to_json()`` give the API's JSON shape back."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """This object as the API spells it: camelCase keys, ISO-8601 UTC timestamps."""
        data: dict[str, Any] = converter.unstructure(self)
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """``to_dict()`` as a JSON string (UTF-8 text kept as is)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)


@attrs.frozen(kw_only=True)
class Message(WireModel):
    """One message, as sent or read: the API's message object in snake_case."""

    id: str
    conversation_id: str
    created_at: datetime
    updated_at: datetime | None = None
    job_id: str | None = None
    sender_user_id: str | None = None
    is_from_viewer: bool | None = None  # None: the server did not say (no isFromViewer)
    content: str = ""
    message_type: str | None = None
    system: bool = False
    has_unread_flag: bool = False
    attachment_count: int = 0
    has_audio: bool = False
    edited_at: datetime | None = None
    reaction_count: int = 0


def _redacted(content: object) -> str:
    """How content shows in a ``repr``: its length, never the text."""
    return f"<{len(content)} chars>" if isinstance(content, str) else type(content).__name__


@attrs.frozen
class OutgoingMessage(WireModel):
    """A message to send: where, what, and an optional ``key`` of the caller's for correlation.

    ``key`` never goes to the server; bulk outcomes and the CLI journal use it.
    """

    conversation_id: str
    content: str = attrs.field(repr=lambda content: _redacted(content))
    """Kept out of ``repr`` (content is logged only when asked)."""
    key: str | None = None


structure_message_hook = converter.get_structure_hook(Message)
"""The converter's generated hook for ``Message``, called as ``hook(data, Message)``: the
send path calls it directly, skipping the converter's dispatch on every message."""
