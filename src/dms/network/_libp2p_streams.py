"""Direct messages over libp2p streams: framing, deadlines, error mapping and stream reuse.

Two wire protocols carry the same 8-byte little-endian length-prefixed frames
(:mod:`dms.network._frame`):

* ``actor/<inbox>/messages/0.0.1`` — the Go DMS's protocol: one frame per new stream, written in
  one call (Go reads the prefix with a single ``Read``), then the sender closes its write side.
  Every peer understands it; it is the only thing a Go DMS understands. When the peer listed the
  protocol in identify, the stream is opened the way go-multistream's lazy client does: the
  multistream header, the protocol and the frame leave in one write, and the listener's two
  echoes are checked afterwards (:func:`send_lazily`). py-libp2p's own ``new_stream`` waits for
  the header echo, then for the protocol echo, before the first data byte: two round trips
  through the remote's event loop per message, in each direction of an invoke.
* :data:`REUSE_PROTOCOL` — ours: one long-lived stream per peer pair carrying many frames whose
  body is ``uint16 LE inbox length ‖ inbox (UTF-8) ‖ data``. A frame for the empty inbox is an
  *inbox announcement*: ``data`` lists the sender's inboxes (each ``uint16 LE length ‖ name``),
  all of them, replacing the last list. A sender writes one, in the same write, before the
  first message after its inboxes changed, so a peer that gets a message from a fresh inbox
  (an orchestrator, an allocation, a request's reply inbox) also learns that it may answer it
  on its own reuse stream, and only the peers we talk to hear of it (identify-pushing the
  protocol list to every peer cost O(peers) per change: 19 % of an orchestrating node's CPU
  with 100 peers). A receiver that gets a frame for an inbox it no longer has drops it and
  announces its list back at once, so the sender's next try gets the Go protocol's definite
  refusal. py-libp2p 0.8.1 spends ~5 ms of CPU opening a stream (multistream-select, Yamux
  window updates, Noise frames), against ~1.7 ms
  for a round trip on an open one (spec/py-libp2p-0.8.1.md §2), so peers that advertise this
  protocol in identify share one stream per direction.

py-libp2p has no stream deadlines and a frozen peer blocks a reader forever (§6), so nothing
here awaits the network without a trio deadline set by the caller, and :func:`network_errors`
turns timeouts and the library's many exception classes into :class:`NetworkTimeout` /
:class:`NetworkError` with one-line messages.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.protocol_muxer.multiselect import MULTISELECT_PROTOCOL_ID
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim

from dms.errors import DMSError, InvalidInput, NetworkError, NetworkTimeout
from dms.network._base import RawStream
from dms.network._frame import (
    FRAME_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    check_message_size,
    encode_frame,
    frame_length,
)
from dms.network._libp2p_cork import corked, patch_corkable_writes, tcp_stream_of
from dms.network._libp2p_eager import eager_lock
from dms.network._libp2p_multiselect import ReplayReader

log = logging.getLogger(__name__)

#: Our multi-frame protocol (advertised through identify; the Go DMS does not speak it).
REUSE_PROTOCOL = TProtocol("/nunet-py/actor/frames/1.0.0")

_GO_PREFIX = "actor/"
_GO_SUFFIX = "/messages/0.0.1"
_INBOX_LEN = struct.Struct("<H")
_CLOSE_TIMEOUT = 1.0
#: Largest Go-style write sent corked: well inside a fresh Yamux stream's 256 KiB send window.
CORK_LIMIT = 64 * 1024


def go_protocol(inbox: str) -> TProtocol:
    """The Go DMS protocol ID for ``inbox`` (``actor/root/messages/0.0.1`` for the node)."""
    return TProtocol(f"{_GO_PREFIX}{inbox}{_GO_SUFFIX}")


@contextmanager
def network_errors(what: str) -> Iterator[None]:
    """Map a timeout to :class:`NetworkTimeout` and library errors to :class:`NetworkError`.

    Wrap it *around* the ``trio.fail_after`` that bounds the operation, so the ``TooSlowError``
    raised when that scope exits is caught here. ``what`` names the operation and the peer.
    Our own :class:`DMSError` subclasses pass through unchanged; anything else the library
    raises (``StreamEOF``, ``StreamReset``, ``SwarmException``, ``StreamFailure``,
    ``MultiselectClientError``, ``OSError``, ``ValueError`` from multiaddr ...) is a failure
    of the peer or the wire, not a bug of the caller.
    """
    try:
        yield
    except trio.TooSlowError:
        raise NetworkTimeout(f"{what}: timed out") from None
    except DMSError:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        suffix = f": {detail}" if detail else ""
        raise NetworkError(f"{what}: {type(exc).__name__}{suffix}") from exc


_MULTISTREAM_HEADER = encode_delim(MULTISELECT_PROTOCOL_ID.encode())


def go_frame(data: bytes) -> bytes:
    """The Go frame of ``data``; refuse (NetworkError) what Go's sender would refuse."""
    check_go_frame(data)
    return encode_frame(data)


def check_go_frame(data: bytes) -> None:
    """Refuse (NetworkError) what Go's sender would refuse, without building the frame."""
    check_message_size(data)


def reuse_frame(inbox: str, data: bytes) -> bytes | None:
    """The frame of ``(inbox, data)`` on the reuse protocol, or None if it would exceed 1 MiB.

    A message that fits Go's limit but not ours (the inbox header pushes it over) is sent on
    the Go protocol instead, so both paths accept exactly the same messages.
    """
    name = inbox.encode()
    body = _INBOX_LEN.pack(len(name)) + name + data
    if FRAME_HEADER_SIZE + len(body) > MAX_MESSAGE_SIZE:
        return None
    return encode_frame(body)


#: Inboxes one announcement may list (a node has a handful; a busy REST relay a few dozen).
MAX_ANNOUNCED_INBOXES = 4096


def announcement_frame(inboxes: frozenset[str]) -> bytes | None:
    """The reuse frame announcing ``inboxes`` (None if it would not fit in one frame)."""
    parts = []
    for name in sorted(inboxes)[:MAX_ANNOUNCED_INBOXES]:
        raw = name.encode()
        parts.append(_INBOX_LEN.pack(len(raw)))
        parts.append(raw)
    return reuse_frame("", b"".join(parts))


def parse_announcement(data: bytes) -> frozenset[str]:
    """The inboxes an announcement lists; InvalidInput if it is malformed or too long."""
    names: list[str] = []
    pos = 0
    while pos < len(data):
        if len(names) >= MAX_ANNOUNCED_INBOXES or len(data) - pos < _INBOX_LEN.size:
            raise InvalidInput("malformed inbox announcement")
        (n,) = _INBOX_LEN.unpack_from(data, pos)
        pos += _INBOX_LEN.size
        if n == 0 or pos + n > len(data):
            raise InvalidInput("malformed inbox announcement")
        try:
            names.append(data[pos : pos + n].decode())
        except UnicodeDecodeError:
            raise InvalidInput("inbox announcement: a name is not UTF-8") from None
        pos += n
    return frozenset(names)


def split_reuse_body(body: bytes) -> tuple[str, bytes]:
    """``(inbox, data)`` of a reuse-protocol frame body."""
    if len(body) < _INBOX_LEN.size:
        raise InvalidInput("short reuse frame: no inbox length")
    (n,) = _INBOX_LEN.unpack_from(body)
    end = _INBOX_LEN.size + n
    if len(body) < end:
        raise InvalidInput("short reuse frame: inbox truncated")
    try:
        inbox = body[_INBOX_LEN.size : end].decode()
    except UnicodeDecodeError:
        raise InvalidInput("reuse frame: inbox is not UTF-8") from None
    return inbox, body[end:]


async def read_exactly(stream: Any, n: int) -> bytes:
    """Read exactly ``n`` bytes (libp2p reads may be short); EOF midway raises EOFError."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = await stream.read(n - len(buf))
        except EOFError:
            chunk = b""
        if not chunk:
            raise EOFError(f"stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


async def read_frame_header(stream: Any) -> int | None:
    """The body length of the next frame, or None on a clean EOF before any byte.

    Raises :class:`InvalidInput` for a declared length above 1 MiB (the caller resets the
    stream without reading the body, so a peer cannot make us buffer more than the limit).
    """
    try:
        first = await stream.read(FRAME_HEADER_SIZE)
    except EOFError:
        return None
    if not first:
        return None
    header = (
        first
        if len(first) == FRAME_HEADER_SIZE
        else first + await read_exactly(stream, FRAME_HEADER_SIZE - len(first))
    )
    return frame_length(header)


def _shielded(seconds: float) -> trio.CancelScope:
    """A scope that outlives an outer cancellation but not ``seconds`` (cleanup paths)."""
    return trio.CancelScope(deadline=trio.current_time() + seconds, shield=True)


async def reset_quietly(stream: Any) -> None:
    """Reset ``stream``, bounded and shielded: used on error paths and during cancellation."""
    with _shielded(_CLOSE_TIMEOUT):
        try:
            await stream.reset()
        except Exception as exc:  # already dead: nothing more to do
            log.debug("reset failed: %s", exc)


async def close_quietly(stream: Any) -> None:
    """Close ``stream`` (FIN), bounded and shielded; reset it if the close fails."""
    with _shielded(_CLOSE_TIMEOUT) as scope:
        try:
            await stream.close()
            return
        except Exception as exc:
            log.debug("close failed: %s", exc)
    if scope.cancelled_caught:
        await reset_quietly(stream)


async def send_lazily(host: Any, peer: Any, protocol: TProtocol, frame: bytes) -> None:
    """Open a stream, write header + ``protocol`` + ``frame`` at once, close, check the echoes.

    For a protocol the peer advertised: a listener that accepts it echoes the header and the
    protocol, then its handler reads the frame that was already buffered. If it answers
    anything else (``na``: the inbox is gone) the stream is reset and :class:`NetworkError`
    raised, as a refused negotiation would. The caller holds the deadline. Up to
    :data:`CORK_LIMIT` bytes, the stream is opened, written and half-closed under
    :func:`~._libp2p_cork.corked`: its SYN, data and FIN leave in one socket write.
    """
    network = host.get_network()
    data = _MULTISTREAM_HEADER + encode_delim(protocol.encode()) + frame
    tcp: list[Any] = []
    if len(data) <= CORK_LIMIT:  # see _libp2p_cork: nothing in the block may wait for credit
        tcp = [t for c in network.get_connections(peer) if (t := tcp_stream_of(c)) is not None]
    async with corked(tcp):  # SYN, data and FIN in one socket write
        stream = await network.new_stream(peer)
        try:
            await stream.write(data)
            await stream.close_write()
        except BaseException:
            await reset_quietly(stream)
            raise
    try:
        await _check_echoes(stream, protocol)
    except BaseException:
        await reset_quietly(stream)
        raise
    stream.set_protocol(protocol)
    await close_quietly(stream)


async def _check_echoes(stream: Any, protocol: TProtocol) -> None:
    """Check the listener echoed the multistream header and ``protocol``, and nothing else.

    An accepting listener's answer is known to the byte (``header ‖ protocol``, each
    varint-delimited), and ours and Go's send it in one frame, so it is read in one call where
    reading it as two delimited messages takes four (each varint byte is a read of its own,
    with the stream's locks and the muxer's bookkeeping). Anything else (``na``, a different
    header, a short answer, an error) is parsed message by message, from the bytes already
    read, exactly as before, for the same errors.
    """
    expected = _MULTISTREAM_HEADER + encode_delim(protocol.encode())
    got = b""
    try:
        while len(got) < len(expected) and expected.startswith(got):
            chunk = await stream.read(len(expected) - len(got))
            if not chunk:
                break
            got += chunk
    except Exception:  # the slow path below reads again and reports it as before
        pass
    if got == expected:
        return
    communicator = MultiselectCommunicator(ReplayReader(got, stream))
    if (header := await communicator.read()) != MULTISELECT_PROTOCOL_ID:
        raise NetworkError(f"peer answered {header[:60]!r} to the multistream header")
    if (answer := await communicator.read()) != protocol:
        raise NetworkError(f"peer does not accept {protocol} (answered {answer[:60]!r})")


@dataclass
class _Link:
    """Our side of the reuse stream to one peer."""

    lock: trio.Lock = field(default_factory=eager_lock)
    stream: Any = None
    #: True/False once known (identify or a failed negotiation), None while unknown.
    reuse: bool | None = None
    #: Our inboxes as last announced to the peer (None: not yet, or the stream broke).
    told: frozenset[str] | None = None


class StreamSender:
    """Sends direct messages to remote peers, reusing one stream per peer where it can.

    Every method must run under a deadline set by the caller (``trio.fail_after``) and inside
    :func:`network_errors`; this class only decides which stream to use. Writes on a shared
    stream are serialised by a ``trio.Lock`` (FIFO, so per-sender order is kept), and a write
    interrupted by the deadline resets that stream: a partly written frame would corrupt every
    frame after it.
    """

    def __init__(
        self,
        host: Any,
        *,
        reuse: bool,
        inboxes: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        patch_corkable_writes()  # send_lazily's one-write opening (_libp2p_cork)
        self._host = host
        self._reuse = reuse
        self._inboxes = inboxes
        self._links: dict[Any, _Link] = {}
        self._learned: dict[Any, frozenset[str]] = {}

    def learn(self, peer: Any, inboxes: frozenset[str]) -> None:
        """The peer announced its inboxes (replacing what it announced before)."""
        self._learned[peer] = inboxes

    def _listed(self, peer: Any, inbox: str, protocols: set[str] | None) -> bool:
        """Whether the peer said it has ``inbox``: its last announcement, else identify."""
        learned = self._learned.get(peer)
        if learned is not None and inbox in learned:
            return True
        return protocols is None or go_protocol(inbox) in protocols

    def _protocols(self, peer: Any) -> set[str] | None:
        """Protocols the peer advertised in identify, or None if identify has not finished."""
        try:
            protocols = self._host.get_peerstore().get_protocols(peer)
        except Exception:
            return None
        return {str(p) for p in protocols} or None

    async def send(self, peer: Any, inbox: str, data: bytes) -> None:
        """Deliver one message to ``inbox`` on ``peer`` (caller holds the deadline)."""
        check_go_frame(data)  # the Go frame itself is only built if the reuse stream is not used
        protocols = self._protocols(peer)
        if self._reuse:
            link = self._links.setdefault(peer, _Link())
            if protocols is not None:
                link.reuse = REUSE_PROTOCOL in protocols
            # An inbox the peer did not list may have been registered after identify ran and
            # not announced to us yet: the Go protocol gives a definite answer (negotiation
            # fails if it is unknown).
            listed = self._listed(peer, inbox, protocols)
            body = reuse_frame(inbox, data)
            usable = link.reuse is not False and listed and body is not None
            if usable and body is not None and await self._send_reused(peer, link, body):
                return
        advertised = protocols is not None and self._listed(peer, inbox, protocols)
        await self.send_one(peer, inbox, go_frame(data), lazy=advertised)

    async def send_one(self, peer: Any, inbox: str, frame: bytes, *, lazy: bool = False) -> None:
        """Go's way: a new stream, one write of the whole frame, then close our side.

        ``lazy`` (the peer advertised the inbox): negotiate as go-multistream's lazy client
        (:func:`send_lazily`); otherwise negotiate first, so an unknown inbox fails cleanly.
        """
        if lazy:
            await send_lazily(self._host, peer, go_protocol(inbox), frame)
            return
        stream = await self._host.new_stream(peer, [go_protocol(inbox)])
        try:
            await stream.write(frame)
            await stream.close()
        except BaseException:
            await reset_quietly(stream)
            raise

    async def _send_reused(self, peer: Any, link: _Link, frame: bytes) -> bool:
        """Write ``frame`` on the peer's reuse stream; False if the peer turns out not to speak it.

        A failed write drops the stream and retries once on a fresh one (the old one may simply
        have been closed by the peer); a second failure propagates.
        """
        async with link.lock:
            for attempt in (1, 2):
                if link.stream is None:
                    try:
                        link.stream = await self._host.new_stream(peer, [REUSE_PROTOCOL])
                    except Exception as exc:
                        if link.reuse is None and type(exc).__name__ == "StreamFailure":
                            # Protocol refused before identify told us: a Go-only peer.
                            link.reuse = False
                            return False
                        raise
                    link.reuse = True
                stream = link.stream
                data = frame
                current = self._inboxes()
                if link.told is not current:  # a change makes a new frozenset
                    announcement = announcement_frame(current)
                    if announcement is not None:
                        data = announcement + frame
                    link.told = current
                try:
                    await stream.write(data)
                    return True
                except BaseException as exc:
                    link.stream = None
                    link.told = None
                    await reset_quietly(stream)
                    if attempt == 2 or not isinstance(exc, Exception):
                        raise
                    log.debug("reuse stream to %s failed (%s); reopening", peer, exc)
        return True  # pragma: no cover - the loop returns or raises

    async def announce(self, peer: Any) -> None:
        """Tell ``peer`` our inboxes now (it wrote to one we do not have: its view is stale).

        Only on a reuse stream (a Go-only peer has no use for the list); caller holds the
        deadline.
        """
        link = self._links.setdefault(peer, _Link())
        if link.reuse is False:
            return
        link.told = None
        await self._send_reused(peer, link, b"")

    async def drop(self, peer: Any) -> None:
        """Forget the peer's reuse stream (dead or frozen peer); the next send reopens one."""
        self._learned.pop(peer, None)  # a restarted peer has other inboxes
        link = self._links.pop(peer, None)
        if link is not None and link.stream is not None:
            stream, link.stream = link.stream, None
            await reset_quietly(stream)

    async def close_all(self) -> None:
        """Close every reuse stream (shutdown): the peer reads a clean EOF."""
        for peer in list(self._links):
            link = self._links.pop(peer)
            if link.stream is not None:
                await close_quietly(link.stream)


class Libp2pRawStream(RawStream):
    """A py-libp2p ``INetStream`` behind the :class:`~dms.network.RawStream` interface.

    The library's many stream exceptions become ``b""`` (clean EOF) or :class:`NetworkError`;
    close and reset are bounded and shielded (:func:`close_quietly`, :func:`reset_quietly`).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._peer = str(stream.muxed_conn.peer_id)
        # Reads and writes go to the muxed (Yamux) stream under the NetStream: NetStream
        # takes a trio.Lock around every read and write for its state bookkeeping, and each
        # acquisition is a trip through the scheduler, which a packet pays twice per hop. Its
        # state only matters for close and reset, which still go through it.
        self._io = getattr(stream, "muxed_stream", stream)

    @property
    def remote_peer(self) -> str:
        return self._peer

    async def read(self, max_bytes: int = -1) -> bytes:
        try:
            return bytes(await self._io.read(None if max_bytes < 0 else max_bytes))
        except EOFError:  # StreamEOF / MuxedStreamEOF derive from it: the peer closed its side
            return b""
        except Exception as exc:
            raise NetworkError(f"stream from {self._peer}: {type(exc).__name__}") from exc

    async def write(self, data: bytes) -> None:
        try:
            await self._io.write(data)
        except Exception as exc:
            raise NetworkError(f"stream to {self._peer}: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await close_quietly(self._stream)

    async def reset(self) -> None:
        await reset_quietly(self._stream)

    def set_receive_window(self, size: int) -> None:
        """Raise the Yamux receive window of this stream (go-yamux allows up to 16 MiB).

        With :func:`~dms.network._libp2p_yamux.patch_yamux_window_updates` in place the window
        is credited back up to this target once half of it is read, so a bulk stream is not
        held to the 256 KiB default (py-libp2p's sender polls every 10 ms for credit).
        """
        muxed = getattr(self._stream, "muxed_stream", None)
        if muxed is not None and hasattr(muxed, "target_recv_window"):
            muxed.target_recv_window = max(int(muxed.target_recv_window), min(size, 16 << 20))
