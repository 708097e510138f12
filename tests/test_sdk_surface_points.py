"""Small points of the public surface: what survives pickling of an unknown outcome, and
what ``__all__`` offers."""

from __future__ import annotations

import pickle

import opentrain_async
from opentrain_async import APITimeoutError, DeliveryUnknownError, configure_logging_from_env


def test_delivery_unknown_keeps_its_causes_type_and_message_across_pickling() -> None:
    """``__cause__`` does not survive pickle (arq, multiprocessing); the cause's type and
    message do, on the error itself."""
    cause = APITimeoutError("Request timed out after 10s", method="POST", path="/messages")
    error = DeliveryUnknownError("outcome unknown", cause=cause, conversation_id="conv_1")
    back = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert back.__cause__ is None
    assert (back.cause_type, back.cause_message) == ("APITimeoutError", cause.message)
    assert back.conversation_id == "conv_1"


def test_delivery_unknown_from_a_plain_exception_and_from_none() -> None:
    """A non-SDK cause keeps its class name and text; no cause leaves both None."""
    error = DeliveryUnknownError("x", cause=ConnectionResetError("peer reset"))
    back = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (back.cause_type, back.cause_message) == ("ConnectionResetError", "peer reset")
    bare = pickle.loads(pickle.dumps(DeliveryUnknownError("x")))  # noqa: S301 - our own bytes
    assert (bare.cause_type, bare.cause_message) == (None, None)


def test_configure_logging_from_env_is_public() -> None:
    """The documented switch for ``$OPENTRAIN_LOG`` is in ``__all__``."""
    assert "configure_logging_from_env" in opentrain_async.__all__
    assert configure_logging_from_env({}) is None
