"""Configuration a careless user writes: base URLs, cli.json files, rates and concurrency;
each an OpenTrainError naming what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opentrain_async import (
    ConfigurationError,
    OpenTrainClient,
    Pacer,
)
from opentrain_async._config import resolve_settings

from .cli_helpers import assert_one_line_error, cli_env, run_cli
from .test_hostile import Arena, arena

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


# -- configuration a careless user writes --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1",  # an unclosed IPv6 bracket: was a raw ValueError from urlsplit
        "https://app.opentrain.ai?",  # an empty query: the API path went into the query
        "https://app.opentrain.ai#",  # an empty fragment: every request went to /
        "https://app.opentrain.ai:0",  # port 0: fails on every request
    ],
)
def test_a_base_url_that_cannot_work_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base URL"):
        OpenTrainClient("tok_abc", url, env={})


async def test_an_unclosed_ipv6_base_url_is_one_line_in_the_cli(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path, OT_API_TOKEN="tok_abc", OT_API_BASE_URL="https://[::1")
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 3
    assert_one_line_error(result)


def _cli_file(tmp_path: Path) -> Path:
    path = tmp_path / "opentrain" / "cli.json"
    path.parent.mkdir(parents=True)
    return path


def test_a_cli_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Saved by Notepad as "UTF-8 with BOM": read, not "not valid JSON"."""
    path = _cli_file(tmp_path)
    path.write_bytes(b'\xef\xbb\xbf{"apiToken": "tok_from_file"}')
    path.chmod(0o600)
    assert resolve_settings(env={}, config_path=path).token == "tok_from_file"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_cli_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    """A FIFO used to hang every client construction; /dev/zero read until MemoryError."""
    path = _cli_file(tmp_path)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        resolve_settings(env={}, config_path=path)


# -- argument errors are OpenTrainErrors too ------------------------------------------------


@pytest.mark.parametrize("rate", [0, -5, float("nan")])
def test_a_rate_limit_that_is_not_positive_is_a_configuration_error(rate: float) -> None:
    """Was the pacer's raw ValueError (not an OpenTrainError)."""
    with pytest.raises(ConfigurationError, match="rate_limit"):
        OpenTrainClient("tok_abc", env={}, rate_limit=rate)


@pytest.mark.parametrize("rate", [1e-300, 5e-324, 1e-7])
def test_a_rate_limit_too_slow_to_mean_anything_is_refused(rate: float) -> None:
    """rate_limit=1e-300 was taken: the first send went, every later one waited for ever,
    silently.  The slowest taken is one message per 11.6 days."""
    with pytest.raises(ConfigurationError, match=r"rate_limit.*>= 1e-06"):
        OpenTrainClient("tok_abc", env={}, rate_limit=rate)
    with pytest.raises(ConfigurationError, match=r"rate_limit.*>= 1e-06"):
        Pacer(rate_limit=rate)


def test_one_message_an_hour_is_still_a_rate_limit() -> None:
    assert Pacer(rate_limit=1 / 3600).rate_limit == 1 / 3600


async def test_a_bulk_concurrency_below_one_is_a_configuration_error(arena: Arena) -> None:
    """send_many/send_all(concurrency=0) raised a raw ValueError; nothing is sent."""
    async with arena.client() as client:
        with pytest.raises(ConfigurationError, match="concurrency"):
            client.send_many([("conv_1", "hi")], concurrency=0)
        with pytest.raises(ConfigurationError, match="concurrency"):
            await client.send_all([("conv_1", "hi")], concurrency=-1)
    assert arena.hostile.requests == []
