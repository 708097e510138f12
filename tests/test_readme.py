"""Users' code from the README and the guides in docs/ runs as written, and type-checks.

Every ```python block is found here and must have a ``Case``: it is run in a fresh
interpreter (top-level ``await`` allowed, as in an async REPL or notebook) against a
fake server hosted by the test, with only a prelude for the names the text leaves to the
reader (``client``, ``read_rows()``...).  ``mypy --strict`` checks the same code, and
that misuse the types promise to catch (``send_all([1, 2, 3])``) is caught.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ECHO_BOT = ROOT / "examples" / "echo_bot.py"

RUNNER = """
import ast, asyncio, inspect, sys
source = sys.stdin.read()
namespace = {"__name__": "__readme__"}
result = eval(compile(source, "<docs>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
if inspect.iscoroutine(result):
    asyncio.run(result)
for name, value in list(namespace.items()):
    if name.startswith("test_") and inspect.iscoroutinefunction(value):
        asyncio.run(value())
        print("passed", name)
"""

OPEN_CLIENT = """\
from opentrain_async import OpenTrainClient
client = OpenTrainClient()
await client.__aenter__()
"""


def _no_setup(server: FakeOpenTrain) -> None:
    return None


@attrs.frozen
class Case:
    marker: str
    """Text that identifies the block."""
    expect: str
    """A line the block must print (or, for a run=False block, why it is not run)."""
    setup: Callable[[FakeOpenTrain], None] = _no_setup
    prelude: str = ""
    run: bool = True


def _quickstart(server: FakeOpenTrain) -> None:
    for cid in ("conv_123", "conv_1", "conv_2"):
        server.add_conversation(cid)


def _read_side(server: FakeOpenTrain) -> None:
    server.add_conversation("conv_123", bucket="proposal")
    for i in range(3):
        server.add_incoming_message("conv_123", f"question {i}")
    server.add_conversation("conv_job", bucket="job")


CASES = [
    Case('Batch 7 is live")\n        print(message.id', "{'sent': 2}", _quickstart),
    Case(
        "except APIStatusError as e:",
        "refused: 409 CONFLICT read_only_conversation",
        lambda s: s.add_conversation("conv_123", send_block="read_only_conversation"),
    ),
    Case(
        "client.send_many(read_rows())",
        "1 row-2 invalid",
        lambda s: s.add_conversation("conv_1"),
        "def read_rows():\n"
        '    return [("conv_1", "a"), {"conversationId": "conv_1", "content": "", "key": "row-2"}]'
        "\n",
    ),
    Case(
        'pacing_url="redis://:password@cache:6379/0"',
        "needs the Redis it names: tests of the Redis pacing backend cover it",
        prelude=(
            "from opentrain_async import OpenTrainClient\nitems: list[tuple[str, str]] = []\n"
        ),
        run=False,
    ),
    Case("class WorkerSettings:", ""),  # defines an arq worker; running it needs arq
    Case("async def main(max_messages", "the echo bot: tests/test_echo_bot.py runs it", run=False),
    Case(
        "# conftest.py",
        "the kit's conftest: tests/test_testing_kit.py runs it in a fresh project",
        run=False,
    ),
    Case(
        "# test_announce.py",
        "a pytest test: tests/test_testing_kit.py runs it in a fresh project",
        run=False,
    ),
    Case('filter="proposal", unread_only=True', "conv_123 3", _read_side, OPEN_CLIENT),
    Case(
        'start_proposal_conversation("prop_123")',
        "",
        lambda s: s.add_proposal("prop_123") and None,
        OPEN_CLIENT,
    ),
    Case(
        "get_updates(cursor=saved_cursor",
        "message.received",
        lambda s: s.add_incoming_message(s.add_conversation(), "hi") and None,
        OPEN_CLIENT + "saved_cursor = None\ndef handle(events):\n    print(len(events), 'more')\n",
    ),
    Case(
        "verify_webhook_signature(secret, raw_body",
        "",
        prelude=(
            "import json, time\n"
            "from opentrain_async import sign_webhook_payload\n"
            "secret = 'whsec_test'\n"
            "raw_body = json.dumps({'id': 'e1', 'type': 'message.received', 'data': {}}).encode()\n"
            "class request:\n"
            "    headers = {'X-OpenTrain-Signature': sign_webhook_payload(secret, raw_body)}\n"
        ),
    ),
    Case(
        "web.run_app(app, port=8080)",
        "serves forever: test_webhooks.py covers it",
        prelude="SECRET = 'whsec_test'\n",
        run=False,
    ),
    Case("result = await client.preflight()", "", prelude=OPEN_CLIENT),
    Case("# test_mocked.py", "passed test_send_survives_a_mocked_429"),
    Case(
        'f"part {k} of 5"',
        "",
        lambda s: [s.add_conversation(c) for c in ("conv_1", "conv_2")] and None,
        OPEN_CLIENT + "conversations = ['conv_1', 'conv_2']\n",
    ),
    Case(
        "isinstance(outcome.error, BlockedByEarlierFailureError)",
        "1 waited on input 0",
        lambda s: s.add_conversation("conv_1") and None,
        OPEN_CLIENT + "items = [('conv_1', ''), ('conv_1', 'part 2')]\n",
    ),
    Case(
        'journal="journals/batch-7.journal"',
        "needs the Redis it names: tests/test_bulk_journal.py covers both stores",
        prelude=(
            "from opentrain_async import OpenTrainClient\nitems: list[tuple[str, str]] = []\n"
            "client = OpenTrainClient()\n"
        ),
        run=False,
    ),
    Case(
        "metrics.set_meter_provider(",
        "needs an OTLP collector: tests/test_telemetry.py covers what the SDK reports",
        prelude=(
            "from opentrain_async import OpenTrainClient\nitems: list[tuple[str, str]] = []\n"
        ),
        run=False,
    ),
]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.name}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()


def _case(code: str) -> Case:
    matches = [case for case in CASES if case.marker in code]
    assert len(matches) == 1, f"give this block exactly one Case:\n{code}"
    return matches[0]


def test_every_block_has_a_case() -> None:
    """A new example in the docs cannot go untested: each block matches one Case."""
    for _, code in BLOCKS:
        _case(code)
    assert len({_case(code).marker for _, code in BLOCKS}) == len(CASES)


def test_the_echo_bot_in_the_docs_is_the_tested_file() -> None:
    """The echo bot shown in the README and docs is examples/echo_bot.py, byte for byte."""
    bots = [code for _, code in BLOCKS if "async def main(max_messages" in code]
    assert bots
    assert set(bots) == {ECHO_BOT.read_text(encoding="utf-8")}


@pytest.mark.parametrize(
    ("where", "code"),
    [b for b in BLOCKS if _case(b[1]).run],
    ids=[b[0] for b in BLOCKS if _case(b[1]).run],
)
@pytest.mark.process
async def test_docs_example_runs_as_written(
    server: FakeOpenTrain, tmp_path: Path, where: str, code: str
) -> None:
    """The block runs to the end against the fake server and prints what it promises."""
    case = _case(code)
    case.setup(server)
    env = {
        **os.environ,
        "OT_API_TOKEN": server.token,
        "OT_API_BASE_URL": server.base_url,
        "PYTHONPATH": str(ROOT),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNNER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(
        process.communicate((case.prelude + code).encode()), timeout=120
    )
    assert process.returncode == 0, f"{where} failed:\n{err.decode()}"
    assert case.expect in out.decode(), out.decode()


def _as_module(source: str) -> str:
    """Code with top-level ``await``/``async with`` as the body of a coroutine, so mypy
    reads it as the async REPL runs it; plain modules stay as they are."""
    try:
        compile(source, "<docs>", "exec", dont_inherit=True)
    except SyntaxError:
        imports = [line for line in source.splitlines() if line.startswith(("from ", "import "))]
        body = [line for line in source.splitlines() if line not in imports]
        return "\n".join(
            [*imports, "async def _example() -> None:", *("    " + line for line in body)]
        )
    return source


MISUSE = """\
from opentrain_async import OpenTrainClient

async def misuse(client: OpenTrainClient) -> None:
    await client.send_all([1, 2, 3])
    kind = (await client.send_many([("c", "x")]).__anext__()).kind
    if kind == "sent_ok":
        pass
"""


def test_docs_examples_type_check_and_misuse_does_not(tmp_path: Path) -> None:
    """mypy --strict accepts every example (with its prelude) and rejects send_all([1, 2, 3])
    and a comparison of ``outcome.kind`` with a kind that does not exist."""
    from mypy import api

    files = []
    for _, code in BLOCKS:
        module = _as_module(_case(code).prelude + code)
        # Named by content: mypy's cache is keyed by module name.
        path = tmp_path / f"example_{hashlib.sha256(module.encode()).hexdigest()[:12]}.py"
        path.write_text(module, encoding="utf-8")
        if str(path) not in files:  # the echo bot is shown twice
            files.append(str(path))
    # A cache of their own: these options differ from `make typecheck`'s, and sharing
    # one directory made each run recheck the package from scratch (~6 s of CPU each).
    cache = str(ROOT / ".mypy_cache" / "docs-examples")
    common = ["--strict", "--cache-dir", cache, "--disable-error-code", "top-level-await"]
    common += ["--disable-error-code", "no-untyped-def", "--disable-error-code", "no-untyped-call"]
    out, _, status = api.run([*common, *files])
    assert status == 0, out
    bad = tmp_path / f"misuse_{hashlib.sha256(MISUSE.encode()).hexdigest()[:12]}.py"
    bad.write_text(MISUSE, encoding="utf-8")
    out, _, status = api.run([*common, "--strict-equality", str(bad)])
    assert status == 1
    assert out.count('has incompatible type "int"') == 3, out  # each of 1, 2, 3
    assert "Non-overlapping equality check" in out
    assert "Found 4 errors" in out
