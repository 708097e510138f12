"""A webhook secret or body of the wrong kind is an OpenTrainError, still a TypeError.

``verify_webhook_signature(os.environ.get("OT_WEBHOOK_SECRET"), ...)`` with the variable
missing passed None and met a bare ``TypeError``, while an empty secret was already a
``ConfigurationError``; a body already parsed (``await request.json()``) likewise.
"""

from __future__ import annotations

import pytest

from opentrain_async import ConfigurationError, verify_webhook_signature

HEADER = "t=1,v1=" + "0" * 64


@pytest.mark.parametrize(
    ("secret", "body", "named"),
    [(None, b"{}", "secret"), (5, b"{}", "secret"), ("s3cret", {"id": 1}, "raw_body"),
     ("s3cret", None, "raw_body")],
)  # fmt: skip
def test_a_secret_or_body_of_the_wrong_kind_is_a_configuration_error(
    secret: object, body: object, named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        verify_webhook_signature(secret, body, HEADER)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)


def test_an_on_event_that_is_not_callable_is_refused_at_construction() -> None:
    """Accepted, every delivery failed in the handler and OpenTrain retried it."""
    from opentrain_async import webhook_handler

    with pytest.raises(ConfigurationError, match="on_event"):
        webhook_handler("s3cret", "handle_event")  # type: ignore[arg-type]
