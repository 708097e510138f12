"""The testing kit as users meet it: FakeTime, the pytest plugin, the README's example test."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient, RateLimitError
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .cli_helpers import ROOT

README = ROOT / "docs" / "testing.md"  # the guide "Testing your bot"


# ---------------------------------------------------------------- FakeTime


async def test_fake_sleep_advances_the_clocks_by_exactly_the_wait() -> None:
    """One sleep moves the monotonic and the wall clock together, by the wait."""
    time = FakeTime()
    clock, wall, stamp = time.clock(), time.time(), time.datetime()
    await time.sleep(1.5)
    assert time.clock() - clock == 1.5
    assert time.time() - wall == pytest.approx(1.5)
    assert (time.datetime() - stamp).total_seconds() == pytest.approx(1.5)
    assert time.sleeps == [1.5]
    assert time.elapsed == 1.5


async def test_concurrent_sleeps_overlap_and_wake_in_deadline_order() -> None:
    """Tasks sleeping at once wake at their own deadlines, earliest first; time does not sum."""
    time = FakeTime()
    woke: list[tuple[str, float]] = []

    async def nap(name: str, seconds: float) -> None:
        await time.sleep(seconds)
        woke.append((name, time.elapsed))

    await asyncio.gather(nap("long", 5.0), nap("short", 1.0), nap("mid", 2.0))
    assert woke == [("short", 1.0), ("mid", 2.0), ("long", 5.0)]
    assert time.elapsed == 5.0
    assert time.slept == 8.0


async def test_a_cancelled_sleeper_does_not_hold_up_the_others() -> None:
    """Cancelling one sleep leaves the rest waking, and the clock never jumps to its deadline."""
    time = FakeTime()
    doomed = asyncio.ensure_future(time.sleep(100.0))
    other = asyncio.ensure_future(time.sleep(2.0))
    await asyncio.sleep(0)
    doomed.cancel()
    await other
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert time.elapsed == 2.0


async def test_zero_and_negative_sleeps_still_yield_to_the_loop() -> None:
    """sleep(0) lets other tasks run (like asyncio.sleep(0)) and a negative wait is zero."""
    time = FakeTime()
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.ensure_future(other())
    await time.sleep(-3)
    assert ran == ["other"]
    assert time.elapsed == 0.0
    await task


def test_time_cannot_go_backwards_and_needs_an_aware_start() -> None:
    """advance() refuses negative steps; a naive wall_start is refused at once."""
    with pytest.raises(ValueError, match="backwards"):
        FakeTime().advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeTime(wall_start=__import__("datetime").datetime(2026, 1, 1))


async def test_plugin_fixtures_share_one_fake_time(
    fake_opentrain: FakeOpenTrain, opentrain_client: OpenTrainClient, fake_time: FakeTime
) -> None:
    """A 429 hint is waited in fake time, and the message's stamp is the fake wall clock."""
    conv = fake_opentrain.add_conversation()
    fake_opentrain.throttle_next(1, retry_after=30)
    before = fake_time.datetime()
    message = await opentrain_client.send_message(conv, "after the hint")
    assert fake_time.sleeps[0] >= 30
    assert (message.created_at - before).total_seconds() >= 30
    assert fake_opentrain.sends[-1].received_at - fake_opentrain.sends[0].received_at >= 30


async def test_plugin_client_still_gives_up_on_a_too_long_hint(
    fake_opentrain: FakeOpenTrain, opentrain_client: OpenTrainClient, fake_time: FakeTime
) -> None:
    """Fake time changes no decision: a hint above max_retry_after still raises at once."""
    conv = fake_opentrain.add_conversation()
    fake_opentrain.throttle_next(1, retry_after=600)
    with pytest.raises(RateLimitError):
        await opentrain_client.send_message(conv, "too long")
    assert fake_time.sleeps == []


# ---------------------------------------------------------------- as a user's project


def _readme_block(first_line: str) -> str:
    """The README's python block that starts with `first_line`."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n(" + re.escape(first_line) + r"\n.*?)```", text, re.S)
    assert match is not None, f"README has no python block starting {first_line!r}"
    return match.group(1)


async def _pytest_in(project: Path) -> tuple[int, str]:
    """Run pytest in `project` as a user would, isolated from this repository's config."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
        "--rootdir",
        str(project),
        cwd=project,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.process
async def test_readme_example_test_passes_in_a_fresh_project(tmp_path: Path) -> None:
    """The README's conftest and test, copied into a project with no pytest-asyncio settings,
    pass with warnings as errors."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "conftest.py").write_text(_readme_block("# conftest.py"), encoding="utf-8")
    (tmp_path / "test_announce.py").write_text(
        _readme_block("# test_announce.py"), encoding="utf-8"
    )
    code, out = await _pytest_in(tmp_path)
    assert code == 0, out
    assert "1 passed" in out


@pytest.mark.process
async def test_a_users_explicit_strict_mode_is_respected(tmp_path: Path) -> None:
    """asyncio_mode = strict in the user's ini stays strict: unmarked async tests are not run
    by pytest-asyncio, marked ones are."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    (tmp_path / "conftest.py").write_text(_readme_block("# conftest.py"), encoding="utf-8")
    (tmp_path / "test_modes.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.asyncio\nasync def test_marked(fake_time):\n"
        "    await fake_time.sleep(5)\n    assert fake_time.elapsed == 5\n\n"
        "async def test_unmarked():\n    pass\n",
        encoding="utf-8",
    )
    code, out = await _pytest_in(tmp_path)
    assert code != 0
    assert "test_unmarked" in out
    assert "1 passed" in out
