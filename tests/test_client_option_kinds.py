"""An option of the wrong kind fails at construction as a ``ConfigurationError`` naming it.

The README promises it for every option; these slipped through: a string where a pacer,
backend, policy or callable goes (an ``AttributeError``/``TypeError`` at construction, or
accepted and failing on the first retry or send), ``pacing_fail_closed="no"`` (truthy:
fail closed), ``trust_env="no"`` (truthy: proxies used), and an ``aiohttp.ClientTimeout``
with a negative field (aiohttp reads it as no timeout at all).  Each is tried flat and
in its group, as a careless caller writes it (values read from the environment).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from opentrain_async import (
    ConfigurationError,
    OpenTrainClient,
    PacingOptions,
    RetryOptions,
    TimeOptions,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

_TIME = FakeTime()

WRONG: list[tuple[str, dict[str, Any]]] = [
    ("pacing_backend", {"pacing_backend": "redis://h:6379/0"}),
    ("pacing_backend", {"pacing": PacingOptions(backend=object())}),  # type: ignore[arg-type]
    ("pacer", {"pacer": "fast"}),
    ("retry_policy", {"retry_policy": "exponential"}),
    ("retry_policy", {"retries": RetryOptions(policy={"max_retries": 2})}),  # type: ignore[arg-type]
    ("on_retry", {"on_retry": "print"}),
    ("on_retry", {"retries": RetryOptions(on_retry=5)}),  # type: ignore[arg-type]
    ("clock", {"clock": "monotonic", "sleep": _TIME.sleep}),
    ("sleep", {"clock": _TIME.clock, "sleep": 0.1}),
    ("wall_clock", {"wall_clock": "time"}),
    ("wall_clock", {"time": TimeOptions(wall_clock=1.5)}),  # type: ignore[arg-type]
    ("pacing_fail_closed", {"pacing_fail_closed": "no"}),
    ("pacing_fail_closed", {"pacing": PacingOptions(fail_closed=1)}),  # type: ignore[arg-type]
    ("reconcile", {"reconcile": "false"}),
    ("log_content", {"log_content": "no"}),
    ("trust_env", {"trust_env": "no"}),
    ("session", {"session": "aiohttp"}),
    ("config_path", {"config_path": 5}),
    ("timeout", {"timeout": aiohttp.ClientTimeout(total=-1)}),
    ("timeout", {"time": TimeOptions(timeout=aiohttp.ClientTimeout(sock_read=math.nan))}),
]


@pytest.mark.parametrize(
    ("name", "options"), WRONG, ids=[f"{n}-{i}" for i, (n, _) in enumerate(WRONG)]
)
def test_a_wrong_kind_of_option_is_refused_naming_it(name: str, options: dict[str, Any]) -> None:
    """A ConfigurationError (an OpenTrainError) naming the option, never an
    AttributeError, a TypeError, or a client that fails later."""
    with pytest.raises(ConfigurationError, match=name):
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", env={}, **options)


async def test_the_right_kinds_are_still_taken(tmp_path: Path) -> None:
    """Callables of any kind, a path as a string, booleans, a ClientTimeout with fields
    left None or 0: all accepted."""

    class Clock:
        def __call__(self) -> float:
            return 0.0

    client = OpenTrainClient(
        "ot_pat_x",
        "http://127.0.0.1:9",
        env={},
        on_retry=print,
        clock=Clock(),
        sleep=_TIME.sleep,
        wall_clock=_TIME.time,
        pacing_fail_closed=None,
        reconcile=True,
        log_content=False,
        trust_env=False,
        config_path=str(tmp_path / "cli.json"),  # type: ignore[arg-type]
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=0, sock_read=2.5),
    )
    await client.close()


async def test_a_bad_client_timeout_is_refused_per_call_and_in_a_copy(
    server: FakeOpenTrain,
) -> None:
    """``with_options(timeout=...)`` and a call's own ``timeout=`` take the same check."""
    conv = server.add_conversation()
    bad = aiohttp.ClientTimeout(total=-1)
    async with OpenTrainClient(server.token, server.base_url, env={}) as client:
        with pytest.raises(ConfigurationError, match="timeout"):
            client.with_options(timeout=bad)
        with pytest.raises(ConfigurationError, match="timeout"):
            await client.send_message(conv, "hi", timeout=bad)
    assert server.stats()["sends"] == 0


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("max_retires", "max_retries"), ("rate_limt", "rate_limit"), ("pacingurl", "pacing_url")],
)
def test_a_misspelt_keyword_is_an_opentrain_error_naming_the_one_meant(
    typo: str, meant: str
) -> None:
    """Every failure a caller meets is an ``OpenTrainError``: a misspelt keyword is a
    ``ConfigurationError`` that is still the ``TypeError`` any signature raises, and
    names the keyword the caller most likely meant."""
    with pytest.raises(ConfigurationError, match=f"did you mean {meant}=") as caught:
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", env={}, **{typo: 3})
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize("url", [None, "", "  "], ids=["no-url", "empty", "blank"])
def test_fail_closed_without_a_shared_state_is_refused(url: str | None) -> None:
    """``pacing_fail_closed=True`` says "never send without the shared state"; with no
    ``pacing_url`` and no ``$OT_PACING_URL`` (a deploy that lost its variable) it was
    ignored and the client paced alone, the very thing it was asked never to do."""
    with pytest.raises(ConfigurationError, match="pacing_fail_closed"):
        OpenTrainClient(
            "ot_pat_x", "http://127.0.0.1:9", env={}, pacing_url=url, pacing_fail_closed=True
        )
    OpenTrainClient(
        "ot_pat_x", "http://127.0.0.1:9", env={}, pacing_url=url, pacing_fail_closed=False
    )
