"""A usage error never quotes a secret spelled another way than the flags adv10 knew.

``_parser._without_secrets`` masked the value of a flag named like a secret
(``tok|pass|pwd|secret|auth|cred|key``) and the environment's token.  argparse quoted
the rest whole: ``unrecognized arguments: --bearer ...``, ``-t ...`` (token's usual
short flag), curl's ``-H "Authorization: Bearer ..."``, ``--jwt``, ``--pat``, and an
OpenTrain token other than the environment's (a second account's) pasted as an
argument.  Now those flags' values and anything that looks like a token or follows
``Bearer`` are masked too.  (Each case failed on main: the secret in stderr.)
"""

from __future__ import annotations

import pytest

from opentrain_async._cli import main

SECRET = "Zq7SECRETb"

CASES = [
    ["send", "c", "hi", "--bearer", SECRET],
    ["--bearer", SECRET, "send", "c", "hi"],
    ["send", "c", "hi", "-t", SECRET],
    ["-t", SECRET, "send", "c", "hi"],
    ["send", "c", "hi", "-p", SECRET],
    ["send", "c", "hi", "-H", f"Authorization: Bearer {SECRET}"],
    ["send", "c", "hi", "--header", f"Authorization: Bearer {SECRET}"],
    ["send", "c", "hi", "--jwt", SECRET],
    ["send", "c", "hi", "--pat", SECRET],
    ["send", "c", "hi", f"ot_pat_{SECRET}"],
    ["bulk", "x.jsonl", "--concurrency", f"ot_pat_{SECRET}"],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(a)[:40] for a in CASES])
def test_a_usage_error_never_prints_a_secret_spelled_otherwise(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OT_API_TOKEN", "ot_pat_env")
    monkeypatch.setenv("OT_API_BASE_URL", "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()
    assert caught.value.code == 2
    assert SECRET not in out + err, err
    assert "error:" in err
