"""``libp2p-stream``: a subnet's packets on one long-lived libp2p stream per (subnet, peer).

Protocol ``/nunet/subnet/packets/1.0.0`` (ours; the Go DMS uses MASQUE instead). The stream is
one-way: the opener writes, the listener reads. Each side opens its own stream to a peer the
first time it has packets for it, keeps it, and opens a new one if a write fails (once per
batch). All integers are little-endian::

    stream := hello batch*
    hello  := u8 version (= 1) | u8 n | subnet id (n bytes of UTF-8, 1 <= n <= 255)
    batch  := u32 size | record+           (size = bytes of the records, 1 .. 4 MiB)
    record := u32 length | packet          (length = bytes of the packet, 30 .. 65,600)

A packet is ``virtio_net_hdr`` + IPv4 (:mod:`._packets`). The hello travels in the same
write as the first batch. A listener resets the stream, without reading further, when the
hello names a subnet nobody registered, when it does not arrive within the timeout, or when a
size or length is out of range or a record overruns its batch; a batch is handed to the
receiver only once it has arrived whole.

Why this shape: py-libp2p costs ~5 ms of CPU to open a stream and a fixed cost per Yamux
frame and Noise message (spec/py-libp2p-0.8.1.md §2), so packets share a stream and travel
many to a write; a batch is whatever the router read from its TUN devices in one go (up to
64 packets of up to 64 KiB each with segmentation offload). The listener raises its Yamux
receive window (4 MiB by default) so a bulk transfer is not throttled by the 256 KiB default.
Membership is not decided here: the receiver gets the authenticated peer ID and checks it
(:class:`~dms.subnet.SubnetRouter`).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from dms.errors import DMSError, InvalidInput, NetworkError
from dms.network import Network, RawStream
from dms.subnet._packets import MIN_PACKET
from dms.subnet._transport import PacketReceiver, PacketTransport

log = logging.getLogger(__name__)

PROTOCOL = "/nunet/subnet/packets/1.0.0"
VERSION = 1
#: Largest batch (records' bytes) a listener accepts; senders split larger ones.
MAX_BATCH_BYTES = 4 << 20
#: Largest packet: a 64 KiB IPv4 packet plus its virtio_net_hdr, with margin.
MAX_PACKET_BYTES = 65_600
#: What a sender puts in one batch before starting the next.
SEND_BATCH_BYTES = 1 << 20
DEFAULT_RECEIVE_WINDOW = 4 << 20

_U32 = struct.Struct("<I")


def encode_hello(subnet_id: str) -> bytes:
    """The first bytes of a stream: version and subnet ID."""
    name = subnet_id.encode()
    if not 1 <= len(name) <= 255:
        raise InvalidInput(f"subnet id must be 1-255 bytes of UTF-8, got {len(name)}")
    return bytes((VERSION, len(name))) + name


def encode_batches(packets: Sequence[bytes]) -> list[bytes]:
    """``packets`` as one or more batch frames of at most :data:`SEND_BATCH_BYTES` each."""
    frames: list[bytes] = []
    parts: list[bytes] = [b""]
    size = 0
    pack = _U32.pack
    for packet in packets:
        n = len(packet)
        if not MIN_PACKET <= n <= MAX_PACKET_BYTES:
            raise InvalidInput(f"packet of {n} bytes cannot be sent")
        if size and size + 4 + n > SEND_BATCH_BYTES:
            parts[0] = pack(size)
            frames.append(b"".join(parts))
            parts, size = [b""], 0
        parts.append(pack(n))
        parts.append(packet)
        size += 4 + n
    if size:
        parts[0] = pack(size)
        frames.append(b"".join(parts))
    return frames


def decode_records(body: memoryview) -> list[bytes]:
    """The packets of one batch body (copied out once each); InvalidInput if malformed."""
    packets = []
    pos, end = 0, len(body)
    unpack = _U32.unpack_from
    while pos < end:
        if end - pos < 4:
            raise InvalidInput("truncated packet length in batch")
        (n,) = unpack(body, pos)
        pos += 4
        if not MIN_PACKET <= n <= MAX_PACKET_BYTES or pos + n > end:
            raise InvalidInput(f"bad packet length {n} in batch")
        packets.append(bytes(body[pos : pos + n]))
        pos += n
    return packets


@dataclass
class _Link:
    """Our outgoing stream of one subnet to one peer."""

    lock: trio.Lock = field(default_factory=trio.Lock)
    stream: RawStream | None = None


@dataclass
class StreamTransportStats:
    """Counters of the transport (both directions, all subnets)."""

    streams_opened: int = 0
    streams_accepted: int = 0
    streams_refused: int = 0  # unknown subnet, bad hello, no hello in time
    streams_broken: int = 0  # malformed batch from a peer
    send_retries: int = 0
    batches_sent: int = 0
    batches_received: int = 0


class Libp2pStreamTransport(PacketTransport):
    """Packets of every subnet of a node over ``network`` (see the module docstring).

    ``timeout`` bounds opening a stream, writing one batch and the arrival of a hello;
    ``receive_window`` is the Yamux window granted to a peer's stream. Call :meth:`aclose`
    when the node stops using it (streams are closed, the protocol handler removed).
    """

    name = "libp2p-stream"

    def __init__(
        self,
        network: Network,
        *,
        timeout: float = 10.0,
        receive_window: int = DEFAULT_RECEIVE_WINDOW,
    ) -> None:
        self._network = network
        self._timeout = timeout
        self._receive_window = receive_window
        self._receivers: dict[str, PacketReceiver] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._inbound: dict[str, set[RawStream]] = {}
        self.stats = StreamTransportStats()
        network.set_stream_handler(PROTOCOL, self._serve)

    # -- sending ---------------------------------------------------------------------------
    async def send(self, subnet_id: str, peer_id: str, packets: Sequence[bytes]) -> None:
        if not packets:
            return
        frames = encode_batches(packets)
        link = self._links.setdefault((subnet_id, peer_id), _Link())
        async with link.lock:
            for attempt in (1, 2):
                try:
                    with trio.fail_after(self._timeout):
                        await self._write(link, subnet_id, peer_id, frames)
                    self.stats.batches_sent += len(frames)
                    return
                except (NetworkError, trio.TooSlowError) as exc:
                    broken, link.stream = link.stream, None
                    if broken is not None:
                        await broken.reset()
                    if attempt == 2:
                        detail = exc if isinstance(exc, NetworkError) else "timed out"
                        raise NetworkError(
                            f"subnet {subnet_id}: sending to {peer_id} failed: {detail}"
                        ) from None
                    self.stats.send_retries += 1
                    log.debug("subnet %s: stream to %s failed (%s)", subnet_id, peer_id, exc)

    async def _write(self, link: _Link, subnet_id: str, peer_id: str, frames: list[bytes]) -> None:
        first = 0
        if link.stream is None:
            link.stream = await self._network.open_stream(peer_id, PROTOCOL, timeout=self._timeout)
            self.stats.streams_opened += 1
            await link.stream.write(encode_hello(subnet_id) + frames[0])
            first = 1
        for frame in frames[first:]:
            await link.stream.write(frame)

    async def forget_peer(self, subnet_id: str, peer_id: str) -> None:
        link = self._links.pop((subnet_id, peer_id), None)
        if link is not None and link.stream is not None:
            stream, link.stream = link.stream, None
            await stream.close()

    # -- receiving -------------------------------------------------------------------------
    def register(self, subnet_id: str, receiver: PacketReceiver) -> None:
        self._receivers[subnet_id] = receiver

    def unregister(self, subnet_id: str) -> None:
        self._receivers.pop(subnet_id, None)
        # Streams of the subnet find the receiver gone at their next batch and reset.

    async def _serve(self, stream: RawStream) -> None:
        peer = stream.remote_peer
        buf = bytearray()
        subnet_id = None
        with trio.move_on_after(self._timeout):
            subnet_id = await self._read_hello(stream, buf)
        if subnet_id is None or subnet_id not in self._receivers:
            self.stats.streams_refused += 1
            log.info("subnet stream from %s refused (subnet %r)", peer, subnet_id)
            await stream.reset()
            return
        self.stats.streams_accepted += 1
        stream.set_receive_window(self._receive_window)
        streams = self._inbound.setdefault(subnet_id, set())
        streams.add(stream)
        try:
            await self._read_batches(stream, buf, subnet_id, peer)
        except (InvalidInput, NetworkError) as exc:
            if isinstance(exc, InvalidInput):
                self.stats.streams_broken += 1
            log.info("subnet %s stream from %s ended: %s", subnet_id, peer, exc)
            await stream.reset()
        else:
            await stream.close()
        finally:
            streams.discard(stream)

    async def _read_hello(self, stream: RawStream, buf: bytearray) -> str | None:
        while len(buf) < 2 or len(buf) < 2 + buf[1]:
            chunk = await stream.read()
            if not chunk:
                return None
            buf += chunk
        if buf[0] != VERSION or buf[1] == 0:
            return None
        end = 2 + buf[1]
        try:
            subnet_id = buf[2:end].decode()
        except UnicodeDecodeError:
            return None
        del buf[:end]
        return subnet_id

    async def _read_batches(
        self, stream: RawStream, buf: bytearray, subnet_id: str, peer: str
    ) -> None:
        """Read until EOF; hand every whole batch to the subnet's receiver."""
        unpack = _U32.unpack_from
        while True:
            pos = 0
            with memoryview(buf) as view:
                while len(buf) - pos >= 4:
                    (size,) = unpack(view, pos)
                    if not 0 < size <= MAX_BATCH_BYTES:
                        raise InvalidInput(f"batch of {size} bytes")
                    if len(buf) - pos - 4 < size:
                        break
                    packets = decode_records(view[pos + 4 : pos + 4 + size])
                    pos += 4 + size
                    receiver = self._receivers.get(subnet_id)
                    if receiver is None:
                        raise NetworkError(f"subnet {subnet_id} is gone")
                    self.stats.batches_received += 1
                    try:
                        receiver(peer, packets)
                    except DMSError as exc:
                        log.warning("subnet %s receiver: %s", subnet_id, exc)
            if pos:
                del buf[:pos]
            chunk = await stream.read()
            if not chunk:
                return
            buf += chunk

    async def aclose(self) -> None:
        """Close our streams, reset the peers', stop accepting the protocol."""
        self._network.remove_stream_handler(PROTOCOL)
        self._receivers.clear()
        for key in list(self._links):
            link = self._links.pop(key)
            if link.stream is not None:
                await link.stream.close()
        for streams in list(self._inbound.values()):
            for stream in list(streams):
                await stream.reset()


__all__ = [
    "PROTOCOL",
    "Libp2pStreamTransport",
    "StreamTransportStats",
    "decode_records",
    "encode_batches",
    "encode_hello",
]
