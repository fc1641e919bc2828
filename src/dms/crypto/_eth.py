"""Eth keys: secp256k1 keys that sign Ethereum personal messages (what a Ledger signs).

NuNet's public-network DID is such a key, so verifying NuNet-issued tokens needs this. The digest
is ``keccak256("\\x19Ethereum Signed Message:\\n" + decimal len(data) + data)`` and the signature is
DER-encoded ECDSA (not Ethereum's 65-byte r||s||v), as ``lib/crypto/eth.go`` expects.
"""

from __future__ import annotations

import coincurve

from dms.crypto._keys import KeyType, PrivateKey, PublicKey
from dms.crypto._secp256k1 import parse_secp256k1_point, parse_secp256k1_secret, verify_digest

ETH_SIGN_MAGIC = b"\x19Ethereum Signed Message:\n"


def _keccak256(data: bytes) -> bytes:
    # pycryptodome loads its C code through cffi, which parses C declarations at import
    # (~50 ms): only Eth keys pay for it, not every ``nunet`` command that loads dms.crypto.
    from Crypto.Hash import keccak

    return bytes(keccak.new(digest_bits=256, data=data).digest())


def eth_personal_digest(data: bytes) -> bytes:
    """The 32-byte keccak256 digest an Ethereum wallet signs for a personal message."""
    return _keccak256(ETH_SIGN_MAGIC + str(len(data)).encode() + data)


class EthPublicKey(PublicKey):
    """An Eth (personal-sign) public key; :meth:`raw` is the 33-byte compressed point."""

    key_type = KeyType.ETH

    def __init__(self, raw: bytes) -> None:
        self._point = parse_secp256k1_point(raw)
        self._raw = self._point.format(compressed=True)

    def raw(self) -> bytes:
        return self._raw

    def address(self) -> str:
        """The ``0x`` Ethereum address (last 20 bytes of keccak256 of the uncompressed point)."""
        return "0x" + _keccak256(self._point.format(compressed=False)[1:])[-20:].hex()

    def verify(self, data: bytes, signature: bytes) -> bool:
        return verify_digest(self._point, eth_personal_digest(data), signature)


class EthPrivateKey(PrivateKey):
    """Signs like a Ledger's Eth app; for tests and fakes (real Eth keys live on devices)."""

    key_type = KeyType.ETH

    def __init__(self, secret: bytes) -> None:
        self._key = parse_secp256k1_secret(secret)
        self._public = EthPublicKey(self._key.public_key.format(compressed=True))

    @classmethod
    def generate(cls) -> EthPrivateKey:
        """A fresh random key."""
        return cls(coincurve.PrivateKey().secret)

    @property
    def public_key(self) -> EthPublicKey:
        return self._public

    def raw(self) -> bytes:
        return bytes(self._key.secret)

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(eth_personal_digest(data), hasher=None))
