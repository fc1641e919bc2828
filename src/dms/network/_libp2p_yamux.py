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

import logging
from typing import Any

import trio
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


__all__ = ["patch_yamux_frame_writes", "patch_yamux_window_updates"]
