"""A Go-style message's stream opening, data and close leave in one socket write.

py-libp2p 0.8.1's Yamux sends a new stream's SYN as a frame of its own, at once, before the
first data; then the data frame; then the FIN. Each is its own Noise message and its own
``send()``. On loopback each ``send()`` wakes the receiver, and on a busy machine (both processes
on one core) the woken receiver preempts the sender: measured on a Go-style invoke, the node's
reply SYN woke the caller, which acknowledged it, started a stream handler and began negotiating
(~0.4-0.8 ms), all before the node could write the reply's data. go-yamux also sends its SYN at
once; what costs here is the separate write, not the frame.

:func:`corked` holds back every write to a connection's TCP stream for the length of a block
and sends what was held in one ``send_all`` at its end: the same bytes, in the same order, in
one system call. :func:`~._libp2p_streams.send_lazily` opens, writes and half-closes a stream
inside it, so SYN, data and FIN reach the peer together. While a stream is corked, other tasks'
writes to it are appended too (their ``write`` returns at once) and leave with ours, in order;
a write that was already waiting for the socket goes first, as before.

Nothing inside the block may wait for the peer to *answer* what is held back (it would wait
for ever): the caller corks only messages that fit in a fresh Yamux stream's send window, so
no write waits for a window update, and reads happen after the block. If the final write fails
or times out (a frozen peer), the connection's stream is closed: part of the held bytes may
have gone, and nothing else can be written after them.

:func:`patch_corkable_writes` replaces ``TrioTCPStream.write`` once per process; uncorked, it
is the library's write plus one dictionary lookup. Pinned to libp2p 0.8.1.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from libp2p.io.trio import TrioTCPStream

log = logging.getLogger(__name__)

_CORK = "_dms_cork"
_TCP = "_dms_tcp_stream"
_FLUSH_TIMEOUT = 5.0
#: Attributes followed from a swarm connection down to its TCP stream (Yamux, the security
#: session, Noise's or TLS's reader-writer, the raw connection).
_PATH_ATTRIBUTES = (
    "muxed_conn",
    "secured_conn",
    "conn",
    "read_writer",
    "read_write_closer",
    "stream_writer",
    "raw_connection",
)
_MAX_DEPTH = 8
_UNKNOWN = object()

_library_write = TrioTCPStream.write


async def corkable_write(self: Any, data: bytes) -> None:
    """``TrioTCPStream.write`` that appends to the cork instead while one is in place."""
    held: bytearray | None = self.__dict__.get(_CORK)
    if held is not None:
        held += data
        return
    await _library_write(self, data)


def patch_corkable_writes() -> None:
    """Install :func:`corkable_write` as ``TrioTCPStream.write`` (idempotent)."""
    current = TrioTCPStream.write
    if current is corkable_write:
        return
    if current is not _library_write:
        raise RuntimeError("libp2p TrioTCPStream.write was replaced by someone else")
    setattr(TrioTCPStream, "write", corkable_write)  # noqa: B010


def tcp_stream_of(connection: Any) -> TrioTCPStream | None:
    """The ``TrioTCPStream`` under a swarm connection, or None (another transport)."""
    cached = getattr(connection, _TCP, _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached if isinstance(cached, TrioTCPStream) else None
    found: TrioTCPStream | None = None
    obj = connection
    for _ in range(_MAX_DEPTH):
        stream = getattr(obj, "stream", None)
        if isinstance(stream, TrioTCPStream):
            found = stream
            break
        nxt = next((getattr(obj, a) for a in _PATH_ATTRIBUTES if hasattr(obj, a)), None)
        if nxt is None:
            break
        obj = nxt
    with contextlib.suppress(AttributeError):  # a slotted connection: look it up every time
        setattr(connection, _TCP, found)
    return found


@asynccontextmanager
async def corked(streams: list[TrioTCPStream]) -> AsyncIterator[None]:
    """Hold back writes to ``streams`` (those not corked already) and send them at the end."""
    mine = [s for s in streams if s.__dict__.get(_CORK) is None]
    for stream in mine:
        stream.__dict__[_CORK] = bytearray()
    try:
        yield
    finally:
        for stream in mine:
            held = stream.__dict__.pop(_CORK)
            if held:
                await _flush(stream, bytes(held))


async def _flush(stream: TrioTCPStream, data: bytes) -> None:
    """Send what was held, even if we are being cancelled; close the stream if it fails."""
    with trio.CancelScope(deadline=trio.current_time() + _FLUSH_TIMEOUT, shield=True) as scope:
        try:
            await _library_write(stream, data)
            return
        except Exception as exc:
            log.debug("corked write failed: %s", exc)
    if scope.cancelled_caught:
        log.debug("corked write timed out")
    with trio.CancelScope(shield=True):
        try:
            await stream.close()
        except Exception as exc:  # already dead
            log.debug("closing after a failed corked write: %s", exc)


__all__ = ["corkable_write", "corked", "patch_corkable_writes", "tcp_stream_of"]
