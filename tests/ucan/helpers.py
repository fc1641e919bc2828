"""Shared builders for the ucan tests: deterministic keys and hand-made (possibly bad) tokens."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from dms.crypto import Ed25519PrivateKey
from dms.did import DID, KeyProvider, Provider
from dms.ucan import DMSToken, Token

#: A fixed "now" so expiry rules are exact.
NOW = 1_800_000_000_000_000_000
HOUR = 3600 * 10**9


def key(name: str) -> KeyProvider:
    """A deterministic Ed25519 provider named ``name``."""
    return KeyProvider(Ed25519PrivateKey(hashlib.sha256(name.encode()).digest()))


def make(
    issuer: Provider,
    action: str,
    subject: DID,
    *,
    audience: DID = DID(),
    topics: Sequence[str] = (),
    caps: Sequence[str] | None = ("/dms",),
    expire: int = NOW + HOUR,
    depth: int = 0,
    chain: Token | None = None,
    nonce: bytes | None = b"nonce-0000ab",
    signer: Provider | None = None,
) -> Token:
    """A token signed by ``signer`` (default: the issuer), bypassing every sanity check."""
    token = DMSToken(
        action=action,
        issuer=issuer.did,
        subject=subject,
        audience=audience,
        topic=tuple(topics),
        capability=None if caps is None else tuple(caps),
        nonce=nonce,
        expire=expire,
        depth=depth,
        chain=chain,
    )
    signer = signer or issuer
    return Token(dataclasses.replace(token, signature=signer.sign(token.signing_input)))
