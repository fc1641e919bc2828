"""TCP reads that take what has arrived, and serve the next small reads from it.

Noise frames every message with a 2-byte length, and py-libp2p 0.8.1's Noise reader asks the
TCP stream for exactly those 2 bytes, then for exactly the body: two ``recv`` calls, each with
trio's checkpoint and readiness bookkeeping, for every message of every connection (each gossip
copy, each invoke, each Yamux window update). ``TrioTCPStream.read(n)`` may return fewer bytes
than asked (callers loop through ``read_exactly``), so asking the socket for up to
:data:`READ_AHEAD` bytes and keeping the rest for the next calls is within its contract.

Ordering rests on one reader per connection, which py-libp2p guarantees: the security
handshake, then the muxer's single read loop, all through the same ``TrioTCPStream`` (TLS too:
its session reads the raw connection). Bytes kept here are never visible to anything that
reads the socket another way; nothing in py-libp2p does once the stream is wrapped.

:func:`patch_buffered_tcp_reads` installs the read on ``TrioTCPStream`` once per process; the
library's read (locks, error translation, EOF as ``b""``) still does every socket read.
Pinned to libp2p 0.8.1: re-check ``libp2p.io.trio.TrioTCPStream.read`` when upgrading.
"""

from __future__ import annotations

from typing import Any

from libp2p.io.trio import TrioTCPStream

#: Bytes asked of the socket when the buffer is empty (a Yamux frame is at most 256 KiB + 12).
READ_AHEAD = 64 * 1024

_library_read = TrioTCPStream.read


async def buffered_read(self: Any, n: int | None = None) -> bytes:
    """``TrioTCPStream.read`` that reads ahead; returns at most ``n`` bytes (all if None)."""
    if n == 0:
        return b""
    buffer: bytearray | None = self.__dict__.get("_read_ahead")
    if buffer:
        if n is None or n >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
            return data
        data = bytes(buffer[:n])
        del buffer[:n]
        return data
    chunk: bytes = await _library_read(self, None if n is None else max(n, READ_AHEAD))
    if n is None or len(chunk) <= n:
        return chunk
    if buffer is None:
        self._read_ahead = bytearray(chunk[n:])
    else:
        buffer += chunk[n:]
    return chunk[:n]


def patch_buffered_tcp_reads() -> None:
    """Install :func:`buffered_read` as ``TrioTCPStream.read`` (idempotent)."""
    current = TrioTCPStream.read
    if current is buffered_read:
        return
    if current is not _library_read:
        raise RuntimeError("libp2p TrioTCPStream.read changed: cannot buffer TCP reads")
    TrioTCPStream.read = buffered_read  # type: ignore[method-assign]


__all__ = ["READ_AHEAD", "buffered_read", "patch_buffered_tcp_reads"]
