"""A careless user pastes the whole header from a curl line (``-H "Authorization:
Bearer ot_pat_..."``).  On 748ad8c only a leading ``Bearer `` was refused: this token
was accepted and every request went out as ``Authorization: Bearer Authorization: ...``,
a 401 that does not say why.  It is refused at construction now, never echoing it."""

from __future__ import annotations

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient

SECRET = "ot_pat_header_line_S3CRET"


@pytest.mark.parametrize(
    "token", [f"Authorization: Bearer {SECRET}", f"authorization:Bearer {SECRET}"]
)
def test_a_pasted_header_line_is_refused_at_construction(token: str) -> None:
    with pytest.raises(ConfigurationError, match="starts with 'Authorization:'") as info:
        OpenTrainClient(token, "https://app.opentrain.ai", env={})
    assert SECRET not in str(info.value)
