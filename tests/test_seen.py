"""RecentSet: the one bounded "seen before" set (claimed ids, listen, webhooks, --follow,
page cursors)."""

from __future__ import annotations

import pytest

from opentrain_async._seen import RecentSet


def test_keeps_the_most_recent_keys_within_capacity() -> None:
    """Beyond capacity the least recently seen key is forgotten, never a recent one."""
    seen: RecentSet[str] = RecentSet(3)
    for key in "abcd":
        seen.add(key)
    assert (len(seen), "a" in seen, all(k in seen for k in "bcd")) == (3, False, True)


def test_seeing_a_key_again_keeps_it_longest() -> None:
    """A key seen again (``seen()`` or ``add()``) outlives keys added after it: a webhook
    redelivered often is never forgotten while quiet ones are."""
    seen: RecentSet[str] = RecentSet(2)
    seen.add("hot")
    seen.add("x")
    assert seen.seen("hot")
    seen.add("y")  # evicts x, not hot
    assert ("hot" in seen, "x" in seen) == (True, False)
    seen.add("hot")
    seen.add("z")  # evicts y
    assert ("hot" in seen, "y" in seen) == (True, False)
    assert not seen.seen("never")
    seen.discard("hot")
    assert "hot" not in seen


def test_capacity_must_be_positive() -> None:
    """A set that could hold nothing is a mistake, refused at once."""
    with pytest.raises(ValueError, match="capacity"):
        RecentSet(0)
