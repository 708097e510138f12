"""The edge of the signature's tolerance, counted as the official ``opentrain-ai``
verifier counts it: whole seconds (``int(time.time())``).  A delivery signed 300 s
before ``now = t + 300.5`` is accepted there, and was refused here as stale."""

from __future__ import annotations

import pytest

from opentrain_async import (
    WebhookVerificationError,
    sign_webhook_payload,
    verify_webhook_signature,
)

BODY = b'{"id":"evt_1","type":"message.received"}'
T = 1_781_000_000


@pytest.mark.parametrize("offset", [300.0, 300.5, 300.999, -299.5, -300.0])
def test_the_official_verifiers_whole_seconds_are_accepted(offset: float) -> None:
    header = sign_webhook_payload("whsec", BODY, timestamp=T)
    assert verify_webhook_signature("whsec", BODY, header, now=T + offset) == T


@pytest.mark.parametrize("offset", [301.0, 301.5, -300.5, -301.0, float("inf"), float("-inf")])
def test_past_the_tolerance_is_stale(offset: float) -> None:
    header = sign_webhook_payload("whsec", BODY, timestamp=T)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook_signature("whsec", BODY, header, now=T + offset)
    assert caught.value.reason == "stale"
