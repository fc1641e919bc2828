"""libp2p peer IDs: the multihash of a marshalled public key.

Keys whose protobuf form is at most 42 bytes (Ed25519, secp256k1) are embedded verbatim with the
identity multihash, so the key can be recovered from the ID; longer keys are SHA2-256 hashed.
The text form is base58btc (``12D3KooW...``, ``16Uiu2...``, ``Qm...``); the CIDv1 form
(``bafz...``: multibase base32, version 1, codec libp2p-key) is accepted on input.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import base58

from dms.crypto._keys import PublicKey
from dms.crypto._protobuf import marshal_public_key, unmarshal_public_key
from dms.crypto._varint import decode_uvarint, encode_uvarint
from dms.errors import CryptoError

MH_IDENTITY = 0x00
MH_SHA2_256 = 0x12
MAX_INLINE_KEY_LENGTH = 42
CID_V1 = 0x01
CODEC_LIBP2P_KEY = 0x72


def _check_multihash(mh: bytes) -> tuple[int, bytes]:
    """Split a peer-ID multihash into ``(code, digest)``, refusing anything else."""
    code, pos = decode_uvarint(mh)
    length, pos = decode_uvarint(mh, pos)
    digest = mh[pos:]
    if len(digest) != length:
        raise CryptoError("invalid peer ID: multihash length mismatch")
    if code == MH_IDENTITY:
        if length > MAX_INLINE_KEY_LENGTH:
            raise CryptoError("invalid peer ID: identity multihash longer than 42 bytes")
    elif code == MH_SHA2_256:
        if length != 32:
            raise CryptoError("invalid peer ID: sha2-256 digest must be 32 bytes")
    else:
        raise CryptoError(f"invalid peer ID: unsupported multihash code {code:#x}")
    return code, digest


@dataclass(frozen=True, order=True)
class PeerID:
    """A libp2p peer ID, held as its multihash bytes; ``str()`` is base58btc."""

    multihash: bytes

    def __post_init__(self) -> None:
        _check_multihash(self.multihash)

    def __str__(self) -> str:
        return base58.b58encode(self.multihash).decode()

    def __repr__(self) -> str:
        return f"PeerID({self!s})"

    def to_cid(self) -> str:
        """The CIDv1 text form (``bafz...``)."""
        cid = encode_uvarint(CID_V1) + encode_uvarint(CODEC_LIBP2P_KEY) + self.multihash
        return "b" + base64.b32encode(cid).decode().lower().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> PeerID:
        """Parse a base58btc peer ID or its CIDv1 (multibase base32) form."""
        text = text.strip()
        if text.startswith(("Qm", "1")):
            try:
                return cls(base58.b58decode(text))
            except ValueError:
                raise CryptoError(f"invalid peer ID {text!r}: not base58btc") from None
        if text.startswith("b"):
            body = text[1:].upper()
            try:
                cid = base64.b32decode(body + "=" * (-len(body) % 8))
            except ValueError:
                raise CryptoError(f"invalid peer ID {text!r}: not base32") from None
            version, pos = decode_uvarint(cid)
            codec, pos = decode_uvarint(cid, pos)
            if version != CID_V1 or codec != CODEC_LIBP2P_KEY:
                raise CryptoError(f"invalid peer ID {text!r}: not a libp2p-key CIDv1")
            return cls(cid[pos:])
        raise CryptoError(f"invalid peer ID {text!r}")


def peer_id_from_public_key(key: PublicKey) -> PeerID:
    """The peer ID of ``key`` (identity multihash when it fits, otherwise SHA2-256)."""
    data = marshal_public_key(key)
    if len(data) <= MAX_INLINE_KEY_LENGTH:
        return PeerID(encode_uvarint(MH_IDENTITY) + encode_uvarint(len(data)) + data)
    digest = hashlib.sha256(data).digest()
    return PeerID(encode_uvarint(MH_SHA2_256) + encode_uvarint(32) + digest)


def extract_public_key(peer_id: PeerID) -> PublicKey:
    """The public key embedded in an identity peer ID; hashed IDs carry no key."""
    code, digest = _check_multihash(peer_id.multihash)
    if code != MH_IDENTITY:
        raise CryptoError(f"peer ID {peer_id} is hashed: the public key cannot be extracted")
    return unmarshal_public_key(digest)
