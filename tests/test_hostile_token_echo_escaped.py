"""A server echoing the Authorization header in a JSON error spelled with ``\\uXXXX``
escapes (some encoders escape ``&``, ``<`` or every non-letter; a hostile one, all):
the raw bytes hold no token, the parsed ``.message`` does.  It must be masked there too
(README "Secrets": never in an exception chain or a log record)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from aiohttp import web

from opentrain_async import OpenTrainError, RetryEvent, RetryPolicy

from .test_hostile import SECRETS, Arena, arena, caught, find_secrets

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


def every_character(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def letters_only(text: str) -> str:
    """Letters kept, everything else escaped (``_`` as ``\\u005f``: a partial echo)."""
    return "".join(c if c.isalpha() else f"\\u{ord(c):04x}" for c in text)


SPELLINGS: dict[str, Callable[[str], str]] = {
    "every character escaped": every_character,
    "only non-letters escaped": letters_only,
}


@pytest.mark.parametrize("status", [400, 429, 500])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
async def test_an_escaped_echo_of_the_token_is_masked(
    arena: Arena, status: int, spelling: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opentrain_async")
    spell = SPELLINGS[spelling]

    async def answer(request: web.Request) -> web.StreamResponse:
        echo = spell(request.headers["Authorization"])
        body = (
            f'{{"error": "invalid header: {echo}", "code": "BAD_REQUEST", '
            f'"requestId": "{echo}", "details": {{"reason": "{echo}"}}}}'
        )
        return web.Response(status=status, text=body, content_type="application/json")

    arena.hostile.handler = answer
    events: list[RetryEvent] = []

    async def no_wait(seconds: float) -> None:
        return None

    policy = RetryPolicy(max_retries=1, sleep=no_wait, on_retry=events.append)
    async with arena.client(retry_policy=policy) as client:
        errors = [
            await caught(client.whoami()),
            await caught(client.send_message("conv_1", "hi")),
        ]
    errors += [event.error for event in events]
    for error in errors:
        assert isinstance(error, OpenTrainError)
        assert list(find_secrets(error)) == [], error
    first = errors[0]
    assert isinstance(first, OpenTrainError)
    assert first.message == "invalid header: Bearer ***"  # the server's text, token masked
    assert first.request_id == "Bearer ***"
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in SECRETS)


async def test_an_escaped_echo_beside_a_lone_surrogate_is_masked(arena: Arena) -> None:
    """A body no strict decoder reads (a lone ``\\ud800``) still loses the escaped token:
    the error quotes the start of the page, and never the token."""

    async def answer(request: web.Request) -> web.StreamResponse:
        echo = every_character(request.headers["Authorization"])
        body = f'{{"error": "\\ud800 {echo}"}}'
        return web.Response(status=400, text=body, content_type="application/json")

    arena.hostile.handler = answer
    async with arena.client() as client:
        error = await caught(client.whoami())
    assert list(find_secrets(error)) == [], error
