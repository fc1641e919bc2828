"""The bytes of the ``udp`` subnet transport: sealed datagrams and the key offer.

A datagram is a 17-byte header and a ChaCha20-Poly1305 ciphertext (16-byte tag) of its
payload; the header is the associated data, so none of it can be altered::

    datagram := u8 kind | session (8 bytes) | u64 counter (little-endian) | sealed payload
    nonce    := 4 zero bytes | u64 counter (little-endian)

``session`` is chosen at random by the *receiver*, which told the sender (with the key) in an
offer over an authenticated libp2p stream; it names the receiver's (subnet, sending peer) key,
so a datagram that opens under it comes from that peer. ``counter`` starts at 1 and never
repeats under one key; the receiver keeps a sliding window of the last :data:`REPLAY_WINDOW`
counters and drops repeats and anything older. Kinds:

* ``DATA``: the payload is records ``u16 length | packet`` (a packet is ``virtio_net_hdr`` +
  IPv4, as on every transport), as many as fit in one datagram;
* ``PROBE``: a 16-byte random challenge, sent to a candidate endpoint of the peer;
* ``PROBE_ACK``: the challenge of a probe that arrived, sent back to where it came from.

One message is not sealed: ``UNKNOWN_SESSION``, the bare 17-byte header (counter 0) sent back
to the source of a datagram naming a session the receiver does not hold (it restarted, or it
dropped the peer). It proves nothing, so it only makes the sender probe its path at once; a
path is given up only when the probes go unanswered.

The offer (one each way on ``/nunet/subnet/udp-keys/1.0.0``; integers little-endian)::

    offer    := u8 version (= 1) | u8 n | subnet id (n bytes) | session (8) | key (32)
                | u8 count | count x (IPv4 address (4) | u16 port)
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from dms.errors import InvalidInput

DATA, PROBE, PROBE_ACK, UNKNOWN_SESSION = 1, 2, 3, 4
HEADER = struct.Struct("<B8sQ")
TAG_SIZE = 16
OVERHEAD = HEADER.size + TAG_SIZE
SESSION_SIZE = 8
KEY_SIZE = 32
CHALLENGE_SIZE = 16
#: Counters remembered behind the highest one seen (older ones are dropped as replays).
REPLAY_WINDOW = 4096
OFFER_VERSION = 1
#: Endpoints an offer may carry.
MAX_ENDPOINTS = 8
MAX_OFFER_BYTES = 2 + 255 + SESSION_SIZE + KEY_SIZE + 1 + MAX_ENDPOINTS * 6
_RECORD = struct.Struct("<H")
_NONCE_PREFIX = bytes(4)
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1
_ENDPOINT = struct.Struct("<4sH")

Endpoint = tuple[str, int]


class ReplayWindow:
    """Which counters of one key were seen: the highest, and a bitmap of those behind it."""

    __slots__ = ("_seen", "highest")

    def __init__(self) -> None:
        self.highest = 0
        self._seen = 0  # bit i set: counter (highest - i) was seen

    def fresh(self, counter: int) -> bool:
        """True when ``counter`` was never accepted and is not too old (checks only)."""
        if counter > self.highest:
            return True
        behind = self.highest - counter
        return behind < REPLAY_WINDOW and not (self._seen >> behind) & 1

    def accept(self, counter: int) -> None:
        """Remember ``counter`` (call only after :meth:`fresh` and a successful open)."""
        if counter > self.highest:
            shift = counter - self.highest
            if shift >= REPLAY_WINDOW:  # never shift by a peer-chosen amount: 2**63 bits
                self._seen = 1
            else:
                self._seen = ((self._seen << shift) | 1) & _WINDOW_MASK
            self.highest = counter
        else:
            self._seen |= 1 << (self.highest - counter)


class Sealer:
    """Seals datagrams for one peer's receive session (its ``session`` and ``key``)."""

    __slots__ = ("_aead", "_counter", "session")

    def __init__(self, session: bytes, key: bytes) -> None:
        self.session = session
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def seal(self, kind: int, payload: bytes) -> bytes:
        self._counter += 1
        header = HEADER.pack(kind, self.session, self._counter)
        nonce = _NONCE_PREFIX + self._counter.to_bytes(8, "little")
        return header + self._aead.encrypt(nonce, payload, header)


class Opener:
    """Opens datagrams sealed for our receive ``session`` (its key and replay window)."""

    __slots__ = ("_aead", "_window", "key", "session")

    def __init__(self, session: bytes | None = None, key: bytes | None = None) -> None:
        self.session = session or os.urandom(SESSION_SIZE)
        self.key = key or ChaCha20Poly1305.generate_key()
        self._aead = ChaCha20Poly1305(self.key)
        self._window = ReplayWindow()

    def open(self, datagram: bytes) -> tuple[int, bytes] | None:
        """``(kind, payload)``, or None for a forgery, a replay or a truncated datagram."""
        if len(datagram) < OVERHEAD:
            return None
        kind, _session, counter = HEADER.unpack_from(datagram)
        if counter == 0 or not self._window.fresh(counter):
            return None
        nonce = _NONCE_PREFIX + counter.to_bytes(8, "little")
        try:
            payload = self._aead.decrypt(nonce, datagram[HEADER.size :], datagram[: HEADER.size])
        except InvalidTag:
            return None
        self._window.accept(counter)
        return kind, payload


def session_of(datagram: bytes) -> bytes | None:
    """The receive session a datagram names (None if it is too short to be one)."""
    if len(datagram) < OVERHEAD:
        return None
    return datagram[1 : 1 + SESSION_SIZE]


def unknown_session_hint(datagram: bytes) -> bytes:
    """The ``UNKNOWN_SESSION`` answer to ``datagram`` (whose session is unknown here)."""
    return HEADER.pack(UNKNOWN_SESSION, datagram[1 : 1 + SESSION_SIZE], 0)


def hinted_session(datagram: bytes) -> bytes | None:
    """The session an ``UNKNOWN_SESSION`` hint names, or None if ``datagram`` is not one."""
    if len(datagram) != HEADER.size or datagram[0] != UNKNOWN_SESSION:
        return None
    return datagram[1 : 1 + SESSION_SIZE]


def pack_records(packets: Sequence[bytes], limit: int) -> tuple[list[bytes], list[bytes]]:
    """``packets`` as DATA payloads of at most ``limit`` bytes, and the packets too big for one.

    Packets keep their order within the payloads.
    """
    payloads: list[bytes] = []
    oversize: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    pack = _RECORD.pack
    for packet in packets:
        n = len(packet) + 2
        if n > limit:
            oversize.append(packet)
            continue
        if size + n > limit:
            payloads.append(b"".join(parts))
            parts, size = [], 0
        parts.append(pack(len(packet)))
        parts.append(packet)
        size += n
    if parts:
        payloads.append(b"".join(parts))
    return payloads, oversize


def unpack_records(payload: bytes) -> list[bytes] | None:
    """The packets of a DATA payload, or None if a record overruns it."""
    packets = []
    pos, end = 0, len(payload)
    unpack = _RECORD.unpack_from
    while pos < end:
        if end - pos < 2:
            return None
        (n,) = unpack(payload, pos)
        pos += 2
        if n == 0 or pos + n > end:
            return None
        packets.append(payload[pos : pos + n])
        pos += n
    return packets


@dataclass(frozen=True)
class Offer:
    """How to send to the offering side: its session, its key, where it listens."""

    subnet_id: str
    session: bytes
    key: bytes
    endpoints: tuple[Endpoint, ...]

    def encode(self) -> bytes:
        name = self.subnet_id.encode()
        if not 1 <= len(name) <= 255:
            raise InvalidInput(f"subnet id must be 1-255 bytes of UTF-8, got {len(name)}")
        endpoints = self.endpoints[:MAX_ENDPOINTS]
        parts = [bytes((OFFER_VERSION, len(name))), name, self.session, self.key]
        parts.append(bytes((len(endpoints),)))
        for host, port in endpoints:
            parts.append(_ENDPOINT.pack(ipaddress.IPv4Address(host).packed, port))
        return b"".join(parts)


def offer_size(data: bytes) -> int | None:
    """The size of the offer ``data`` starts with, once enough of it arrived to tell."""
    if len(data) < 2:
        return None
    fixed = 2 + data[1] + SESSION_SIZE + KEY_SIZE
    if len(data) < fixed + 1:
        return None
    return fixed + 1 + data[fixed] * _ENDPOINT.size


def decode_offer(data: bytes) -> Offer:
    """The offer in ``data`` (exactly one); InvalidInput when it is malformed."""
    size = offer_size(data)
    if size is None or size != len(data) or data[0] != OFFER_VERSION or data[1] == 0:
        raise InvalidInput("malformed subnet key offer")
    pos = 2 + data[1]
    try:
        subnet_id = data[2:pos].decode()
    except UnicodeDecodeError:
        raise InvalidInput("subnet key offer: subnet id is not UTF-8") from None
    session = data[pos : pos + SESSION_SIZE]
    pos += SESSION_SIZE
    key = data[pos : pos + KEY_SIZE]
    pos += KEY_SIZE
    count = data[pos]
    pos += 1
    if count > MAX_ENDPOINTS:
        raise InvalidInput(f"subnet key offer: {count} endpoints (at most {MAX_ENDPOINTS})")
    endpoints = []
    for _ in range(count):
        raw, port = _ENDPOINT.unpack_from(data, pos)
        pos += _ENDPOINT.size
        address = ipaddress.IPv4Address(raw)
        if port == 0 or address.is_unspecified or address.is_multicast:
            raise InvalidInput(f"subnet key offer: endpoint {address}:{port} cannot be used")
        endpoints.append((str(address), port))
    return Offer(subnet_id, bytes(session), bytes(key), tuple(endpoints))


__all__ = [
    "DATA",
    "OVERHEAD",
    "PROBE",
    "PROBE_ACK",
    "UNKNOWN_SESSION",
    "Endpoint",
    "Offer",
    "Opener",
    "ReplayWindow",
    "Sealer",
    "decode_offer",
    "hinted_session",
    "offer_size",
    "pack_records",
    "session_of",
    "unknown_session_hint",
    "unpack_records",
]
