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

from typing import Any

from libp2p.stream_muxer.yamux import yamux as yamux_module

_PATCHED = "_dms_go_yamux_window"


async def _go_yamux_window_update(self: Any, *, bytes_read: int = 0) -> None:
    """Send a WINDOW_UPDATE only when at least half the receive window was consumed."""
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


__all__ = ["patch_yamux_window_updates"]
