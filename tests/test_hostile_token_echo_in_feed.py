"""An /updates page whose malformed event's id echoes the Authorization header: the
WARNING saying the event was skipped quotes the id (cut to 40 characters, which a
token fits in).  README "Secrets": never in a log record.  Known gap on the read side,
kept as a strict xfail (see the reason)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from .test_hostile import SECRETS, Arena, arena

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


@pytest.mark.xfail(
    strict=True,
    reason=(
        "the read side's log lines (_read_models' skipped-event warnings, listen()'s "
        "message and event ids) quote the server's ids without the token to mask them "
        "with: threading the client's token there, or a filter on the opentrain_async "
        "logger masking live clients' tokens, is a design choice left to the lead"
    ),
)
async def test_a_skipped_event_s_warning_never_holds_the_token(
    arena: Arena, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opentrain_async")

    async def answer(request: web.Request) -> web.StreamResponse:
        auth = request.headers["Authorization"]
        event = {"id": auth, "type": 5}  # no readable type: skipped with a WARNING
        return web.json_response({"events": [event], "nextCursor": "8", "hasMore": False})

    arena.hostile.handler = answer
    async with arena.client() as client:
        page = await client.get_updates()
    assert page.events == ()
    assert any("skipped" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in SECRETS)
