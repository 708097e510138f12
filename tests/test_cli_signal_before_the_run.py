"""A signal that lands inside the event loop before the run installs its own handling
(building the client, reading the job) or after it removed it: the command ends with
one line naming the signal and exit 128+N, as it does before the loop starts.  It used
to say "interrupted" and exit 130 for SIGTERM too (the loop's catch-all for Ctrl-C took
the start-up guard's exception for one), so a supervisor read SIGTERM as a Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

import pytest

from opentrain_async import _cli


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_inside_the_loop_before_the_run_names_itself(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], signum: signal.Signals
) -> None:
    async def signalled_while_starting(args: argparse.Namespace) -> int:
        signal.raise_signal(signum)  # the start-up guard's handler raises here
        raise AssertionError("the signal did not stop the start")

    monkeypatch.setattr(_cli, "_main", signalled_while_starting)
    code = _cli.main(["bulk", "job.jsonl"])
    err = capsys.readouterr().err
    assert code == 128 + signum, err
    assert err.strip() == f"opentrain-async: error: interrupted by {signum.name}"
    assert "Traceback" not in err
