"""A mistyped command line never prints the token or a password it holds.

argparse quotes what it could not use: ``unrecognized arguments: --api_token
ot_pat_...``, ``invalid choice: 'ot_pat_...'`` (a flag before the command makes its
value the command), ``expected a whole number, got 'redis://:pw@h'`` (a URL given to the
wrong option).  The README promises the token and Redis passwords never appear in the
CLI's output; the usage error now names the mistake without the secret.
"""

from __future__ import annotations

import pytest

from opentrain_async._cli import main

SECRET = "Zq7SECRETb"
URL = f"redis://:pa/{SECRET}@cache:6379/0"

CASES = [
    ["--api_token", f"ot_pat_{SECRET}", "send", "c", "hi"],
    ["send", "c", "hi", "--api_token", f"ot_pat_{SECRET}"],
    ["send", "c", "hi", f"--api_token=ot_pat_{SECRET}"],
    ["send", "c", "hi", f"--token=ot_pat_{SECRET}"],
    ["--api-token", f"ot_pat_{SECRET}", "send", "c", "hi"],
    ["--apitoken", f"ot_pat_{SECRET}", "send", "c", "hi"],
    ["bulk", "x.jsonl", "--pacing_url", URL],
    ["bulk", "x.jsonl", "--journal-url", URL + "?job=x"],
    ["bulk", "x.jsonl", "--concurrency", URL],
    ["bulk", "x.jsonl", "--redis", URL],
    [URL, "bulk", "x.jsonl"],
    ["send", "c", "hi", "--password", SECRET],
    # Shortened or named otherwise (adv10): still a secret's flag.
    ["send", "c", "hi", f"--tok=ot_pat_{SECRET}"],
    ["send", "c", "hi", "--api-key", SECRET],
    ["send", "c", "hi", f"--apikey={SECRET}"],
    ["send", "c", "hi", f"--pass={SECRET}"],
    ["send", "c", "hi", "--pwd", SECRET],
    # Spelled as other tools do (adv11): a token's short flag, curl's header, a bearer
    # value, and an OpenTrain token other than the environment's pasted as an argument.
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
def test_a_usage_error_never_prints_a_secret_from_argv(
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


def test_the_token_from_the_environment_is_never_quoted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pasted where a command goes (``opentrain-async $OT_API_TOKEN send``)."""
    monkeypatch.setenv("OT_API_TOKEN", f"ot_pat_{SECRET}")
    with pytest.raises(SystemExit):
        main([f"ot_pat_{SECRET}", "send", "c", "hi"])
    _, err = capsys.readouterr()
    assert SECRET not in err, err
    assert "invalid choice" in err


def test_a_usage_error_still_names_the_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["send", "c", "hi", "--frobnicate", "3"])
    _, err = capsys.readouterr()
    assert "unrecognized arguments: --frobnicate 3" in err
