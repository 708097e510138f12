"""``python -m opentrain_async.testing`` given a rate limit (or a duration) it cannot use: one usage
line and exit 2, as for every other bad flag, before it serves.  A malformed
``--limit-json`` (not JSON, no ``steps``, not an object) or ``--rate-change`` raised
out of the server's start-up with a traceback (JSONDecodeError, KeyError, TypeError,
ValueError), some after printing READY."""

from __future__ import annotations

import pytest

from opentrain_async.testing.__main__ import main

BAD = [
    ["--limit-json", "{bad"],
    ["--limit-json", "{}"],
    ["--limit-json", "[1]"],
    ["--limit-json", "null"],
    ["--limit-json", '{"steps": [{"at": 0, "kind": "Nope"}]}'],
    ["--limit-json", '{"steps": [{"at": 0, "kind": "TokenBucket", "rate": -1}]}'],
    ["--window-limit", "-3"],
    ["--rate", "nan"],
    ["--rate", "inf"],
    ["--window-limit", "5", "--window", "nan"],
    ["--rate", "5", "--rate-change", "abc"],
    ["--rate", "5", "--rate-change", "1:-2"],
]


@pytest.mark.parametrize("flags", BAD, ids=[" ".join(flags) for flags in BAD])
def test_a_limit_it_cannot_use_is_a_usage_error(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", *flags])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "READY" not in out
    assert "Traceback" not in err
    assert f"error: {flags[-2]}" in err, err


ARGUMENTS = [
    ["--latency", "-1"],
    ["--latency", "nan"],
    ["--latency", "abc"],
    ["--latency-jitter", "1.5"],
    ["--fault-rate", "2"],
    ["--fault-delay", "inf"],
]


@pytest.mark.parametrize("flags", ARGUMENTS, ids=[" ".join(flags) for flags in ARGUMENTS])
def test_a_duration_or_share_out_of_range_is_a_usage_error(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative or NaN latency was served as none, a jitter above 1 made latencies
    negative, and ``--fault-rate 2`` meant always: each is now named before serving."""
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", *flags])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "READY" not in out
    assert f"argument {flags[0]}: " in err, err
