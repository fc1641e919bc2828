"""The behaviour registry: what an actor answers to, and who may ask (spec §2.3).

A behaviour is looked up by its exact name. By default it requires the capability equal to its
name (capabilities are hierarchical, so a ``/dms/node`` token covers ``/dms/node/peers/list``);
it may instead list explicit capabilities. A behaviour can expire (reply continuations expire
with their request) and be one-shot (a reply is accepted once, so a replayed reply finds
nothing). Broadcast behaviours name the gossip topic they listen on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from dms.actor._envelope import Envelope
from dms.errors import InvalidInput

Handler = Callable[[Envelope], Awaitable[None]]
"""``async def handler(env: Envelope) -> None``: runs once per accepted message."""


@dataclass(frozen=True)
class Behavior:
    """One registered behaviour; ``expiry_ns`` is absolute Unix ns, 0 = never expires."""

    name: str
    handler: Handler
    capabilities: tuple[str, ...]
    expiry_ns: int = 0
    one_shot: bool = False
    topic: str = ""
    #: Run in the task that delivered the message, without a task or deadline of its own: for
    #: the actor's own handlers that never block (an invoke's reply continuation hands the
    #: reply to the waiting caller). Not for user handlers: a blocking one would stall delivery.
    inline: bool = False

    def expired(self, now_ns: int) -> bool:
        """True once past its expiry (never for ``expiry_ns`` 0)."""
        return bool(self.expiry_ns) and now_ns > self.expiry_ns


class BehaviorRegistry:
    """Behaviours by exact name; expired ones are invisible and removed lazily or by :meth:`gc`."""

    def __init__(self) -> None:
        self._behaviors: dict[str, Behavior] = {}

    def add(
        self,
        name: str,
        handler: Handler,
        *,
        capabilities: Iterable[str] | None = None,
        expiry_ns: int | None = None,
        one_shot: bool = False,
        topic: str | None = None,
        inline: bool = False,
    ) -> Behavior:
        """Register (or replace) ``name``; capabilities default to ``[name]``.

        ``inline``: see :attr:`Behavior.inline` (internal handlers that never block only).
        """
        if not name:
            raise InvalidInput("a behaviour needs a name")
        caps = (name,) if capabilities is None else tuple(capabilities)
        if not caps:
            raise InvalidInput(f"behaviour {name!r}: an empty capability list allows nobody")
        behavior = Behavior(name, handler, caps, expiry_ns or 0, one_shot, topic or "", inline)
        self._behaviors[name] = behavior
        return behavior

    def remove(self, name: str) -> bool:
        """Forget ``name``; True if it was registered."""
        return self._behaviors.pop(name, None) is not None

    def get(self, name: str, now_ns: int | None = None) -> Behavior | None:
        """The live behaviour called exactly ``name``, or None (an expired one is removed)."""
        behavior = self._behaviors.get(name)
        if behavior is None:
            return None
        if behavior.expired(time.time_ns() if now_ns is None else now_ns):
            del self._behaviors[name]
            return None
        return behavior

    def take(self, behavior: Behavior) -> bool:
        """Remove a one-shot behaviour as it fires; False if it is already gone (a replay)."""
        if self._behaviors.get(behavior.name) is behavior:
            del self._behaviors[behavior.name]
            return True
        return False

    def gc(self, now_ns: int | None = None) -> int:
        """Remove expired behaviours; returns how many were removed."""
        now = time.time_ns() if now_ns is None else now_ns
        dead = [name for name, b in self._behaviors.items() if b.expired(now)]
        for name in dead:
            del self._behaviors[name]
        return len(dead)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._behaviors)

    def __iter__(self) -> Iterator[Behavior]:
        return iter(list(self._behaviors.values()))

    def names(self) -> list[str]:
        """Registered names (expired ones included until collected), sorted."""
        return sorted(self._behaviors)
