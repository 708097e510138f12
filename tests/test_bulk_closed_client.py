"""A batch on a closed client stops like a doomed batch; not-attempted outcomes chain the
refusal."""

from __future__ import annotations

from collections import Counter

import pytest

from opentrain_async import (
    AuthenticationError,
    ConfigurationError,
    NotAttemptedError,
    OpenTrainClient,
)
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import ROOT

# -- a closed client, a with_options copy of one --------------------------------------------


@pytest.mark.parametrize("via", ["client", "copy"])
async def test_a_batch_on_a_closed_client_stops_like_a_doomed_batch(
    server: FakeOpenTrain, via: str
) -> None:
    """``send_all`` on a closed client (or a ``with_options`` copy of one): every input is
    accounted for, the first with the ConfigurationError that says why and the rest
    ``not_attempted`` with it as the cause, instead of 500 separate "error" failures."""
    conv = server.add_conversation()
    client = OpenTrainClient(server.token, server.base_url)
    copy_ = client.with_options(timeout=5)
    await client.close()
    sender = client if via == "client" else copy_
    report = await sender.send_all((conv, f"m{i}") for i in range(500))
    assert (report.total, report.sent) == (500, 0)
    kinds = Counter(o.kind for o in report.failures)
    assert kinds["error"] <= 4  # at most the workers already past the check
    assert kinds["error"] + kinds["not_attempted"] == 500
    assert isinstance(report.failures[0].error, ConfigurationError)
    not_attempted = next(o for o in report.failures if o.kind == "not_attempted")
    assert isinstance(not_attempted.error, NotAttemptedError)
    assert isinstance(not_attempted.error.__cause__, ConfigurationError)
    assert "closed" in str(not_attempted.error)
    assert server.sends == []


async def test_a_doomed_batch_s_not_attempted_outcomes_chain_the_refusal(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """What the README tells a bulk job to read: a 401 stops the batch and every later
    outcome's ``NotAttemptedError.__cause__`` is that refusal (the README said ``.cause``,
    which issue 11 removed: an AttributeError in the job's reporting code)."""
    convs = [server.add_conversation() for _ in range(20)]
    server.script("POST /messages", status=401, times=1000)
    report = await client.send_all(((c, "hi") for c in convs), concurrency=1)
    assert report.counts["unauthorized"] == 1
    assert report.counts["not_attempted"] == 19
    not_attempted = [o.error for o in report.failures if o.kind == "not_attempted"]
    assert all(isinstance(e, NotAttemptedError) for e in not_attempted)
    assert all(isinstance(e.__cause__, AuthenticationError) for e in not_attempted)
    assert not hasattr(not_attempted[0], "cause")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`.cause`" not in readme
