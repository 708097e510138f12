"""The fake server as a product: setup visible in help(), the stats endpoint with every
documented counter, and out-of-process scenarios from flags or a JSON file."""

from __future__ import annotations

import argparse
import asyncio
import json
import pydoc
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from opentrain_async import (
    ConflictError,
    NotFoundError,
    OpenTrainClient,
    PermissionDeniedError,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime
from opentrain_async.testing.__main__ import _parser, apply_scenario, load_scenario

from .cli_helpers import ROOT

SETUP = (
    "add_conversation",
    "add_incoming_message",
    "add_token",
    "add_event",
    "add_proposal",
    "block_content",
    "set_rate_limit",
    "messages",
)


def test_setup_methods_show_in_help() -> None:
    """``help(FakeOpenTrain)`` lists each setup method with its signature and docstring."""
    text = pydoc.render_doc(FakeOpenTrain, renderer=pydoc.plaintext)
    for name in SETUP:
        # Python 3.13's pydoc wraps a long signature after the parenthesis.
        assert re.search(rf"^ \|  {name}\((?:\n \|\s+)?self,", text, re.M), name
    assert "Create a conversation and return its id." in text


def test_every_counter_of_stats_is_documented() -> None:
    """docs/testing.md explains each key ``stats()`` returns, and no other."""
    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    table = doc.split("## The stats", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert documented == set(FakeOpenTrain().stats())


async def test_duplicates_counts_pairs_stored_more_than_once() -> None:
    """Three copies of one (conversation, content) pair are one duplicate and two extra
    copies (committed - distinct), as documented."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock, now=t.datetime) as server:
        cid = server.add_conversation()
        async with OpenTrainClient(server.token, server.base_url) as client:
            for _ in range(3):
                await client.send_message(cid, "same")
            await client.send_message(cid, "other")
        stats = server.stats()
    assert (stats["committed"], stats["distinct"], stats["duplicates"]) == (4, 2, 1)


def _scenario(tmp_path: Path, body: object, *flags: str) -> dict[str, object]:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return load_scenario(_parser().parse_args(["--scenario", str(path), *flags]))


async def test_a_scenario_file_and_flags_set_up_what_a_bot_must_cope_with(
    tmp_path: Path,
) -> None:
    """Read-only (409), policy-blocked (403), missing (404) and rate-limited (429 then
    delivered) conversations, from the file and the flags together."""
    scenario = _scenario(
        tmp_path,
        {"readOnly": ["conv_ro"], "policyBlocked": ["forbidden"], "missing": ["conv_0002"]},
        "--read-only",
        "conv_0003",
        "--rate-limited",
        "2",
        "--rate-limited-retry-after",
        "0.5",
    )
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock, now=t.datetime) as server:
        created = apply_scenario(server, scenario, 3)
        assert created == ["conv_0001", "conv_0003", "conv_ro"]
        async with OpenTrainClient(
            server.token, server.base_url, clock=t.clock, sleep=t.sleep
        ) as client:
            await client.send_message("conv_0001", "fine")  # two 429s first
            assert server.stats()["rate_limited"] == 2
            for cid in ("conv_ro", "conv_0003"):
                with pytest.raises(ConflictError) as read_only:
                    await client.send_message(cid, "x")
                assert read_only.value.reason == "read_only_conversation"
            with pytest.raises(PermissionDeniedError) as blocked:
                await client.send_message("conv_0001", "a forbidden word")
            assert blocked.value.reason == "message_policy_blocked"
            with pytest.raises(NotFoundError):
                await client.send_message("conv_0002", "x")
    assert t.elapsed >= 1.0


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"readonly": ["c"]}, "unknown key 'readonly'"),
        ({"readOnly": "conv_1"}, "readOnly must be a list of strings"),
        ({"rateLimited": {"next": "2"}}, "rateLimited must be"),
        ([1], "must be a JSON object"),
    ],
)
def test_a_bad_scenario_names_what_is_wrong(tmp_path: Path, body: object, named: str) -> None:
    """A typo or a wrong type in the scenario file is refused, naming the key."""
    with pytest.raises(ValueError, match=re.escape(named)):
        _scenario(tmp_path, body)


@pytest.mark.process
async def test_out_of_process_scenario_and_stats_endpoint(tmp_path: Path) -> None:
    """``python -m opentrain_async.testing --read-only ...`` serves the scenario, and
    ``GET /__fake__/stats`` counts what happened; a bad scenario exits 2 naming it."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"readOnlyy": []}', encoding="utf-8")
    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opentrain_async.testing",
        "--scenario",
        str(bad),
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    _, err = await asyncio.wait_for(refused.communicate(), 60)
    assert refused.returncode == 2
    assert "unknown key 'readOnlyy'" in err.decode()

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opentrain_async.testing",
        "--port",
        "0",
        "--read-only",
        "conv_0001",
        "--conversations",
        "2",
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        _, base_url, token = line
        async with OpenTrainClient(token, base_url) as client:
            with pytest.raises(ConflictError):
                await client.send_message("conv_0001", "x")
            await client.send_message("conv_0002", "y")
        async with aiohttp.ClientSession() as session:
            async with session.get(base_url + "/__fake__/stats") as answer:
                stats = await answer.json()
            async with session.get(base_url + "/__fake__/info") as answer:
                info = await answer.json()
        assert (stats["sends"], stats["committed"], stats["duplicates"]) == (2, 1, 0)
        assert info["scenario"]["readOnly"] == ["conv_0001"]
    finally:
        proc.terminate()
        await proc.wait()


def test_scenario_flags_are_in_the_help() -> None:
    """``--help`` shows every scenario flag."""
    text = _parser().format_help()
    for flag in ("--scenario", "--read-only", "--policy-blocked", "--missing", "--rate-limited"):
        assert flag in text
    assert isinstance(_parser().parse_args([]), argparse.Namespace)
