"""Stream framing of envelopes: 8-byte little-endian uint64 length, then the envelope JSON.

This is the Go DMS's format on ``actor/<inbox>/messages/0.0.1`` streams (spec §2.4, §11), one
envelope per stream. Go's sender refuses a frame whose total size (8 + length) exceeds 1 MiB and
its receiver refuses a declared length above 1 MiB; we keep both checks so neither side of a
mixed network ever sees a frame the other would reset. The limit is checked on the declared
length before any body is read, so a peer cannot make us buffer more than that.
"""

from __future__ import annotations

import struct

from dms.errors import InvalidInput, NetworkError

#: Largest envelope frame the Go DMS sends or accepts (1 MiB), length prefix included. Every
#: network back-end refuses a direct message whose frame would exceed it.
MAX_MESSAGE_SIZE = 1 << 20
#: Size of the length prefix.
FRAME_HEADER_SIZE = 8

_HEADER = struct.Struct("<Q")


def check_frame_size(envelope_json: bytes) -> None:
    """Refuse (InvalidInput) an envelope whose frame would exceed 1 MiB in total."""
    total = FRAME_HEADER_SIZE + len(envelope_json)
    if total > MAX_MESSAGE_SIZE:
        raise InvalidInput(
            f"message too large: {total} bytes framed, the limit is {MAX_MESSAGE_SIZE}"
        )


def check_message_size(data: bytes) -> None:
    """Refuse (NetworkError) a direct message whose frame would exceed 1 MiB: what Go's sender
    refuses. Every :class:`~dms.network.Network` back-end uses this check on send, so they all
    accept exactly the same messages."""
    try:
        check_frame_size(data)
    except InvalidInput as exc:
        raise NetworkError(str(exc)) from None


def encode_frame(envelope_json: bytes) -> bytes:
    """Prefix ``envelope_json`` with its length; refuse frames larger than 1 MiB in total.

    Prefix and body come back as one buffer because Go's reader takes the 8-byte prefix from a
    single ``Read``; write it in one call.
    """
    check_frame_size(envelope_json)
    return _HEADER.pack(len(envelope_json)) + envelope_json


def frame_length(header: bytes) -> int:
    """The body length declared by an 8-byte prefix; refuse short prefixes and lengths > 1 MiB."""
    if len(header) != FRAME_HEADER_SIZE:
        raise InvalidInput(
            f"short frame: need a {FRAME_HEADER_SIZE}-byte length prefix, got {len(header)} bytes"
        )
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE_SIZE:
        raise InvalidInput(
            f"message too large: frame declares {length} bytes, the limit is {MAX_MESSAGE_SIZE}"
        )
    return int(length)


def decode_frame(frame: bytes) -> bytes:
    """The envelope JSON of one complete frame; refuse short, oversized or over-long frames."""
    length = frame_length(bytes(frame[:FRAME_HEADER_SIZE]))
    body = frame[FRAME_HEADER_SIZE:]
    if len(body) < length:
        raise InvalidInput(f"short frame: declared {length} bytes, got {len(body)}")
    if len(body) > length:
        raise InvalidInput(f"trailing data after frame: declared {length} bytes, got {len(body)}")
    return bytes(body)


#: An unsigned 64-bit varint takes at most 10 bytes.
MAX_UVARINT_BYTES = 10


def uvarint_prefix(data: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """The unsigned varint at ``data[pos:]`` and the offset just after it, or None while it is
    unterminated (more bytes may complete it).

    For the varint-delimited framing libp2p uses (multistream lines, pubsub RPCs), read from a
    buffer rather than a byte at a time. Raises ``ValueError`` for a prefix longer than 10 bytes
    or above 2**64 - 1, which no more bytes can make valid.
    """
    value = shift = 0
    for index in range(pos, min(len(data), pos + MAX_UVARINT_BYTES)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >= 1 << 64:
                raise ValueError("varint length prefix exceeds 64 bits")
            return value, index + 1
        shift += 7
    if len(data) - pos >= MAX_UVARINT_BYTES:
        raise ValueError("varint length prefix longer than 10 bytes")
    return None
