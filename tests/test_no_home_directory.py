"""No home directory (no ``$HOME``, a UID without a passwd entry: OpenShift, distroless
images) is never a bare ``RuntimeError``.

``Path.home()`` raised from every ``OpenTrainClient(...)``, token and base URL given or
not, because the official CLI's config file was located first.  Now the file is only
looked for when needed (and is then absent); ``listen()``'s default cursor file and the
CLI's default journal, which do need a place, say to set ``XDG_STATE_HOME`` or pass one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


@pytest.fixture
def no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    def home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(home))


@pytest.mark.usefixtures("no_home")
async def test_a_client_needs_no_home_directory(server: FakeOpenTrain) -> None:
    conv = server.add_conversation()
    async with OpenTrainClient(server.token, server.base_url, env={}) as client:
        await client.send_message(conv, "hi")
    env = {"OT_API_TOKEN": server.token, "OT_API_BASE_URL": server.base_url}
    async with OpenTrainClient(env=env) as client:
        await client.send_message(conv, "hello")
    with pytest.raises(ConfigurationError, match="no OpenTrain API token found"):
        OpenTrainClient(env={})


@pytest.mark.usefixtures("no_home")
async def test_listen_without_a_home_directory_says_where_to_keep_its_place(
    server: FakeOpenTrain,
) -> None:
    async with OpenTrainClient(server.token, server.base_url, env={}) as client:
        with pytest.raises(ConfigurationError, match="XDG_STATE_HOME"):
            client.listen()


@pytest.mark.usefixtures("no_home")
async def test_the_cli_without_a_home_directory_is_one_line(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "hi"}])
    env = cli_env(server, tmp_path)
    env.pop("XDG_STATE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    result = await run_cli("bulk", str(job), env=env)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert "XDG_STATE_HOME" in result.err
    assert server.stats()["sends"] == 0
    explicit = await run_cli("bulk", str(job), "--journal", str(tmp_path / "j"), env=env)
    assert explicit.code == 0, explicit.err
    sent = await run_cli("send", conv, "hi", env=env)
    assert sent.code == 0, sent.err
