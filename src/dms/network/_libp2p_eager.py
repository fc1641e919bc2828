"""Free locks on py-libp2p's message path are taken without a trip through the scheduler.

``trio.Lock.acquire`` yields to the scheduler even when the lock is free (it is a checkpoint).
A direct message passes six such locks between the moment it is signed and the ``send()`` on
the socket (our per-peer stream lock, ``NetStream``'s state lock, the Yamux stream's writer
semaphore and window lock, the connection's frame lock, the TCP stream's write lock), and
about as many on its way in. trio runs the ready tasks in batches, one step each, and a task
that yields goes to the back of the next batch; so when N messages are sent at once (a fan-out
to N peers, or N requests answered together) each of the N tasks signs its message, yields at
the first lock, and the first byte reaches the wire only after all N are signed: measured on
``bench_fanout.py`` (N = 50), the invoker signed for 13.5 ms before its first write and the
helper process, which answers the N requests, ran every request through each step in lockstep,
so its first reply left after 75 ms, when it had done the whole batch's work. Each process
idled while the other worked.

:func:`patch_eager_locks` makes the locks of every new ``NetStream``, ``YamuxStream``, Yamux
connection and TCP stream *eager*: a free lock nobody waits for is taken at once (trio's own
``acquire_nowait``), a held one parks as before. Ownership hand-off on release is unchanged (a
released lock with waiters goes to the first waiter, so an eager acquire cannot jump the queue),
a pending cancellation is still raised at the acquire, and the path still yields right after
its ``send()`` (trio's socket send is a checkpoint): what goes is only the scheduling point
*before* the bytes are written, so a message leaves as soon as it is signed. No byte on the
wire changes. Process-wide like the other module-level replacements, idempotent, and pinned to
libp2p 0.8.1: it fails loudly if an attribute it expects is gone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import trio
from libp2p.io.trio import TrioTCPStream
from libp2p.network.stream.net_stream import NetStream
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

_PATCHED = "_dms_eager_locks"

#: The lock attributes made eager on each new instance (dotted: an attribute of an attribute).
EAGER_LOCKS: dict[type, tuple[str, ...]] = {
    NetStream: ("_state_lock",),
    YamuxStream: ("window_lock", "close_lock", "rw_lock._writer_lock"),
    Yamux: ("streams_lock", "_write_lock"),
    TrioTCPStream: ("read_lock", "write_lock"),
}


async def _acquire_eagerly(lock: Any, acquire: Callable[[], Any]) -> None:
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        lock.acquire_nowait()  # free and nobody queued: ours, no scheduling point
    except trio.WouldBlock:
        await acquire()  # held or contended: trio's own fair wait


def make_eager(lock: trio.Lock | trio.Semaphore) -> trio.Lock | trio.Semaphore:
    """Make ``lock`` (a ``trio.Lock`` or ``Semaphore``) eager; returns it. Idempotent.

    Must be called before anyone uses the lock (the replaced ``acquire`` is per instance).
    """
    if not getattr(lock, _PATCHED, False):
        original = lock.acquire
        lock.acquire = functools.partial(_acquire_eagerly, lock, original)  # type: ignore[method-assign]
        setattr(lock, _PATCHED, True)
    return lock


def eager_lock() -> trio.Lock:
    """A new ``trio.Lock`` whose uncontended acquire does not yield (see the module doc)."""
    lock = trio.Lock()
    make_eager(lock)
    return lock


def _resolve(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


def _eager_init(cls: type, names: Sequence[str]) -> None:
    original: Callable[..., None] | None = vars(cls).get("__init__")
    if original is None:
        raise RuntimeError(f"libp2p {cls.__name__} changed: no __init__ of its own to wrap")

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        for name in names:
            make_eager(_resolve(self, name))

    setattr(cls, "__init__", init)  # noqa: B010


def patch_eager_locks() -> None:
    """Make the message-path locks of py-libp2p's streams and connections eager (once)."""
    for cls, names in EAGER_LOCKS.items():
        if getattr(cls, _PATCHED, False):
            continue
        _eager_init(cls, names)
        setattr(cls, _PATCHED, True)


__all__ = ["EAGER_LOCKS", "eager_lock", "make_eager", "patch_eager_locks"]
