"""Answers compressed although the request said ``Accept-Encoding: identity``: a small
one is read as usual, and a compression bomb (32 MiB of zeros in about 32 KB) is cut
at ``max_response_bytes`` as it is decompressed, never inflated whole.  These held on
76ca173; nothing else tested compressed answers."""

from __future__ import annotations

import json
import zlib

import pytest
from aiohttp import web

from opentrain_async import DeliveryUnknownError, UnexpectedResponseError

from .loopback import stamp
from .test_hostile import MESSAGE, Arena, arena, caught

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile

WBITS = {"gzip": 31, "deflate": 15}


def compressed(data: bytes, encoding: str, repeat: int = 1) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, WBITS[encoding])
    return b"".join(packer.compress(data) for _ in range(repeat)) + packer.flush()


def answering(body: bytes, encoding: str, status: int) -> web.Response:
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    return web.Response(status=status, body=body, headers=headers)


@pytest.mark.parametrize("encoding", list(WBITS))
async def test_a_compressed_answer_is_read(arena: Arena, encoding: str) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        sent = json.loads(await request.read())
        body = {**MESSAGE, "message": {**MESSAGE["message"], "createdAt": stamp(), **sent}}
        return answering(compressed(json.dumps(body).encode(), encoding), encoding, 201)

    arena.hostile.handler = answer
    async with arena.client() as client:
        message = await client.send_message("conv_1", "hi")
    assert message.id == "msg_elsewhere"
    assert arena.hostile.requests[0][2]["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("encoding", list(WBITS))
async def test_a_compression_bomb_is_cut_at_the_cap(arena: Arena, encoding: str) -> None:
    bomb = compressed(b"\0" * (1 << 20), encoding, repeat=32)  # 32 MiB inflated, 32x the cap
    assert len(bomb) < 1 << 16

    async def answer(request: web.Request) -> web.StreamResponse:
        return answering(bomb, encoding, 201 if request.method == "POST" else 200)

    arena.hostile.handler = answer
    async with arena.client(max_response_bytes=1_000_000) as client:
        read = await caught(client.whoami(), UnexpectedResponseError)
        sent = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    assert "1,000,000 bytes" in str(read)
    assert isinstance(sent.__cause__, UnexpectedResponseError)  # probably committed
