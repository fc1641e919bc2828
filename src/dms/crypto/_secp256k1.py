"""secp256k1 keys with libp2p semantics: sign SHA-256(data), DER signature, compressed raw key.

Verification accepts high-``s`` signatures, as go-libp2p (decred) does, so that signatures made
by any Go peer verify here too.
"""

from __future__ import annotations

import hashlib

import coincurve

from dms.crypto._der import low_s_der
from dms.crypto._keys import KeyType, PrivateKey, PublicKey
from dms.errors import CryptoError


def parse_secp256k1_point(raw: bytes) -> coincurve.PublicKey:
    """A curve point from 33-byte compressed or 65-byte uncompressed SEC1 bytes."""
    if len(raw) not in (33, 65):
        raise CryptoError(f"secp256k1 public key must be 33 or 65 bytes, got {len(raw)}")
    try:
        return coincurve.PublicKey(bytes(raw))
    except Exception as exc:  # coincurve raises ValueError / TypeError on bad points
        raise CryptoError("invalid secp256k1 public key: not a point on the curve") from exc


def parse_secp256k1_secret(raw: bytes) -> coincurve.PrivateKey:
    """A private scalar from 32 big-endian bytes, refusing 0 and values >= n."""
    if len(raw) != 32:
        raise CryptoError(f"secp256k1 private key must be 32 bytes, got {len(raw)}")
    try:
        return coincurve.PrivateKey(bytes(raw))
    except Exception as exc:
        raise CryptoError("invalid secp256k1 private key: out of range") from exc


def verify_digest(point: coincurve.PublicKey, digest: bytes, signature: bytes) -> bool:
    """Verify a DER ECDSA signature over a 32-byte digest, accepting high ``s``."""
    try:
        der = low_s_der(signature)
    except CryptoError:
        return False
    try:
        return bool(point.verify(der, digest, hasher=None))
    except Exception:
        return False


class Secp256k1PublicKey(PublicKey):
    """A secp256k1 public key; :meth:`raw` is the 33-byte compressed point."""

    key_type = KeyType.SECP256K1

    def __init__(self, raw: bytes) -> None:
        self._point = parse_secp256k1_point(raw)
        self._raw = self._point.format(compressed=True)

    def raw(self) -> bytes:
        return self._raw

    def verify(self, data: bytes, signature: bytes) -> bool:
        return verify_digest(self._point, hashlib.sha256(data).digest(), signature)


class Secp256k1PrivateKey(PrivateKey):
    """A secp256k1 private key; :meth:`raw` is the 32-byte scalar (libp2p protobuf ``Data``)."""

    key_type = KeyType.SECP256K1

    def __init__(self, secret: bytes) -> None:
        self._key = parse_secp256k1_secret(secret)
        self._public = Secp256k1PublicKey(self._key.public_key.format(compressed=True))

    @classmethod
    def generate(cls) -> Secp256k1PrivateKey:
        """A fresh random key."""
        return cls(coincurve.PrivateKey().secret)

    @property
    def public_key(self) -> Secp256k1PublicKey:
        return self._public

    def raw(self) -> bytes:
        return bytes(self._key.secret)

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(hashlib.sha256(data).digest(), hasher=None))
