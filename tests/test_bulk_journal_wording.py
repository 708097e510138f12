"""``send_all(journal=...)`` errors speak the SDK's words, not the command line's.

A journal reused for a job sent to another API told an SDK caller to "pass
--reuse-journal ... or use another --journal": flags ``send_all`` does not have.  The
advice is now what the caller can do: give this job another ``journal=``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async import JobJournalError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


async def test_a_journal_of_another_api_is_refused_in_the_sdks_words(tmp_path: Path) -> None:
    journal = str(tmp_path / "batch.journal")
    async with FakeOpenTrain() as staging, FakeOpenTrain() as production:
        for server in (staging, production):
            server.add_conversation("conv_1")
        async with OpenTrainClient(staging.token, staging.base_url, env={}) as client:
            report = await client.send_all([("conv_1", "hello")], journal=journal)
            assert report.sent == 1
        async with OpenTrainClient(production.token, production.base_url, env={}) as client:
            with pytest.raises(JobJournalError) as caught:
                await client.send_all([("conv_1", "hello")], journal=journal)
        assert production.stats()["sends"] == 0
    message = str(caught.value)
    assert "--" not in message, message
    assert "journal=" in message, message
