"""did:key: ``did:key:z`` + base58btc(uvarint(multicodec) ‖ raw public key).

Codecs (``lib/did/key.go``): Ed25519 0xed, secp256k1 0xe7 (33-byte compressed), and NuNet's
private Eth 0xef01 and Cardano 0xef02. Only multibase ``z`` (base58btc) is accepted, as in Go.
"""

from __future__ import annotations

import base58

from dms.crypto import (
    KeyType,
    PublicKey,
    decode_uvarint,
    encode_uvarint,
    public_key_from_raw,
)
from dms.errors import CryptoError

DID_KEY_PREFIX = "did:key:"

CODEC_BY_KEY_TYPE: dict[KeyType, int] = {
    KeyType.ED25519: 0xED,
    KeyType.SECP256K1: 0xE7,
    KeyType.ETH: 0xEF01,
    KeyType.CARDANO: 0xEF02,
}
KEY_TYPE_BY_CODEC = {codec: kt for kt, codec in CODEC_BY_KEY_TYPE.items()}


def encode_did_key(key: PublicKey) -> str:
    """The ``did:key`` string of ``key``."""
    codec = CODEC_BY_KEY_TYPE.get(key.key_type)
    if codec is None:
        raise CryptoError(f"no did:key codec for key type {key.key_type.name}")
    return DID_KEY_PREFIX + "z" + base58.b58encode(encode_uvarint(codec) + key.raw()).decode()


def decode_did_key(uri: str) -> PublicKey:
    """The public key a ``did:key`` string encodes."""
    if not uri.startswith(DID_KEY_PREFIX):
        raise CryptoError(f"unsupported DID {uri!r}: only did:key is resolvable")
    ident = uri[len(DID_KEY_PREFIX) :]
    if not ident.startswith("z"):
        raise CryptoError(f"unsupported did:key {uri!r}: multibase must be 'z' (base58btc)")
    try:
        data = base58.b58decode(ident[1:])
    except ValueError:
        raise CryptoError(f"invalid did:key {uri!r}: not base58btc") from None
    try:
        codec, pos = decode_uvarint(data)
    except CryptoError as exc:
        raise CryptoError(f"invalid did:key {uri!r}: {exc}") from None
    key_type = KEY_TYPE_BY_CODEC.get(codec)
    if key_type is None:
        raise CryptoError(f"unsupported did:key codec {codec:#x} in {uri!r}")
    try:
        return public_key_from_raw(key_type, data[pos:])
    except CryptoError as exc:
        raise CryptoError(f"invalid did:key {uri!r}: {exc}") from None
