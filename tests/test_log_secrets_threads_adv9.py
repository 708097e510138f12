"""adv9: the log filter's token forms kept current at register and collect time
(4919eea: ``_log_secrets._forms`` swapped whole, not rebuilt per record).  A client
collected in one thread (its finalizer) while another thread opens a client: the
collector snapshots the live tokens, the other thread registers its token and swaps
``_forms`` in, then the collector swaps in its snapshot, without the new token.  On
9bcd1d0 that live client's token then went unmasked in every record until the next
client was opened or collected (a lost update; no lock)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from opentrain_async import _log_secrets
from opentrain_async._log_secrets import register_secret

NEW = "ot_pat_opened_in_another_thread"


class _Owner:
    """Something a token lives as long as (a client)."""


class _SwitchingDict(dict[int, tuple[str, ...]]):
    """``_live``, whose next ``values()`` (a refresh's snapshot) lets another thread open
    a client there: the thread switch the race needs, made certain."""

    def __init__(self, *args: Any, owner: _Owner) -> None:
        super().__init__(*args)
        self.armed, self.owner = False, owner
        self.thread: threading.Thread | None = None

    def values(self) -> Any:
        if self.armed:
            snapshot = list(super().values())
            self.armed = False
            self.thread = threading.Thread(target=register_secret, args=(self.owner, NEW))
            self.thread.start()
            self.thread.join(timeout=0.5)  # done by then, unless a lock holds it back
            return snapshot  # from before it registered
        return super().values()


def test_a_client_collected_while_another_thread_opens_one_keeps_its_token_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    opened = _Owner()
    live = _SwitchingDict(_log_secrets._live, owner=opened)
    monkeypatch.setattr(_log_secrets, "_live", live)
    collected = _Owner()
    register_secret(collected, "ot_pat_collected_in_this_thread")
    live.armed = True
    del collected  # its finalizer (any thread, here this one) refreshes the forms
    assert live.thread is not None
    live.thread.join()
    with caplog.at_level(logging.WARNING, logger="opentrain_async"):
        logging.getLogger("opentrain_async").warning("echoed: %s", NEW)
    assert NEW not in caplog.text  # on 9bcd1d0: the live token, in clear
    assert "***" in caplog.text
    del opened
