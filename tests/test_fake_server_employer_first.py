"""The fake's proposal threads follow the spec's employer-first rule on sends too: "409
CONFLICT ... employer_first_message_required (candidate replying before the employer's
first message)".  On main the fake enforced it only on opening the thread, so a
candidate-side bot's test that wrote first passed against the fake and would meet 409
against OpenTrain."""

from __future__ import annotations

import pytest

from opentrain_async import ConflictError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

CANDIDATE = "ot_pat_candidate_0001"


async def test_the_candidate_cannot_write_before_the_employer(server: FakeOpenTrain) -> None:
    server.add_token(CANDIDATE, user_id="user_candidate")
    server.add_proposal("prop_1", candidate_user_id="user_candidate")
    async with (
        OpenTrainClient(server.token, server.base_url) as employer,
        OpenTrainClient(CANDIDATE, server.base_url) as candidate,
    ):
        thread = await employer.start_proposal_conversation("prop_1")
        with pytest.raises(ConflictError) as refused:
            await candidate.send_message(thread.conversation_id, "Hi! Any questions?")
        assert refused.value.reason == "employer_first_message_required"
        assert server.messages(thread.conversation_id) == []
        await employer.send_message(thread.conversation_id, "Thanks for applying")
        answer = await candidate.send_message(thread.conversation_id, "Thank you!")
    assert answer.content == "Thank you!"
    assert [m["content"] for m in server.messages(thread.conversation_id)] == [
        "Thanks for applying",
        "Thank you!",
    ]
