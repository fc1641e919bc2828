"""Resolving a context name to its signer."""

from __future__ import annotations

from pathlib import Path

import pytest

from dms.crypto import Ed25519PrivateKey, Keystore, KeyType
from dms.did import KeyProvider, LedgerProvider, list_key_names, provider_for_context
from dms.errors import KeystoreError, NotFound

FAST_N = 2**4


class Reader:
    """A passphrase reader recording whether each call asked for confirmation."""

    def __init__(self, passphrase: str = "pw") -> None:
        self.passphrase = passphrase
        self.calls: list[bool] = []

    def __call__(self, confirm: bool) -> str:
        self.calls.append(confirm)
        return self.passphrase


def test_missing_key_not_created(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="create it with: nunet key new user"):
        provider_for_context(tmp_path, "user", Reader(), create=False, scrypt_n=FAST_N)
    assert not (tmp_path / "key" / "user.json").exists()


def test_create_then_load(tmp_path: Path) -> None:
    reader = Reader()
    created = provider_for_context(tmp_path, "user", reader, create=True, scrypt_n=FAST_N)
    assert isinstance(created, KeyProvider)
    assert created.private_key.key_type == KeyType.ED25519
    assert reader.calls == [True]
    assert (tmp_path / "key" / "user.json").is_file()
    loaded = provider_for_context(tmp_path, "user", reader, create=True, scrypt_n=FAST_N)
    assert loaded.did == created.did
    assert reader.calls == [True, False]
    assert list_key_names(tmp_path) == ["user"]


def test_existing_key_with_wrong_passphrase(tmp_path: Path) -> None:
    Keystore(tmp_path / "key", scrypt_n=FAST_N).save("dms", Ed25519PrivateKey.generate(), "a")
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        provider_for_context(tmp_path, "dms", Reader("b"), create=True)


def test_ledger_context_goes_to_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def fake_init(self: LedgerProvider, account: int = 0, **_: object) -> None:
        seen.append(account)

    monkeypatch.setattr(LedgerProvider, "__init__", fake_init)
    reader = Reader()
    provider = provider_for_context(tmp_path, "ledger:3", reader, create=True)
    assert isinstance(provider, LedgerProvider) and seen == [3]
    assert reader.calls == [] and not (tmp_path / "key").exists()


def test_list_key_names_without_dir(tmp_path: Path) -> None:
    assert list_key_names(tmp_path / "nope") == []
