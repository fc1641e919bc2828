"""Yamux receive-window updates the way go-yamux sends them: only when half the window is used.

py-libp2p 0.8.1's ``YamuxStream`` sends a WINDOW_UPDATE frame after nearly every read: its
"release on read" and "partial slack" branches credit each read back at once, and its auto-tune
doubles the target window on every update within 4 RTTs of the last, so a new stream that reads
a 2 KB message in a few small reads (multistream-select reads a varint, then a line) sends 4-5
updates of 256 KiB, 512 KiB, 1 MiB... Each update is a Yamux frame, a Noise message and a
``send()`` on the socket: measured on a Go-style invoke (a new stream each way), about 10 extra
frames per round trip at each end, for no data.

go-yamux (``sendWindowUpdate``) credits the window back only once the reader has consumed at
least half of it. :func:`patch_yamux_window_updates` gives py-libp2p's streams that rule, with
the window fixed at the initial 256 KiB (the sender can always fill half a window before it must
wait, so a reader that keeps reading always releases credit before the sender stalls). It is
process-wide, like the library's own ``PY_YAMUX_*`` settings, and idempotent; pinned to libp2p
0.8.1, it fails loudly if the method it replaces is gone.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import weakref
from typing import Any

import trio
from libp2p.io import utils as libp2p_io_utils
from libp2p.stream_muxer.yamux import yamux as yamux_module

_PATCHED = "_dms_go_yamux_window"
_QUIET = "_dms_quiet_frame_writes"
_original_write_frame = yamux_module.Yamux._write_frame


async def _go_yamux_window_update(self: Any, *, bytes_read: int = 0) -> None:
    """Send a WINDOW_UPDATE only when at least half the receive window was consumed.

    Called after every read, and almost always a no-op: the common case is decided without
    taking ``window_lock`` (no await happens between reading the fields and returning, and the
    library never holds that lock across an await), and only a likely update locks and
    re-checks.
    """
    buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
    if self.target_recv_window - (self.recv_window + buffered) < self.target_recv_window // 2:
        return
    async with self.window_lock:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = self.target_recv_window - (self.recv_window + buffered)
        if delta < self.target_recv_window // 2:
            return
        self.recv_window += delta
        self._pending_recv_release = 0
    await self.send_window_update(delta, skip_lock=True)


def patch_yamux_window_updates() -> None:
    """Replace ``YamuxStream._auto_tune_and_send_window_update`` (process-wide, once)."""
    stream_class = yamux_module.YamuxStream
    if getattr(stream_class, _PATCHED, False):
        return
    if not hasattr(stream_class, "_auto_tune_and_send_window_update"):
        raise RuntimeError("libp2p YamuxStream changed: cannot set its window-update rule")
    setattr(stream_class, "_auto_tune_and_send_window_update", _go_yamux_window_update)  # noqa: B010
    setattr(stream_class, _PATCHED, True)


async def _write_frame(self: Any, data: bytes) -> None:
    """``Yamux._write_frame`` without its per-frame debug line when debug logging is off.

    The library builds that line (header unpacked, flag names, an f-string) for every frame it
    sends, whether or not anything logs it; with DEBUG on for its logger the original runs.
    """
    if yamux_module.logger.isEnabledFor(logging.DEBUG):
        await _original_write_frame(self, data)
        return
    async with self._write_lock:
        await self.secured_conn.write(data)
    await trio.lowlevel.checkpoint()


def patch_yamux_frame_writes() -> None:
    """Replace ``Yamux._write_frame`` by :func:`_write_frame` (process-wide, once)."""
    muxer_class = yamux_module.Yamux
    if getattr(muxer_class, _QUIET, False):
        return
    if muxer_class._write_frame is not _original_write_frame:
        raise RuntimeError("libp2p Yamux changed: cannot replace its frame writer")
    setattr(muxer_class, "_write_frame", _write_frame)  # noqa: B010
    setattr(muxer_class, _QUIET, True)


# -- receiving: the common frames without the library's per-frame work ---------------------------

_FAST_READS = "_dms_fast_frame_reads"
_library_read_exactly = libp2p_io_utils.read_exactly
_library_read_data_body = yamux_module.Yamux._read_data_body
_HEADER = struct.Struct(yamux_module.YAMUX_HEADER_FORMAT)


async def _read_data_body(self: Any, length: int) -> bytes:
    """A DATA frame's body; the library's timeout, skipped when the body is already decrypted
    and waiting (the read cannot block then, and a cancel scope per frame is not free)."""
    conn = self.secured_conn
    waiting = getattr(conn, "high_watermark", 0) - getattr(conn, "low_watermark", 0)
    if waiting >= length:
        return await _library_read_exactly(conn, length)
    with trio.fail_after(yamux_module._yamux_data_read_timeout()):
        return await _library_read_exactly(conn, length)


async def _next_header(
    reader: Any, n: int, retry_count: int = libp2p_io_utils.DEFAULT_RETRY_READ_COUNT
) -> bytes:
    """The ``read_exactly`` that ``Yamux.handle_incoming`` calls for each frame header.

    Plain frames (no flags) on a stream the muxer knows, DATA and WINDOW_UPDATE, are most of
    a connection's traffic; they are applied here, with the same effects as the library's
    branches for them, and the next header is read. Every other frame (stream opening and
    closing, pings, go-away, unknown streams, oversized frames) is returned to the library's
    loop, which handles it as before. Errors reading a body end the connection from here, as
    a failed header read does; the library does the same for these frames in effect (the
    connection under them is gone).
    """
    owner = getattr(reader, _FAST_READS, None)
    muxer = owner() if owner is not None else None
    if (
        muxer is None
        or n != yamux_module.HEADER_SIZE
        or yamux_module.logger.isEnabledFor(logging.DEBUG)
    ):
        return await _library_read_exactly(reader, n)
    while True:
        header = await _library_read_exactly(reader, n)
        if not await _apply_plain_frame(muxer, header):
            return header


async def _apply_plain_frame(muxer: Any, header: bytes) -> bool:
    """Apply a flag-less DATA or WINDOW_UPDATE frame for a known stream; False otherwise."""
    version, typ, flags, stream_id, length = _HEADER.unpack(header)
    if version != 0 or flags or stream_id not in muxer.streams:
        return False
    if typ == yamux_module.TYPE_DATA:
        if length == 0 or length > yamux_module.MAX_WINDOW_SIZE:
            return False
        data = await muxer._read_data_body(length)
        async with muxer.streams_lock:
            stream = muxer.streams.get(stream_id)
            if stream is not None:
                muxer.stream_buffers[stream_id].extend(data)
                stream.recv_window -= len(data)
                if stream.recv_window < 0:
                    yamux_module.logger.warning(
                        "Stream %d: peer exceeded receive window by %d bytes",
                        stream_id,
                        -stream.recv_window,
                    )
                    stream.recv_window = 0
                muxer.stream_events[stream_id].set()
        return True
    if typ == yamux_module.TYPE_WINDOW_UPDATE:
        async with muxer.streams_lock:
            stream = muxer.streams.get(stream_id)
            if stream is not None:
                async with stream.window_lock:
                    stream.send_window += length
        return True
    return False


def _remember_muxer(init: Any) -> Any:
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        with contextlib.suppress(AttributeError, TypeError):
            setattr(self.secured_conn, _FAST_READS, weakref.ref(self))

    return wrapped


def patch_yamux_frame_reads() -> None:
    """Install :func:`_next_header` and :func:`_read_data_body` (process-wide, once).

    Only muxers created afterwards take the fast path (each marks its secured connection).
    """
    muxer_class = yamux_module.Yamux
    if getattr(muxer_class, _FAST_READS, False):
        return
    if (
        getattr(yamux_module, "read_exactly", None) is not _library_read_exactly
        or muxer_class._read_data_body is not _library_read_data_body
    ):
        raise RuntimeError("libp2p Yamux changed: cannot replace its frame reads")
    muxer_class.__init__ = _remember_muxer(muxer_class.__init__)  # type: ignore[method-assign]
    muxer_class._read_data_body = _read_data_body  # type: ignore[method-assign]
    setattr(yamux_module, "read_exactly", _next_header)  # noqa: B010
    setattr(muxer_class, _FAST_READS, True)


__all__ = ["patch_yamux_frame_reads", "patch_yamux_frame_writes", "patch_yamux_window_updates"]
