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


def test_a_record_that_cannot_be_formatted_is_left_to_the_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A log call whose arguments do not fit its format (a bug in a log line, or a
    plugin logging on the SDK's logger): logging reports it on stderr and the code that
    logged goes on.  On 748ad8c the filter formatted the record itself and the
    TypeError came out of ``logger.warning``, into the request path.  The arguments
    that report prints are masked."""
    logger = logging.getLogger("opentrain_async")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = (
        logger.propagate,
        False,
    )  # pytest's own capture handler raises on a logging error
    secret = "ot_pat_bad_format_S3CRET"
    try:
        client = OpenTrainClient(secret, "https://app.opentrain.ai", env={})
        logger.warning("count %d of %s", secret)  # on 748ad8c: TypeError raised here
        del client
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        gc.collect()
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert secret not in err


def test_a_collected_client_s_token_is_no_longer_masked() -> None:
    """The forms are kept current when a client goes (not rebuilt per record): a
    short token must not mask a common word for the rest of the process."""
    logger = logging.getLogger("opentrain_async")
    handler = _Keep()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        client = OpenTrainClient("rainfall", "https://app.opentrain.ai", env={})
        logger.warning("%s", "rainfall today")
        del client
        gc.collect()
        logger.warning("%s", "rainfall today")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.getMessage() for r in handler.records] == ["*** today", "rainfall today"]
