"""The pytest plugin's fake server against code under test that makes its own
``OpenTrainClient`` (from the environment, as a service or the README's echo bot does):
it cannot be handed the fixtures' fake time, and runs on the real clock."""

from __future__ import annotations

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, Fault


async def test_a_client_on_the_real_clock_reads_back_what_the_fixture_server_stored(
    fake_opentrain: FakeOpenTrain,
) -> None:
    """A reset after commit: read-back looks for messages stamped after the client's own
    now (less a minute).  The ``fake_time`` fixture's wall clock started at 2026-01-01,
    so on main every such message looked 11 months old and was sent again: the kit's
    ``stats()["duplicates"]`` failed the user's test where OpenTrain (whose clock agrees
    with the client's) would not have duplicated anything."""
    conv = fake_opentrain.add_conversation()
    fake_opentrain.inject_fault(Fault.RESET_AFTER_COMMIT, 2)
    async with OpenTrainClient(
        fake_opentrain.token, fake_opentrain.base_url, reconcile_delay=0
    ) as client:
        report = await client.send_all([(conv, "hello")])
        single = await client.send_message(conv, "single", reconcile=True)
    assert report.sent == 1
    assert single.content == "single"
    assert fake_opentrain.stats()["committed"] == 2
    assert fake_opentrain.stats()["duplicates"] == 0
