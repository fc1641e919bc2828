"""Inbound protocol negotiation that answers a lazy dialer in one write, after one read.

A Go peer (and our own Go-protocol sender, :func:`._libp2p_streams.send_lazily`) opens a stream
the lazy way: the multistream header, the protocol and the first data arrive together.
py-libp2p 0.8.1's listener answers with its header first, then reads the dialer's header and
protocol as two delimited messages (four reads: each varint byte is a read of its own, through
the stream's locks and the muxer's bookkeeping), then echoes the protocol: two Yamux frames,
two Noise messages and two socket writes where one would do.

:class:`CorkedMultiselect` changes the order of the listener's work, never a byte it sends:

* it writes nothing before the dialer's header has arrived. Every dialer (py-libp2p's, Go's,
  js's) sends its header first, unprompted, so nothing waits on ours; and a bare Yamux SYN,
  which py-libp2p and Go send in a frame of their own before the data, no longer makes us send
  a frame of ours (and wake the dialer) for nothing;
* if the header is followed by a whole protocol line for a protocol we handle, that line is
  taken in one read and the answer (header, protocol echo) leaves in one write;
* otherwise the library's negotiation runs on the bytes already taken, with our replies held
  while the dialer's next message is already buffered (reading it cannot wait on our reply)
  and sent together before a read that would wait, so a dialer that waits for our header
  (py-libp2p's own client) sees exactly the old exchange. A refusal (``na``) is sent at once.

It reads py-libp2p's Yamux buffer to know what is buffered; on another muxer it simply never
takes the fast path and never holds a reply.
"""

from __future__ import annotations

from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.io.abc import ReadWriteCloser
from libp2p.io.exceptions import IOException
from libp2p.protocol_muxer.exceptions import MultiselectCommunicatorError, MultiselectError
from libp2p.protocol_muxer.multiselect import (
    MULTISELECT_PROTOCOL_ID,
    PROTOCOL_NOT_FOUND_MSG,
    Multiselect,
)
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.utils import encode_delim

from dms.network._frame import uvarint_prefix

_HEADER = encode_delim(MULTISELECT_PROTOCOL_ID.encode())


class ReplayReader(ReadWriteCloser):
    """``stream`` with ``head`` (bytes already taken from it) put back in front of its reads.

    Writes, close and the rest go to ``stream``; ``muxed_stream`` is exposed so the buffered
    bytes can still be looked at.
    """

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head = head
        self.stream = stream
        self.muxed_stream = getattr(stream, "muxed_stream", None)

    async def read(self, n: int | None = None) -> bytes:
        if self.head:
            size = len(self.head) if n is None or n < 0 else n
            data, self.head = self.head[:size], self.head[size:]
            return data
        return bytes(await self.stream.read(n))

    async def write(self, data: bytes) -> None:
        await self.stream.write(data)

    async def close(self) -> None:
        await self.stream.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self.stream.get_remote_address()  # type: ignore[no-any-return]


class _CorkedCommunicator(MultiselectCommunicator):
    def __init__(self, read_writer: ReplayReader) -> None:
        super().__init__(read_writer)
        self._replay = read_writer
        self._pending = b""

    def _buffered(self) -> bool:
        """True if the dialer's bytes are already waiting (put back, or in our Yamux buffer)."""
        return bool(self._replay.head) or bool(_buffered_bytes(self._replay))

    async def write(self, msg_str: str) -> None:
        self._pending += encode_delim((msg_str or "").encode())
        if msg_str == PROTOCOL_NOT_FOUND_MSG:
            await self.flush()

    async def read(self) -> str:
        if self._pending and not self._buffered():
            await self.flush()
        return str(await super().read())

    async def flush(self) -> None:
        data, self._pending = self._pending, b""
        if not data:
            return
        try:
            await self.read_writer.write(data)
        except (IOException, AssertionError, ValueError) as error:
            raise MultiselectCommunicatorError(
                "fail to write to multiselect communicator"
            ) from error


def _buffered_bytes(stream: Any) -> bytes:
    """What the dialer sent that sits in our Yamux buffer, unread (b"" on another muxer)."""
    muxed = getattr(stream, "muxed_stream", None)
    buffers = getattr(getattr(muxed, "conn", None), "stream_buffers", None)
    if not isinstance(buffers, dict):
        return b""
    buffer = buffers.get(getattr(muxed, "stream_id", None))
    return bytes(buffer) if buffer else b""


def protocol_line(buffered: bytes) -> tuple[str, int] | None:
    """``(protocol, length)`` if ``buffered`` starts with one whole varint-delimited line.

    ``length`` counts the line's bytes, prefix included. None for anything else (a partial
    line, an empty one, bytes that are not UTF-8, an over-long varint): the caller negotiates
    the ordinary way.
    """
    try:
        varint = uvarint_prefix(buffered)
    except ValueError:
        varint = None
    if varint is None:
        return None
    size, start = varint
    end = start + size
    if size < 2 or end > len(buffered) or buffered[end - 1 : end] != b"\n":
        return None
    try:
        return buffered[start : end - 1].decode(), end
    except UnicodeDecodeError:
        return None


class CorkedMultiselect(Multiselect):
    """The host's listener-side negotiation, replies batched (see the module docstring)."""

    async def negotiate(self, communicator: Any, negotiate_timeout: int = 10) -> Any:
        stream = communicator.read_writer
        # A plain cancel scope, not trio.fail_after (a generator-based context manager that
        # costs more than the rest of the fast path); the slow path has its own.
        with trio.CancelScope(deadline=trio.current_time() + negotiate_timeout) as scope:
            try:
                selected, head = await self._select_lazily(stream)
            except MultiselectError:
                raise
            except Exception as error:  # EOF, reset, a dead connection: as the slow path
                raise MultiselectError("negotiation failed") from error
        if scope.cancelled_caught:
            raise MultiselectError("handshake read timeout")
        if selected is not None:
            return selected
        corked = _CorkedCommunicator(ReplayReader(head, stream))
        result = await super().negotiate(corked, negotiate_timeout)
        await corked.flush()
        return result

    async def _select_lazily(self, stream: Any) -> tuple[Any, bytes]:
        """A lazy dialer's selection, answered in one write: ``(selected, b"")``.

        Every dialer sends the multistream header first, unprompted, so ours can wait for it:
        a dialer's bare SYN (py-libp2p's and Go's Yamux send it in a frame of its own) costs
        us no write yet. When the header is followed by a whole protocol line naming a
        protocol we handle, both are consumed (one read each, where reading them as two
        delimited messages takes four: each varint byte is a read of its own, through the
        stream's locks and the muxer's bookkeeping) and the same answer as always (header,
        protocol echo) leaves in one write. Otherwise returns ``(None, head)``: ``head`` is
        what was consumed, for the ordinary negotiation to read again.
        """
        head = b""
        while len(head) < len(_HEADER):
            chunk = await stream.read(len(_HEADER) - len(head))
            if not chunk:
                return None, head
            head += chunk
            if not _HEADER.startswith(head):
                return None, head
        found = protocol_line(_buffered_bytes(stream))
        if found is None:
            return None, head
        protocol, length = found
        handler = self.handlers.get(TProtocol(protocol))
        if handler is None:
            return None, head
        line = await stream.read(length)
        if len(line) != length:  # cannot happen: the bytes were buffered
            return None, head + line
        await stream.write(_HEADER + encode_delim(protocol.encode()))
        return (TProtocol(protocol), handler), b""


def cork_negotiation(host: Any) -> None:
    """Make ``host``'s listener use :class:`CorkedMultiselect` (same handlers, same object)."""
    multiselect = host.get_mux()
    if type(multiselect) is not Multiselect and not isinstance(multiselect, CorkedMultiselect):
        raise RuntimeError(f"unexpected libp2p multiselect {type(multiselect).__name__}")
    multiselect.__class__ = CorkedMultiselect


__all__ = ["CorkedMultiselect", "ReplayReader", "cork_negotiation", "protocol_line"]
