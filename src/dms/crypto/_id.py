"""Actor IDs: the Go DMS's ``crypto.ID``, a marshalled public key shown as padded base32.

On the wire an ID is ``{"pub": "<base32 std, padded>"}``; the empty ID (``pub == ""``) is the
``to`` of a broadcast.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass

from dms.crypto._keys import PublicKey
from dms.crypto._protobuf import marshal_public_key, unmarshal_public_key
from dms.errors import CryptoError


@dataclass(frozen=True, order=True)
class ID:
    """An actor ID: ``public_key_bytes`` is libp2p's protobuf-marshalled public key."""

    public_key_bytes: bytes = b""

    @classmethod
    def from_public_key(cls, key: PublicKey) -> ID:
        """The ID of ``key``."""
        return cls(marshal_public_key(key))

    def empty(self) -> bool:
        """True for the empty ID."""
        return not self.public_key_bytes

    def public_key(self) -> PublicKey:
        """The public key this ID encodes; the empty ID has none."""
        if self.empty():
            raise CryptoError("empty actor ID has no public key")
        return _public_key(self.public_key_bytes)

    def to_base32(self) -> str:
        """Go's ``ID.String()``: base32 std alphabet, padded."""
        return base64.b32encode(self.public_key_bytes).decode()

    @classmethod
    def from_base32(cls, text: str) -> ID:
        """Go's ``IDFromString``: strict base32 std alphabet with padding."""
        try:
            return cls(base64.b32decode(text.encode("ascii"), casefold=False))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise CryptoError(f"invalid actor ID {text!r}: not padded base32") from None

    def __str__(self) -> str:
        return self.to_base32()


@functools.lru_cache(maxsize=1024)
def _public_key(data: bytes) -> PublicKey:
    """Unmarshal once per key: every envelope's signature check needs its sender's key."""
    return unmarshal_public_key(data)
