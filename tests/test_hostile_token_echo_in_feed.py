"""An /updates page whose malformed event's id echoes the Authorization header: the
WARNING saying the event was skipped quotes the id (cut to 40 characters, which a
token fits in).  README "Secrets": never in a log record.  On 76ca173 the token was in
the record; every SDK record is now masked while the client lives (``_log_secrets``)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from .test_hostile import SECRETS, Arena, arena

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


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


async def test_an_echoed_token_in_a_log_record_s_fields_is_masked(
    arena: Arena, caplog: pytest.LogCaptureFixture
) -> None:
    """The JSON log format writes a record's ``extra=`` fields: they are masked too."""
    caplog.set_level(logging.DEBUG, logger="opentrain_async")
    async with arena.client() as client:
        token = client._settings.token
        logging.getLogger("opentrain_async").info(
            "answer %s", token, extra={"request_id": f"req-{token}"}
        )
    (record,) = [r for r in caplog.records if r.getMessage().startswith("answer")]
    assert record.getMessage() == "answer ***"
    assert record.request_id == "req-***"  # type: ignore[attr-defined]
