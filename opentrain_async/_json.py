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
    json_loads = orjson.loads
    json_dumps = orjson.dumps
