"""A token's shape (broker/tokens.py): the one definition the API, workers and tools share."""

from __future__ import annotations

from broker.tokens import is_token, new_token


def test_only_lower_case_hex_of_32_characters_is_a_token() -> None:
    assert is_token("0123456789abcdef" * 2)
    assert not is_token("0123456789ABCDEF" * 2)
    assert not is_token("é" * 16)
    assert not is_token("g" * 32)
    assert not is_token("a" * 31)


def test_new_tokens_are_token_shaped_and_distinct() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_token(token) for token in tokens)
