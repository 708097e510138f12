"""Webhook verification's ``now``: a value that is not a time is refused."""

from __future__ import annotations

from typing import Any

import pytest

from opentrain_async import (
    ConfigurationError,
    WebhookVerificationError,
    sign_webhook_payload,
    verify_webhook_signature,
)

from .test_hostile import arena

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


# -- webhooks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("now", [float("nan"), "1700000000", None])
def test_a_now_that_is_not_a_time_is_refused(now: Any) -> None:
    """``now=NaN`` (or a clock returning NaN) let a signature from 1970 pass as fresh, as a
    NaN tolerance did; a string was a raw TypeError.  ``None`` means the real clock."""
    body = b'{"id": "evt_1", "type": "x", "createdAt": "2026-01-01T00:00:00Z", "data": {}}'
    header = sign_webhook_payload("whsec_test", body, timestamp=1)
    if now is None:
        with pytest.raises(WebhookVerificationError, match="stale"):
            verify_webhook_signature("whsec_test", body, header)
        return
    with pytest.raises(ConfigurationError, match="now must be"):
        verify_webhook_signature("whsec_test", body, header, now=now)
