"""A careless user's short token ("async", "WARN": a dev server's, a placeholder) is a
substring of the SDK's logger name or a level name.  On 748ad8c the log filter that masks
live clients' tokens masked every string attribute of a record, its origin too: the
record's ``name`` became ``opentrain_***`` (a handler's ``logging.Filter
("opentrain_async")`` then dropped every SDK record) and ``levelname`` ``***ING``.
Only what can quote the server (the message, ``extra=`` fields, ``exc_text``,
``stack_info``) is masked now; the token is still masked there."""

from __future__ import annotations

import gc
import logging

import pytest

from opentrain_async import OpenTrainClient


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("token", ["async", "WARN", "rain"])
def test_a_short_token_never_mangles_a_record_s_origin(token: str) -> None:
    logger = logging.getLogger("opentrain_async")
    handler = _Keep()
    handler.addFilter(logging.Filter("opentrain_async"))  # an operator's routing
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        client = OpenTrainClient(token, "https://app.opentrain.ai", env={})
        logger.warning("answer %s", f"echo {token}", extra={"request_id": f"r-{token}"})
        del client
    finally:
        gc.collect()  # the token's registration ends with its client
        logger.removeHandler(handler)
        logger.setLevel(level)
    (record,) = handler.records  # on 748ad8c: none, the name no longer matched
    assert (record.name, record.levelname) == ("opentrain_async", "WARNING")
    assert record.funcName == "test_a_short_token_never_mangles_a_record_s_origin"
    assert record.getMessage() == "answer echo ***"
    assert record.request_id == "r-***"  # type: ignore[attr-defined]
