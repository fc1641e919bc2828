"""Rate limits on incoming messages, counted as handlers in flight (spec §2.5).

Go's limiter has two thresholds per class: ``Allow`` (checked when a message arrives, before the
costly signature and capability checks) and a slightly higher ``Acquire`` (taken just before the
handler runs), so messages that passed ``Allow`` are rarely refused later. Classes: behaviours
under ``/public/`` (anyone may call them, so they are the flooding risk), broadcasts (and per
topic), and everything else (authenticated direct messages), which is not limited.

Unlike Go we do not drop a message whose ``Acquire`` fails: :meth:`RateLimiter.acquire` waits
for a slot until the message's deadline, so a burst is slowed down (back-pressure) rather than
lost; only a message that cannot be started before it expires is refused.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from dms.actor._envelope import Envelope

PUBLIC_PREFIX = "/public/"


@dataclass(frozen=True)
class RateLimiterConfig:
    """Thresholds (handlers in flight); the defaults are Go's ``DefaultRateLimiterConfig``."""

    public_allow: int = 4096
    public_acquire: int = 4112
    broadcast_allow: int = 1024
    broadcast_acquire: int = 1040
    topic_default: int = 128
    topic_limits: Mapping[str, int] = field(default_factory=dict)

    def topic_limit(self, topic: str) -> int:
        """The in-flight limit for broadcasts on ``topic``."""
        return self.topic_limits.get(topic, self.topic_default)


class _Class(enum.Enum):
    PUBLIC = "public"
    BROADCAST = "broadcast"
    UNLIMITED = "unlimited"


def _classify(env: Envelope) -> _Class:
    if env.is_broadcast():
        return _Class.BROADCAST
    if env.behavior.startswith(PUBLIC_PREFIX):
        return _Class.PUBLIC
    return _Class.UNLIMITED


class RateLimiter:
    """Counts in-flight handlers per class and topic; see the module doc."""

    def __init__(self, config: RateLimiterConfig | None = None) -> None:
        self.config = config or RateLimiterConfig()
        self._public = 0
        self._broadcast = 0
        self._topics: dict[str, int] = {}
        self._changed = trio.Event()

    def in_flight(self) -> dict[str, int]:
        """Current counts, for stats and tests."""
        return {"public": self._public, "broadcast": self._broadcast, **self._topics}

    def allow(self, env: Envelope) -> bool:
        """May this message enter the pipeline? (cheap check on arrival, never waits)"""
        kind = _classify(env)
        if kind is _Class.PUBLIC:
            return self._public < self.config.public_allow
        if kind is _Class.BROADCAST:
            topic = env.options.topic
            return self._broadcast < self.config.broadcast_allow and self._topics.get(
                topic, 0
            ) < self.config.topic_limit(topic)
        return True

    def _fits(self, kind: _Class, topic: str) -> bool:
        if kind is _Class.PUBLIC:
            return self._public < self.config.public_acquire
        if kind is _Class.BROADCAST:
            return self._broadcast < self.config.broadcast_acquire and self._topics.get(
                topic, 0
            ) < self.config.topic_limit(topic)
        return True

    def try_acquire(self, env: Envelope) -> bool:
        """Take a slot for this message's handler if one is free now."""
        kind, topic = _classify(env), env.options.topic
        if not self._fits(kind, topic):
            return False
        if kind is _Class.PUBLIC:
            self._public += 1
        elif kind is _Class.BROADCAST:
            self._broadcast += 1
            self._topics[topic] = self._topics.get(topic, 0) + 1
        return True

    async def acquire(self, env: Envelope, deadline: float = math.inf) -> bool:
        """Take a slot, waiting for one until ``deadline`` (trio time); False if none came."""
        if self.try_acquire(env):  # the usual case: no cancel scope needed
            return True
        with trio.move_on_at(deadline):
            while not self.try_acquire(env):
                await self._changed.wait()
            return True
        return False

    def release(self, env: Envelope) -> None:
        """Give back the slot taken by :meth:`acquire` once the handler is done."""
        kind, topic = _classify(env), env.options.topic
        if kind is _Class.PUBLIC:
            self._public = max(0, self._public - 1)
        elif kind is _Class.BROADCAST:
            self._broadcast = max(0, self._broadcast - 1)
            left = self._topics.get(topic, 0) - 1
            if left > 0:
                self._topics[topic] = left
            else:
                self._topics.pop(topic, None)
        else:
            return
        self._changed.set()
        self._changed = trio.Event()
