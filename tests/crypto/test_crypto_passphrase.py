"""Passphrase sources: environment first, then a prompt."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dms.crypto import PASSPHRASE_ENV, read_passphrase
from dms.errors import KeystoreError


def _prompts(*answers: str) -> tuple[Callable[[str], str], list[str]]:
    asked: list[str] = []
    it = iter(answers)

    def prompt(text: str) -> str:
        asked.append(text)
        return next(it)

    return prompt, asked


def test_env_wins_without_prompting() -> None:
    prompt, asked = _prompts()
    got = read_passphrase(confirm=True, name="user", env={PASSPHRASE_ENV: "s3"}, prompt=prompt)
    assert got == "s3" and asked == []


def test_prompt_once_when_loading() -> None:
    prompt, asked = _prompts("pw")
    got = read_passphrase(
        confirm=False, name="user", env={}, prompt=prompt, interactive=lambda: True
    )
    assert got == "pw" and len(asked) == 1 and "user" in asked[0]


def test_prompt_twice_when_creating() -> None:
    prompt, asked = _prompts("pw", "pw")
    assert (
        read_passphrase(
            confirm=True,
            name="u",
            env={PASSPHRASE_ENV: ""},
            prompt=prompt,
            interactive=lambda: True,
        )
        == "pw"
    )
    assert len(asked) == 2


def test_mismatch_refused() -> None:
    prompt, _ = _prompts("pw", "other")
    with pytest.raises(KeystoreError, match="do not match"):
        read_passphrase(confirm=True, name="u", env={}, prompt=prompt, interactive=lambda: True)


def test_empty_refused() -> None:
    prompt, _ = _prompts("")
    with pytest.raises(KeystoreError, match="empty"):
        read_passphrase(confirm=False, name="u", env={}, prompt=prompt, interactive=lambda: True)


def test_no_tty_and_no_env_says_what_to_set() -> None:
    prompt, asked = _prompts()
    with pytest.raises(KeystoreError, match=PASSPHRASE_ENV):
        read_passphrase(confirm=False, name="u", env={}, prompt=prompt, interactive=lambda: False)
    assert asked == []


def test_eof_at_prompt_is_a_keystore_error() -> None:
    def prompt(text: str) -> str:
        raise EOFError

    with pytest.raises(KeystoreError):
        read_passphrase(confirm=False, name="u", env={}, prompt=prompt, interactive=lambda: True)
