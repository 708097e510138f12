"""JSON encoding for the wire: orjson when installed (``opentrain-async[speed]``), else json.

orjson parses the API's answers about 3x faster, which is ~4% of bulk-send throughput.
Both loaders raise ``ValueError``, never ``RecursionError``, on a hostile body nested
thousands deep (orjson stops at 1024 levels, the stdlib at the recursion limit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["json_dumps", "json_loads"]


def _std_loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:  # a hostile body nested thousands deep: unreadable, not a crash
        raise ValueError("JSON nested too deeply") from None


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


json_loads: Callable[[bytes | str], Any] = _std_loads
json_dumps: Callable[[Any], bytes] = _std_dumps

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    pass
else:

    def _orjson_loads(raw: bytes | str) -> Any:
        """orjson, and the stdlib for what orjson refuses: a lone surrogate escape
        (``"\\ud83d"``, half an emoji, as JavaScript's ``JSON.stringify`` writes one
        that a client cut by UTF-16 units) is valid JSON, and one such message made
        its whole page unreadable, stopping ``listen()`` on every restart.  Only bodies
        orjson refused pay twice; the stdlib's answer is what every install without
        orjson gets, so the SDK reads the same data either way."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _std_loads(raw)

    json_loads = _orjson_loads
    json_dumps = orjson.dumps
