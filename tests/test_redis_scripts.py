"""The Lua scripts are package data (``opentrain_async/_redis/lua/*.lua``), loaded one
way (``_redis.scripts``), and nowhere kept as Python text (the wheel and sdist ship them:
``tests/test_package_metadata.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from opentrain_async._redis import scripts

PACKAGE = Path(scripts.__file__).resolve().parents[1]
LUA = sorted(p.stem for p in (PACKAGE / "_redis" / "lua").glob("*.lua"))


def test_every_script_loads_from_package_data() -> None:
    """Each ``.lua`` file reads through ``importlib.resources``, and a script made of
    several files is their text in order."""
    assert "pacing_reserve" in LUA
    assert "journal_append" in LUA
    for name in LUA:
        assert "redis.call" in scripts.source(name) or name == "pacing_common"
    both = scripts.source("pacing_common", "pacing_reserve")
    assert both == scripts.source("pacing_common") + scripts.source("pacing_reserve")


def test_no_lua_is_kept_in_python_and_every_file_is_used() -> None:
    """No module holds Lua as a string (``redis.call``), and every ``.lua`` file is
    named in the package's code: one home per script, none dead."""
    code = {p: p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}
    assert [str(p) for p, text in code.items() if "redis.call(" in text] == []
    named = set()
    for text in code.values():
        named.update(re.findall(r"\"((?:pacing|journal|dedupe)_[a-z]+)\"", text))
    assert set(LUA) <= named, set(LUA) - named
