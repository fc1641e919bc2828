"""Key abstractions shared by every layer: a public key verifies, a private key signs.

Key types carry libp2p's protobuf ``KeyType`` numbers plus NuNet's private Eth (127) and Cardano
(128) codes, so the same enum serves protobuf encoding, did:key codecs and peer IDs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dms.errors import CryptoError


class KeyType(IntEnum):
    """libp2p ``crypto.pb.KeyType`` values, plus NuNet's Eth and Cardano codes."""

    RSA = 0
    ED25519 = 1
    SECP256K1 = 2
    ECDSA = 3
    ETH = 127
    CARDANO = 128


class PublicKey(ABC):
    """A public key that verifies signatures made by its private half."""

    key_type: KeyType

    @abstractmethod
    def raw(self) -> bytes:
        """The key's raw bytes as libp2p's protobuf ``Data`` field holds them."""

    @abstractmethod
    def verify(self, data: bytes, signature: bytes) -> bool:
        """True if ``signature`` is valid for ``data``; never raises on a bad signature."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PublicKey)
            and self.key_type == other.key_type
            and self.raw() == other.raw()
        )

    def __hash__(self) -> int:
        return hash((int(self.key_type), self.raw()))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.raw().hex()[:16]}…>"


class PrivateKey(ABC):
    """A private key that signs; its public half is :attr:`public_key`."""

    key_type: KeyType

    @property
    @abstractmethod
    def public_key(self) -> PublicKey:
        """The matching public key."""

    @abstractmethod
    def raw(self) -> bytes:
        """The key's raw bytes as libp2p's protobuf ``Data`` field holds them."""

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with libp2p semantics for this key type."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self.public_key!r}>"


class Ed25519PublicKey(PublicKey):
    """An Ed25519 public key (32 raw bytes)."""

    key_type = KeyType.ED25519

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise CryptoError(f"ed25519 public key must be 32 bytes, got {len(raw)}")
        self._raw = bytes(raw)
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self._raw)

    def raw(self) -> bytes:
        return self._raw

    def verify(self, data: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class Ed25519PrivateKey(PrivateKey):
    """An Ed25519 private key; :meth:`raw` is libp2p's 64-byte seed ‖ public key."""

    key_type = KeyType.ED25519

    def __init__(self, seed: bytes) -> None:
        if len(seed) not in (32, 64):
            raise CryptoError(f"ed25519 private key must be 32 or 64 bytes, got {len(seed)}")
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(seed[:32]))
        pub = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        if len(seed) == 64 and seed[32:] != pub:
            raise CryptoError("ed25519 private key: embedded public key does not match the seed")
        self._seed = bytes(seed[:32])
        self._public = Ed25519PublicKey(pub)

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        """A fresh random key."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        key = ed25519.Ed25519PrivateKey.generate()
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public

    @property
    def seed(self) -> bytes:
        """The 32-byte seed."""
        return self._seed

    def raw(self) -> bytes:
        return self._seed + self._public.raw()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)
