"""Cardano public keys: recognised (did:key codec 0xef02, libp2p type 128) but not verified.

Cardano signatures are CBOR COSE_Sign1 structures; until they are needed we decode such keys so
DIDs round-trip, and refuse to verify with a clear error instead of returning a silent False.
"""

from __future__ import annotations

from dms.crypto._keys import KeyType, PublicKey
from dms.errors import CryptoError


class CardanoPublicKey(PublicKey):
    """A Cardano key as NuNet encodes it (32-byte Ed25519 or a COSE key), kept as raw bytes."""

    key_type = KeyType.CARDANO

    def __init__(self, raw: bytes) -> None:
        if not raw:
            raise CryptoError("cardano public key is empty")
        self._raw = bytes(raw)

    def raw(self) -> bytes:
        return self._raw

    def verify(self, data: bytes, signature: bytes) -> bool:
        raise CryptoError("cardano signatures not supported")
