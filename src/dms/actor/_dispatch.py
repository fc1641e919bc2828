"""The dispatch pipeline: from received bytes to a running behaviour handler (spec §2.3).

Order matters: the cheap checks come first so that junk costs little. For a direct message:

1. parse (malformed → drop);
2. ``to.id`` must be ours, and ``from.addr.host`` must be the peer that delivered the bytes
   (anti-spoofing; a local delivery arrives with our own host ID);
3. the rate limiter's ``allow``;
4. signature and expiry;
5. look-up of the behaviour by exact name (unknown or expired → drop);
6. the capability check (``Require``, or ``RequireBroadcast`` for a broadcast), skipped for a
   message from this very actor to itself;
7. one-shot behaviours are removed as they fire, so a replayed reply finds nothing;
8. the limiter's ``acquire`` (waits for a slot until the message expires: back-pressure rather
   than dropping) and the handler, in its own task, under a deadline equal to the expiry (an
   ``inline`` behaviour, the actor's own never-blocking reply continuation, runs in the
   delivering task instead: a task and a cancel scope less per invoke).

Nothing is ever dropped because a queue is full: there is no queue; the network's delivery task
awaits the pipeline. Every drop is logged with its reason and counted in :attr:`Dispatcher.stats`
so "why was my message ignored?" has an answer. Handler exceptions are logged and counted,
never propagated: one bad message must not take the actor down.

A broadcast is parsed and its signature verified once, by the gossip validator, which hands the
verified envelope to the topic handler through a small bounded cache keyed by the message bytes
(:class:`_VerifiedBroadcasts`); the handler then re-checks only the expiry. A message the cache
does not hold (evicted, or delivered without validation) takes the full path again.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import time
from collections.abc import Callable

import trio

from dms.actor._behavior import Behavior, BehaviorRegistry
from dms.actor._envelope import Envelope, EnvelopeExpired
from dms.actor._handle import Handle
from dms.actor._limiter import RateLimiter
from dms.actor._security import SecurityContext
from dms.errors import DMSError
from dms.network import TopicValidator, Validation

log = logging.getLogger(__name__)

#: How many recent drops :attr:`Dispatcher.recent_drops` keeps for inspection.
RECENT_DROPS = 64

#: Bounds of the validator → topic handler hand-off of verified broadcasts: entry count and
#: total message bytes. An entry normally lives only until its delivery, a few scheduler steps.
VERIFIED_BROADCASTS = 256
VERIFIED_BROADCAST_BYTES = 4 << 20


class DropReason(enum.StrEnum):
    """Why an incoming message was not handed to a behaviour (keys of the stats counter)."""

    MALFORMED = "malformed"
    WRONG_RECIPIENT = "wrong_recipient"
    SPOOFED = "spoofed"
    RATE_LIMITED = "rate_limited"
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_BEHAVIOR = "unknown_behavior"
    TOPIC_MISMATCH = "topic_mismatch"
    NOT_BROADCAST = "not_broadcast"
    UNAUTHORIZED = "unauthorized"
    OWN_BROADCAST = "own_broadcast"
    NOT_RUNNING = "not_running"


#: Stats keys other than drop reasons.
ACCEPTED = "accepted"
HANDLED = "handled"
HANDLER_FAILED = "handler_failed"
HANDLER_TIMEOUT = "handler_timeout"


def trio_deadline(expire_ns: int) -> float:
    """The trio clock time at which Unix-ns ``expire_ns`` is reached."""
    return trio.current_time() + (expire_ns - time.time_ns()) / 1e9


class _VerifiedBroadcasts:
    """Broadcasts the validator parsed and verified, waiting for their delivery (oldest first).

    Keyed by the exact message bytes, so an entry is only ever taken for the very bytes that
    were verified; bounded by :data:`VERIFIED_BROADCASTS` entries and
    :data:`VERIFIED_BROADCAST_BYTES` bytes (oldest evicted), so messages the network validates
    but never delivers cannot pile up.
    """

    def __init__(
        self, max_entries: int = VERIFIED_BROADCASTS, max_bytes: int = VERIFIED_BROADCAST_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[bytes, Envelope] = collections.OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, data: bytes, env: Envelope) -> None:
        if not isinstance(data, bytes) or len(data) > self.max_bytes:
            return
        old = self._entries.pop(data, None)
        if old is not None:
            self._bytes -= len(data)
        self._entries[data] = env
        self._bytes += len(data)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            evicted, _ = self._entries.popitem(last=False)
            self._bytes -= len(evicted)

    def take(self, data: bytes) -> Envelope | None:
        if not isinstance(data, bytes):
            return None
        env = self._entries.pop(data, None)
        if env is not None:
            self._bytes -= len(data)
        return env


class Dispatcher:
    """Runs the pipeline for one actor; handlers run in the nursery given to :meth:`start`."""

    def __init__(
        self,
        security: SecurityContext,
        registry: BehaviorRegistry,
        limiter: RateLimiter,
        own_handle: Callable[[], Handle],
    ) -> None:
        self.security = security
        self.registry = registry
        self.limiter = limiter
        self._own_handle = own_handle
        self._nursery: trio.Nursery | None = None
        #: Counts per :class:`DropReason` value plus accepted/handled/handler_failed/timeout.
        self.stats: collections.Counter[str] = collections.Counter()
        #: The last few drops as ``(reason, behaviour, sender host)``.
        self.recent_drops: collections.deque[tuple[DropReason, str, str]] = collections.deque(
            maxlen=RECENT_DROPS
        )
        #: Envelopes the gossip validator verified, waiting for :meth:`receive_broadcast`.
        self._verified = _VerifiedBroadcasts()

    def start(self, nursery: trio.Nursery) -> None:
        """Begin accepting messages; handlers run in ``nursery``."""
        self._nursery = nursery

    def stop(self) -> None:
        """Stop accepting messages (those arriving later are dropped as not running)."""
        self._nursery = None

    def drop(self, reason: DropReason, env: Envelope | None = None, detail: str = "") -> None:
        """Count and log a dropped message."""
        self.stats[reason.value] += 1
        behavior = env.behavior if env is not None else ""
        host = env.from_.address.host if env is not None else ""
        self.recent_drops.append((reason, behavior, host))
        level = logging.INFO if reason is DropReason.UNAUTHORIZED else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(
                level,
                "dropped message %r from %s: %s%s",
                behavior,
                host or "?",
                reason.value,
                f" ({detail})" if detail else "",
            )

    # -- entry points -------------------------------------------------------------------------

    async def receive(self, data: bytes, remote_peer: str) -> None:
        """The network inbox handler: one direct message from ``remote_peer``."""
        try:
            env = Envelope.from_json(data)
        except DMSError as exc:
            self.drop(DropReason.MALFORMED, detail=str(exc))
            return
        if env.to.id != self.security.id:
            self.drop(DropReason.WRONG_RECIPIENT, env)
            return
        if env.from_.address.host != remote_peer:
            self.drop(DropReason.SPOOFED, env, f"delivered by {remote_peer}")
            return
        if not self.limiter.allow(env):
            self.drop(DropReason.RATE_LIMITED, env)
            return
        await self.dispatch(env)

    def validator(self, topic: str) -> TopicValidator:
        """The gossip validator for ``topic``: reject forgeries, ignore stale and own messages."""

        def validate(data: bytes, source: str) -> Validation:
            try:
                env = Envelope.from_json(data)
            except DMSError as exc:
                self.drop(DropReason.MALFORMED, detail=str(exc))
                return Validation.REJECT
            if not env.is_broadcast():
                self.drop(DropReason.NOT_BROADCAST, env)
                return Validation.REJECT
            if env.options.topic != topic:
                self.drop(DropReason.TOPIC_MISMATCH, env, f"{env.options.topic!r} on {topic!r}")
                return Validation.REJECT
            if env.from_ == self._own_handle():
                self.drop(DropReason.OWN_BROADCAST, env)
                return Validation.IGNORE
            if env.expired():
                self.drop(DropReason.EXPIRED, env)
                return Validation.IGNORE
            try:
                env.verify()
            except EnvelopeExpired:
                self.drop(DropReason.EXPIRED, env)
                return Validation.IGNORE
            except DMSError as exc:
                self.drop(DropReason.BAD_SIGNATURE, env, str(exc))
                return Validation.REJECT
            if not self.limiter.allow(env):
                self.drop(DropReason.RATE_LIMITED, env)
                return Validation.IGNORE
            self._verified.put(data, env)
            return Validation.ACCEPT

        return validate

    async def receive_broadcast(self, data: bytes, source: str) -> None:
        """The topic handler: a gossip message that passed :meth:`validator`."""
        env = self._verified.take(data)
        verified = env is not None
        if env is None:  # not (or no longer) cached: parse and verify again
            try:
                env = Envelope.from_json(data)
            except DMSError as exc:
                self.drop(DropReason.MALFORMED, detail=str(exc))
                return
        if not env.is_broadcast():
            self.drop(DropReason.NOT_BROADCAST, env)
            return
        if env.from_ == self._own_handle():
            self.drop(DropReason.OWN_BROADCAST, env)
            return
        await self.dispatch(env, verified=verified)

    # -- the pipeline -------------------------------------------------------------------------

    async def dispatch(self, env: Envelope, *, verified: bool = False) -> bool:
        """Steps 4-8 of the pipeline for a parsed envelope; True if a handler was started.

        ``verified`` says the signature of this very envelope object was already checked (by
        the gossip validator): only its expiry is checked again.
        """
        nursery = self._nursery
        if nursery is None:
            self.drop(DropReason.NOT_RUNNING, env)
            return False
        if verified:
            if env.expired():
                self.drop(DropReason.EXPIRED, env)
                return False
        else:
            try:
                env.verify()
            except EnvelopeExpired:
                self.drop(DropReason.EXPIRED, env)
                return False
            except DMSError as exc:
                self.drop(DropReason.BAD_SIGNATURE, env, str(exc))
                return False
        behavior = self.registry.get(env.behavior)
        if behavior is None:
            self.drop(DropReason.UNKNOWN_BEHAVIOR, env)
            return False
        if not self._authorized(env, behavior):
            return False
        if behavior.one_shot and not self.registry.take(behavior):
            self.drop(DropReason.UNKNOWN_BEHAVIOR, env, "one-shot behaviour already fired")
            return False
        deadline = trio_deadline(env.options.expire)
        if not await self.limiter.acquire(env, deadline):
            self.drop(DropReason.RATE_LIMITED, env, "no handler slot before expiry")
            return False
        nursery = self._nursery
        if nursery is None:  # stopped while waiting for a slot
            self.limiter.release(env)
            self.drop(DropReason.NOT_RUNNING, env)
            return False
        self.stats[ACCEPTED] += 1
        if behavior.inline:  # never blocks: no task, no deadline of its own (see Behavior)
            await self._run_inline(behavior, env)
        else:
            nursery.start_soon(self._run_handler, behavior, env, deadline)
        return True

    def _authorized(self, env: Envelope, behavior: Behavior) -> bool:
        own = self.security.id
        if env.from_.id == own and env.to.id == own:
            return True  # a message from this actor to itself
        if env.is_broadcast():
            if behavior.topic != env.options.topic:
                self.drop(
                    DropReason.TOPIC_MISMATCH,
                    env,
                    f"behaviour listens on {behavior.topic!r}, not {env.options.topic!r}",
                )
                return False
            ok = self.security.require_broadcast(env, behavior.topic, behavior.capabilities)
        else:
            ok = self.security.require(env, behavior.capabilities)
        if not ok:
            self.drop(DropReason.UNAUTHORIZED, env, f"needs {', '.join(behavior.capabilities)}")
        return ok

    async def _run_inline(self, behavior: Behavior, env: Envelope) -> None:
        try:
            await behavior.handler(env)
            self.stats[HANDLED] += 1
        except Exception:
            self.stats[HANDLER_FAILED] += 1
            log.exception("handler for %s failed", behavior.name)
        finally:
            self.limiter.release(env)

    async def _run_handler(self, behavior: Behavior, env: Envelope, deadline: float) -> None:
        try:
            with trio.move_on_at(deadline if math.isfinite(deadline) else math.inf) as scope:
                await behavior.handler(env)
            if scope.cancelled_caught:
                self.stats[HANDLER_TIMEOUT] += 1
                log.info("handler for %s ran past the message expiry", behavior.name)
            else:
                self.stats[HANDLED] += 1
        except Exception:
            self.stats[HANDLER_FAILED] += 1
            log.exception("handler for %s failed", behavior.name)
        finally:
            self.limiter.release(env)
