"""Unsigned LEB128 varints, as multiformats (multicodec, multihash) and protobuf use them.

Decoding is strict: a varint must be minimally encoded and fit in 63 bits, so one value has one
encoding and two different byte strings never name the same key or codec.
"""

from __future__ import annotations

from dms.errors import CryptoError

_MAX_BYTES = 9


def encode_uvarint(value: int) -> bytes:
    """The unsigned varint encoding of ``value`` (which must be >= 0)."""
    if value < 0:
        raise ValueError("uvarint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode one varint at ``offset``; returns ``(value, offset after it)``.

    Raises :class:`CryptoError` on truncated, over-long or non-minimal encodings.
    """
    value = 0
    shift = 0
    for i in range(_MAX_BYTES):
        pos = offset + i
        if pos >= len(data):
            raise CryptoError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise CryptoError("varint is not minimally encoded")
            return value, pos + 1
        shift += 7
    raise CryptoError("varint too long")
