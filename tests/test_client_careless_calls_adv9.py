"""adv9: careless calls adv8's checks (d8c0db1) let through."""

from __future__ import annotations

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


@pytest.mark.parametrize(
    "items", [["conv_1", "hi"], ["conv_1", "hi", "there"]], ids=["a pair", "three strings"]
)
async def test_one_message_given_as_a_list_of_strings_is_refused(
    server: FakeOpenTrain, client: OpenTrainClient, items: list[str]
) -> None:
    """``send_all(["conv_1", "hi"])``, the list twin of adv8's refused tuple: on 9bcd1d0
    each string became an input of its own, both "invalid", the message never sent.  A
    string is never an input, so a job of strings only is refused before anything is
    pulled (a list or tuple with any other item is not)."""
    with pytest.raises(ConfigurationError, match="one \\(conversation_id, content\\) pair"):
        await client.send_all(items)
    with pytest.raises(ConfigurationError, match="items must be the job's messages"):
        client.send_many(items)  # type: ignore[arg-type]
    conv = server.add_conversation()
    report = await client.send_all([(conv, "ok"), "stray"])  # type: ignore[list-item]
    assert report.counts == {"sent": 1, "invalid": 1}
    assert server.stats()["committed"] == 1
