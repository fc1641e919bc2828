"""The Ledger provider, driven through a fake ``ledger-cli`` that signs like the Eth app."""

from __future__ import annotations

import json
import os
from pathlib import Path

import coincurve
import pytest
from tests.support.fake_ledger import write_fake_ledger_cli

from dms.crypto import EthPublicKey
from dms.did import Anchor, LedgerProvider, is_ledger_context, ledger_account
from dms.errors import CryptoError, InvalidInput


@pytest.fixture
def secret() -> coincurve.PrivateKey:
    return coincurve.PrivateKey()


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: coincurve.PrivateKey) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_fake_ledger_cli(bin_dir)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_LEDGER_SECRET", secret.secret.hex())
    monkeypatch.setenv("FAKE_LEDGER_LOG", str(log))
    monkeypatch.delenv("FAKE_LEDGER_MODE", raising=False)
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_ledger_did_and_signature_verify_through_anchor(
    fake_cli: Path, secret: coincurve.PrivateKey
) -> None:
    provider = LedgerProvider(2)
    expected = EthPublicKey(secret.public_key.format(compressed=True))
    assert provider.public_key == expected
    assert provider.did.uri.startswith("did:key:zz")
    data = b'dms:msg:{"be":"/public/hello"}'
    sig = provider.sign(data)
    assert Anchor.from_did(provider.did).verify(data, sig)
    assert provider.anchor().verify(data, sig)
    assert not Anchor.from_did(provider.did).verify(data + b"!", sig)
    calls = _calls(fake_cli)
    assert calls[0][0] == "key" and calls[0][3:] == ["-a", "2"]
    assert calls[1][0] == "sign" and calls[1][3:] == ["-a", "2", data.hex()]
    assert calls[0][1] == "-o" and not Path(calls[0][2]).exists()  # temp file removed


def test_missing_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CryptoError, match="can't find ledger-cli in PATH"):
        LedgerProvider()


def test_cli_failure(fake_cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LEDGER_MODE", "fail")
    with pytest.raises(CryptoError, match="exit status 3"):
        LedgerProvider()


def test_cli_bad_json(fake_cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LEDGER_MODE", "badjson")
    with pytest.raises(CryptoError, match="not valid JSON"):
        LedgerProvider()


def test_context_names() -> None:
    assert is_ledger_context("ledger") and is_ledger_context("ledger:1")
    assert not is_ledger_context("ledgerx") and not is_ledger_context("user")
    assert ledger_account("ledger") == 0
    assert ledger_account("ledger:7") == 7
    assert ledger_account("ledger:bob", {"bob": 4}) == 4
    with pytest.raises(InvalidInput):
        ledger_account("ledger:bob")
    with pytest.raises(InvalidInput):
        ledger_account("user")
