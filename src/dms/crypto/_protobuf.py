"""libp2p's key protobuf: ``message {required KeyType Type = 1; required bytes Data = 2;}``.

This is the byte form behind actor IDs, peer IDs and keystore plaintexts, so it is written
canonically (field 1 then field 2) and parsed strictly: unknown, repeated or missing fields and
trailing junk are refused with a :class:`CryptoError`.
"""

from __future__ import annotations

from dms.crypto._cardano import CardanoPublicKey
from dms.crypto._eth import EthPrivateKey, EthPublicKey
from dms.crypto._keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyType,
    PrivateKey,
    PublicKey,
)
from dms.crypto._secp256k1 import Secp256k1PrivateKey, Secp256k1PublicKey
from dms.crypto._varint import decode_uvarint, encode_uvarint
from dms.errors import CryptoError

_TAG_TYPE = 0x08  # field 1, wire type 0 (varint)
_TAG_DATA = 0x12  # field 2, wire type 2 (length-delimited)


def _encode(key_type: KeyType, data: bytes) -> bytes:
    return (
        bytes([_TAG_TYPE])
        + encode_uvarint(int(key_type))
        + bytes([_TAG_DATA])
        + encode_uvarint(len(data))
        + data
    )


def _decode(blob: bytes, what: str) -> tuple[KeyType, bytes]:
    key_type: int | None = None
    data: bytes | None = None
    pos = 0
    try:
        while pos < len(blob):
            tag, pos = decode_uvarint(blob, pos)
            if tag == _TAG_TYPE and key_type is None:
                key_type, pos = decode_uvarint(blob, pos)
            elif tag == _TAG_DATA and data is None:
                length, pos = decode_uvarint(blob, pos)
                if pos + length > len(blob):
                    raise CryptoError("truncated Data field")
                data = bytes(blob[pos : pos + length])
                pos += length
            else:
                raise CryptoError(f"unexpected or repeated field tag {tag:#x}")
    except CryptoError as exc:
        raise CryptoError(f"invalid {what} protobuf: {exc}") from None
    if key_type is None or data is None:
        raise CryptoError(f"invalid {what} protobuf: missing Type or Data")
    try:
        return KeyType(key_type), data
    except ValueError:
        raise CryptoError(f"unsupported key type {key_type} in {what}") from None


def marshal_public_key(key: PublicKey) -> bytes:
    """libp2p ``crypto.MarshalPublicKey``."""
    return _encode(key.key_type, key.raw())


def marshal_private_key(key: PrivateKey) -> bytes:
    """libp2p ``crypto.MarshalPrivateKey`` (Ed25519 Data is the 64-byte seed ‖ public key)."""
    return _encode(key.key_type, key.raw())


def public_key_from_raw(key_type: KeyType, data: bytes) -> PublicKey:
    """Build a public key of ``key_type`` from its raw bytes."""
    if key_type == KeyType.ED25519:
        return Ed25519PublicKey(data)
    if key_type == KeyType.SECP256K1:
        return Secp256k1PublicKey(data)
    if key_type == KeyType.ETH:
        return EthPublicKey(data)
    if key_type == KeyType.CARDANO:
        return CardanoPublicKey(data)
    raise CryptoError(f"unsupported key type {key_type.name}")


def unmarshal_public_key(blob: bytes) -> PublicKey:
    """libp2p ``crypto.UnmarshalPublicKey``."""
    key_type, data = _decode(blob, "public key")
    return public_key_from_raw(key_type, data)


def unmarshal_private_key(blob: bytes) -> PrivateKey:
    """libp2p ``crypto.UnmarshalPrivateKey``; also accepts the legacy 96-byte Ed25519 form."""
    key_type, data = _decode(blob, "private key")
    if key_type == KeyType.ED25519:
        if len(data) == 96:
            # Old libp2p wrote seed ‖ pub ‖ pub; valid only if both copies agree.
            if data[32:64] != data[64:]:
                raise CryptoError("invalid ed25519 private key: legacy public key copies differ")
            data = data[:64]
        if len(data) != 64:
            raise CryptoError(f"ed25519 private key must be 64 bytes, got {len(data)}")
        return Ed25519PrivateKey(data)
    if key_type == KeyType.SECP256K1:
        return Secp256k1PrivateKey(data)
    if key_type == KeyType.ETH:
        return EthPrivateKey(data)
    raise CryptoError(f"unsupported private key type {key_type.name}")
