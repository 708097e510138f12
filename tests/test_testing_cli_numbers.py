"""Adversary round adv3: numbers the fake server's command line still served after
``--rate nan`` and friends became usage errors.  Each was taken: ``--rate-change 0:inf``
printed READY, then its switch raised in a background task and the old limit stayed;
``--rate-limited-retry-after nan`` answered 429s whose hint is NaN (not JSON), ``-3`` a
negative hint; a ``--limit-json`` step at ``NaN`` or ``Infinity`` passed the order check
(NaN compares false); ``--port 70000`` ended in an OverflowError traceback; a negative
``--conversations`` served none.  Now each is one usage line and exit 2 before READY."""

from __future__ import annotations

import json

import pytest

from opentrain_async.testing import __main__ as testing_main
from opentrain_async.testing.__main__ import main


@pytest.fixture(autouse=True)
def _never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken flags would serve until a signal: serve nothing, say READY, return (a flag
    taken then shows as no SystemExit, not as a hung test)."""

    async def serve(args: object) -> None:
        print("READY (not served)")

    monkeypatch.setattr(testing_main, "_serve", serve)


_BUCKET = {"kind": "TokenBucket", "rate": 5}


def _second_step_at(at: float) -> str:
    return json.dumps({"steps": [{"at": 0, **_BUCKET}, {"at": at, **_BUCKET}]})


BAD = [
    ["--rate", "5", "--rate-change", "0:inf"],
    ["--rate", "5", "--rate-change", "inf:5"],
    ["--rate-limited", "2", "--rate-limited-retry-after", "nan"],
    ["--rate-limited", "2", "--rate-limited-retry-after", "-3"],
    ["--rate-limited", "2", "--rate-limited-retry-after", "inf"],
    ["--limit-json", _second_step_at(float("nan"))],
    ["--limit-json", _second_step_at(float("inf"))],
    ["--port", "70000"],
    ["--port", "-1"],
    ["--conversations", "-3"],
]


@pytest.mark.parametrize("flags", BAD, ids=[" ".join(flags[-2:])[:48] for flags in BAD])
def test_a_number_it_cannot_serve_is_a_usage_error(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = flags if flags[0] == "--port" else ["--port", "0", *flags]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "READY" not in out
    assert "Traceback" not in err
    assert flags[-2] in err, err


def test_a_scenario_file_with_a_hint_it_cannot_serve_is_a_usage_error(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same hint from ``--scenario FILE`` (Python's json reads ``NaN``)."""
    scenario = tmp_path / "scenario.json"  # type: ignore[operator]
    scenario.write_text('{"rateLimited": {"next": 2, "retryAfter": NaN}}')
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", "--scenario", str(scenario)])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "READY" not in out
    assert "rateLimited" in err, err
