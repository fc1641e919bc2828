"""DIDs and the providers (signers) and anchors (verifiers) behind them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from dms.crypto import PrivateKey, PublicKey
from dms.did._key import decode_did_key, encode_did_key
from dms.errors import InvalidInput


@dataclass(frozen=True, order=True)
class DID:
    """A decentralised identifier; ``uri`` is ``""`` for the empty DID (Go JSON ``{}``)."""

    uri: str = ""

    def empty(self) -> bool:
        """True for the empty DID (an unrestricted audience)."""
        return not self.uri

    def method(self) -> str:
        """``key`` for ``did:key:...``."""
        parts = self.uri.split(":", 2)
        return parts[1] if len(parts) == 3 else ""

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, text: str) -> DID:
        """Parse a DID string, refusing anything that is not ``did:<method>:<id>``."""
        parts = text.strip().split(":", 2)
        if len(parts) != 3 or parts[0] != "did" or not parts[1] or not parts[2]:
            raise InvalidInput(f"invalid DID {text!r}: expected did:<method>:<id>")
        return cls(text.strip())


def did_from_public_key(key: PublicKey) -> DID:
    """The ``did:key`` of a public key (Ed25519, secp256k1, Eth or Cardano)."""
    return DID(encode_did_key(key))


def public_key_from_did(did: DID) -> PublicKey:
    """The public key a ``did:key`` encodes."""
    return decode_did_key(did.uri)


class Anchor:
    """Verifies signatures made by a DID (the public side of a :class:`Provider`)."""

    def __init__(self, did: DID, key: PublicKey) -> None:
        self.did = did
        self.public_key = key

    @classmethod
    def from_did(cls, did: DID) -> Anchor:
        """Resolve a ``did:key`` into its anchor."""
        return cls(did, public_key_from_did(did))

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True if ``signature`` over ``data`` was made by this DID's key."""
        return self.public_key.verify(data, signature)


class Provider(ABC):
    """Something that signs as a DID: a local private key, or a Ledger device."""

    did: DID

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` as :attr:`did`."""

    def anchor(self) -> Anchor:
        """The verifying side of this provider."""
        return Anchor.from_did(self.did)


class KeyProvider(Provider):
    """A provider backed by a private key held in memory."""

    def __init__(self, key: PrivateKey) -> None:
        self.private_key = key
        self.did = did_from_public_key(key.public_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)
