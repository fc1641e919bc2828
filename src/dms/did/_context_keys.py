"""Which signer a named context uses: a Ledger, or a key from ``<user_dir>/key``.

This is what ``nunet key`` and ``nunet cap --context NAME`` resolve through, so a missing key
explains how to create it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dms.crypto import DEFAULT_SCRYPT_N, Ed25519PrivateKey, Keystore
from dms.did._did import KeyProvider, Provider
from dms.did._ledger import LedgerProvider, is_ledger_context, ledger_account
from dms.errors import NotFound

KEY_DIR = "key"


def keystore_for(user_dir: Path, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> Keystore:
    """The keystore under ``user_dir`` (``<user_dir>/key``)."""
    return Keystore(Path(user_dir) / KEY_DIR, scrypt_n=scrypt_n)


def list_key_names(user_dir: Path) -> list[str]:
    """Names of the keys stored under ``user_dir``, sorted."""
    return keystore_for(user_dir).names()


def provider_for_context(
    user_dir: Path,
    context: str,
    passphrase_reader: Callable[[bool], str],
    create: bool,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> Provider:
    """The signer for ``context``; ``passphrase_reader(confirm)`` supplies the passphrase.

    With ``create`` a missing key is generated (Ed25519, as the Go DMS does) and saved.
    """
    if is_ledger_context(context):
        return LedgerProvider(ledger_account(context))
    keystore = keystore_for(user_dir, scrypt_n=scrypt_n)
    if keystore.exists(context):
        return KeyProvider(keystore.load(context, passphrase_reader(False)))
    if not create:
        raise NotFound(f"no key for context {context!r}; create it with: nunet key new {context}")
    key = Ed25519PrivateKey.generate()
    keystore.save(context, key, passphrase_reader(True))
    return KeyProvider(key)
