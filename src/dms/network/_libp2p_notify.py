"""Stream open/close events are not fanned out to notifees that ignore them.

py-libp2p 0.8.1's swarm tells its notifees of every stream opened and closed
(``Swarm._notify``): it opens a nursery, spawns one task per notifee and waits for them all. A
host of ours has four notifees (the tag store, identify, pubsub, our redial fix) and none of them
does anything with a stream event: their ``opened_stream``/``closed_stream`` return at once (or
only checkpoint). Yet each event costs a nursery, four task spawns and a trip through the
scheduler for the task that opened or closed the stream, which waits behind every other ready
task before it can write its first byte. A Go-style message (one new stream each way) passes
about eight such events per round trip across the two ends.

:func:`patch_stream_notifications` makes ``Swarm._notify`` return at once for a stream event when
*every* registered notifee's method for it is trivial, decided from its code (cached per
function): a body that only returns ``None`` (a docstring, ``pass``, ``return None``), or only
awaits ``trio.lowlevel.checkpoint()``. If any notifee does real work, every notifee is called as
before. Other events (connected, disconnected, listen) are untouched, and so is the resource
release that ``notify_closed_stream`` does before notifying. No byte on the wire changes.
Process-wide and idempotent, like the other module-level replacements; pinned to libp2p 0.8.1,
it fails loudly if the method it replaces is gone.
"""

from __future__ import annotations

import dis
from collections.abc import Callable
from typing import Any

import trio
from libp2p.network.swarm import Swarm

_PATCHED = "_dms_quiet_stream_events"
_STREAM_EVENTS = frozenset({"opened_stream", "closed_stream"})
#: Opcodes of a coroutine that only returns a constant (3.11: generator set-up, RESUME, return).
_RETURN_ONLY = frozenset(
    {"RETURN_GENERATOR", "POP_TOP", "RESUME", "NOP", "CACHE", "LOAD_CONST", "RETURN_VALUE"}
)
#: ... plus what ``await trio.lowlevel.checkpoint()`` compiles to.
_CHECKPOINT_ONLY = _RETURN_ONLY | {
    "LOAD_GLOBAL",
    "LOAD_ATTR",
    "LOAD_METHOD",
    "PUSH_NULL",
    "PRECALL",
    "CALL",
    "GET_AWAITABLE",
    "SEND",
    "YIELD_VALUE",
    "JUMP_BACKWARD_NO_INTERRUPT",
}
_trivial_cache: dict[Any, bool] = {}


def is_trivial_callback(func: Callable[..., Any]) -> bool:
    """True if ``func`` (a notifee method) does nothing but return None or checkpoint."""
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    try:
        instructions = list(dis.get_instructions(func))
    except TypeError:
        return False
    opnames = {i.opname for i in instructions}
    if any(i.opname == "LOAD_CONST" and i.argval is not None for i in instructions):
        return False
    if opnames <= _RETURN_ONLY:
        return not code.co_names
    return (
        opnames <= _CHECKPOINT_ONLY
        and code.co_names == ("trio", "lowlevel", "checkpoint")
        and getattr(func, "__globals__", {}).get("trio") is trio
    )


def _ignores(notifee: Any, method: str) -> bool:
    func = getattr(type(notifee), method, None)
    if func is None:
        return False
    trivial = _trivial_cache.get(func)
    if trivial is None:
        trivial = _trivial_cache[func] = is_trivial_callback(func)
    return trivial


def patch_stream_notifications() -> None:
    """Replace ``Swarm._notify`` so stream events nobody handles cost nothing (once)."""
    if getattr(Swarm, _PATCHED, False):
        return
    original = vars(Swarm).get("_notify")
    if original is None:
        raise RuntimeError("libp2p Swarm changed: no _notify to wrap")

    async def _notify(self: Any, method: str, *args: Any) -> None:
        if method in _STREAM_EVENTS and all(_ignores(n, method) for n in self.notifees):
            return
        await original(self, method, *args)

    _notify.__doc__ = original.__doc__
    setattr(Swarm, "_notify", _notify)  # noqa: B010
    setattr(Swarm, _PATCHED, True)


__all__ = ["is_trivial_callback", "patch_stream_notifications"]
