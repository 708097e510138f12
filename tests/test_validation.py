"""Local validation: what the server would reject never becomes a request."""

from __future__ import annotations

import pytest

from opentrain_async import InvalidRequestError, OpenTrainError, utf16_length
from opentrain_async._validation import validate_content, validate_conversation_id


def test_utf16_length_counts_astral_characters_twice() -> None:
    """Emoji outside the BMP count 2, like JavaScript's String.length."""
    assert utf16_length("abc") == 3
    assert utf16_length("é") == 1
    assert utf16_length("😀") == 2
    assert utf16_length("a😀b") == 4


def test_content_at_the_utf16_boundary() -> None:
    """5,000 emoji (10,000 units) pass; 5,001 (10,002 units) fail naming field, limit, length."""
    assert validate_content("😀" * 5000)
    with pytest.raises(InvalidRequestError) as info:
        validate_content("😀" * 5001)
    error = info.value
    assert error.field == "content"
    assert error.actual == 10_002
    assert "10,000" in str(error)
    assert "10,002" in str(error)
    assert isinstance(error, ValueError)
    assert isinstance(error, OpenTrainError)


def test_ascii_boundary() -> None:
    """10,000 ASCII characters pass; 10,001 fail."""
    assert validate_content("x" * 10_000)
    with pytest.raises(InvalidRequestError, match="10,001"):
        validate_content("x" * 10_001)


@pytest.mark.parametrize("content", ["", None, 42])
def test_empty_or_non_string_content_is_rejected(content: object) -> None:
    """Empty or non-string content is rejected, naming the field."""
    with pytest.raises(InvalidRequestError) as info:
        validate_content(content)
    assert info.value.field == "content"


@pytest.mark.parametrize("conversation_id", ["", "   ", None, 7])
def test_conversation_id_must_be_a_non_empty_string(conversation_id: object) -> None:
    """A missing, blank or non-string conversation id is rejected, naming the field."""
    with pytest.raises(InvalidRequestError) as info:
        validate_conversation_id(conversation_id)
    assert info.value.field == "conversationId"
