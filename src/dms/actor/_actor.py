"""Actors: a handle, a behaviour registry and a security context on top of a :class:`Network`.

An actor receives on ``(host, inbox)`` and answers the behaviours it registered; it sends by
attaching capability tokens and signing (spec §2.4). :meth:`Actor.invoke` is request/reply: the
request names a one-shot continuation behaviour (``/dms/actor/replyto/<nonce>``) that expires
with the request, and the reply is awaited under a trio deadline equal to that expiry, so a
peer that never answers costs exactly the timeout and leaves nothing registered.

Lifecycle is structured: ``await nursery.start(actor.run)`` registers the inbox (and topic
subscriptions) and returns once messages are accepted; cancelling the nursery stops the actor
and every handler it was running.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from dms.actor._behavior import BehaviorRegistry, Handler
from dms.actor._dispatch import Dispatcher
from dms.actor._envelope import DEFAULT_MESSAGE_TIMEOUT_NS, Envelope, EnvelopeOptions
from dms.actor._errors import ActorError, ActorNotRunning, InvokeTimeout, SendError
from dms.actor._handle import Address, Handle
from dms.actor._limiter import RateLimiter, RateLimiterConfig
from dms.actor._security import SecurityContext
from dms.crypto import Ed25519PrivateKey, PrivateKey
from dms.did import did_from_id
from dms.network import Network

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Prefix of the continuation behaviour an invocation's reply is sent to.
REPLY_PREFIX = "/dms/actor/replyto/"
#: The behaviour a supervisor calls to check a child is alive (spec §2.6).
HEALTHCHECK_BEHAVIOR = "/dms/actor/healthcheck"
#: How often a supervisor checks its children (Go's ``HealthCheckInterval``), in seconds.
HEALTHCHECK_INTERVAL = 30.0
#: Lifetime of the healthcheck grant a child gives its supervisor; re-granted once (Go does).
HEALTHCHECK_GRANT_NS = 2 * 3600 * 1_000_000_000
#: How often expired behaviours are collected, in seconds (Go: 120 s).
BEHAVIOR_GC_INTERVAL = 120.0
#: Default invocation / message timeout in seconds.
DEFAULT_TIMEOUT = DEFAULT_MESSAGE_TIMEOUT_NS / 1e9


class Actor:
    """One actor; see the module doc. ``supervisor`` is the handle of the actor that created it."""

    def __init__(
        self,
        network: Network,
        security: SecurityContext,
        inbox: str,
        *,
        supervisor: Handle | None = None,
        limits: RateLimiterConfig | None = None,
    ) -> None:
        if not inbox:
            raise ActorError("an actor needs an inbox name")
        self.network = network
        self.security = security
        self.inbox = inbox
        self.supervisor = supervisor
        self.behaviors = BehaviorRegistry()
        self.limiter = RateLimiter(limits)
        self._handle = Handle(security.id, security.did, Address(network.host_id, inbox))
        self.dispatcher = Dispatcher(security, self.behaviors, self.limiter, lambda: self._handle)
        self._topics: set[str] = set()
        self._running = False
        if supervisor is not None:
            self._grant_healthcheck()

    # -- identity -------------------------------------------------------------------------

    @property
    def handle(self) -> Handle:
        """Our handle: actor ID, capability-context DID, ``(host, inbox)``."""
        return self._handle

    @property
    def stats(self) -> dict[str, int]:
        """Dispatch counters (drop reasons, accepted, handled, ...), for tests and metrics."""
        return dict(self.dispatcher.stats)

    @property
    def running(self) -> bool:
        """True between :meth:`run` starting and being cancelled."""
        return self._running

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive and handle messages until cancelled (``await nursery.start(actor.run)``)."""
        try:
            async with trio.open_nursery() as nursery:
                self.dispatcher.start(nursery)
                self.network.register_inbox(self.inbox, self.dispatcher.receive)
                self._running = True
                for topic in sorted(self._topics):
                    await self._subscribe(topic)
                nursery.start_soon(self._collect_behaviors)
                if self.supervisor is not None:
                    nursery.start_soon(self._regrant_healthcheck)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._running = False
            self.dispatcher.stop()
            self.network.unregister_inbox(self.inbox)
            with trio.move_on_after(5) as scope:
                scope.shield = True
                for topic in sorted(self._topics):
                    try:
                        await self.network.unsubscribe(topic)
                    except Exception:
                        log.exception("could not unsubscribe from %s", topic)

    async def _collect_behaviors(self) -> None:
        while True:
            await trio.sleep(BEHAVIOR_GC_INTERVAL)
            removed = self.behaviors.gc()
            if removed:
                log.debug("collected %d expired behaviours", removed)

    # -- behaviours -----------------------------------------------------------------------

    def add_behavior(
        self,
        name: str,
        handler: Handler,
        *,
        capabilities: Iterable[str] | None = None,
        expiry_ns: int | None = None,
        one_shot: bool = False,
        topic: str | None = None,
    ) -> None:
        """Answer ``name`` with ``handler``; callers need ``capabilities`` (default ``[name]``).

        ``expiry_ns`` is an absolute Unix-ns time after which the behaviour is gone; ``topic``
        makes it a broadcast behaviour (also call :meth:`subscribe` for that topic).
        """
        self.behaviors.add(
            name,
            handler,
            capabilities=capabilities,
            expiry_ns=expiry_ns,
            one_shot=one_shot,
            topic=topic,
        )

    def remove_behavior(self, name: str) -> bool:
        """Stop answering ``name``; True if it was registered."""
        return self.behaviors.remove(name)

    async def subscribe(self, topic: str) -> None:
        """Receive broadcasts on ``topic`` (validated: signed, unexpired, on this topic)."""
        self._topics.add(topic)
        if self._running:
            await self._subscribe(topic)

    async def _subscribe(self, topic: str) -> None:
        await self.network.subscribe(
            topic, self.dispatcher.receive_broadcast, self.dispatcher.validator(topic)
        )

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving broadcasts on ``topic``."""
        self._topics.discard(topic)
        if self._running:
            await self.network.unsubscribe(topic)

    # -- sending --------------------------------------------------------------------------

    def message(
        self,
        to: Handle,
        behavior: str,
        payload: Any = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reply_to: str = "",
        topic: str = "",
    ) -> Envelope:
        """An unsigned envelope from us (Go's ``Message``); :meth:`send` signs it."""
        expire = time.time_ns() + int(timeout * 1e9)
        return Envelope(
            to=to,
            behavior=behavior,
            from_=self._handle,
            nonce=self.security.nonce(),
            options=EnvelopeOptions(expire, reply_to, topic),
        ).with_payload(payload)

    async def send(self, env: Envelope) -> Envelope:
        """Send ``env``; returns the envelope as sent (with tokens and signature).

        To ourselves (``to.id`` = our ID) it goes straight to our own dispatcher, which skips
        the capability check; Go sends such envelopes unchanged, we also sign one that is not
        signed yet (otherwise our own verifier would drop it). To anyone else, an unsigned
        envelope gets tokens for its behaviour (and a delegate token for its continuation) and
        is signed; a signed one is relayed as is. The network send is bounded by the expiry.
        """
        if env.to.id == self.security.id:
            if not env.signature:
                env = self.security.sign(env)
            await self.dispatcher.dispatch(env)
            return env
        if not env.signature:
            delegate = [env.options.reply_to] if env.options.reply_to else []
            env = self.security.provide(env, [env.behavior], delegate)
        address = env.to.address
        if not address.host or not address.inbox:
            raise SendError(f"cannot send {env.behavior}: the recipient has no host/inbox")
        timeout = (env.options.expire - time.time_ns()) / 1e9
        if timeout <= 0:
            raise SendError(f"cannot send {env.behavior}: the message has already expired")
        await self.network.send(address.host, address.inbox, env.to_json(), timeout=timeout)
        return env

    async def invoke(
        self, to: Handle, behavior: str, payload: Any = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Envelope:
        """Call ``behavior`` on ``to`` and return the reply envelope.

        Raises :class:`InvokeTimeout` when no reply arrives within ``timeout`` seconds (the
        request's expiry), or the network's error if the request cannot be delivered.
        """
        nonce = self.security.nonce()
        env = Envelope(
            to=to,
            behavior=behavior,
            from_=self._handle,
            nonce=nonce,
            options=EnvelopeOptions(time.time_ns() + int(timeout * 1e9), f"{REPLY_PREFIX}{nonce}"),
        ).with_payload(payload)
        return await self.invoke_envelope(env)

    async def invoke_envelope(self, env: Envelope) -> Envelope:
        """:meth:`invoke` for a prepared envelope (``opt.cont`` is set if empty)."""
        if not self._running:
            raise ActorNotRunning(f"actor {self.inbox} is not running: cannot receive a reply")
        if not env.options.reply_to:
            if env.signature:
                raise ActorError("a signed envelope without opt.cont cannot be invoked")
            if not env.nonce:
                env = dataclasses.replace(env, nonce=self.security.nonce())
            env = dataclasses.replace(
                env,
                options=dataclasses.replace(env.options, reply_to=f"{REPLY_PREFIX}{env.nonce}"),
            )
        cont = env.options.reply_to
        replies: list[Envelope] = []
        arrived = trio.Event()

        async def on_reply(reply: Envelope) -> None:
            # Runs inline in the delivering task; one-shot, so it fires at most once.
            replies.append(reply)
            arrived.set()

        behavior = self.behaviors.add(
            cont, on_reply, expiry_ns=env.options.expire, one_shot=True, inline=True
        )
        timeout = (env.options.expire - time.time_ns()) / 1e9
        deadline = trio.current_time() + max(0.0, timeout)
        try:
            with trio.move_on_at(deadline):
                await self.send(env)
                await arrived.wait()
                return replies[0]
            raise InvokeTimeout(
                f"no reply to {env.behavior} from {env.to.address.host or 'self'}"
                f"/{env.to.address.inbox} within {max(0.0, timeout):.3g}s"
            )
        finally:
            self.behaviors.take(behavior)

    async def reply(self, request: Envelope, payload: Any = None) -> Envelope:
        """Answer ``request`` on its continuation, expiring when the request does."""
        cont = request.options.reply_to
        if not cont:
            raise ActorError(f"cannot reply to {request.behavior}: it has no continuation")
        env = Envelope(
            to=request.from_,
            behavior=cont,
            from_=self._handle,
            nonce=self.security.nonce(),
            options=EnvelopeOptions(request.options.expire),
        ).with_payload(payload)
        return await self.send(env)

    async def publish(
        self,
        topic: str,
        behavior: str,
        payload: Any = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reply_to: str = "",
    ) -> Envelope:
        """Broadcast ``behavior`` on ``topic``; returns the envelope as published.

        Receivers answer on ``reply_to`` (register that behaviour first) if it is given.
        """
        env = self.message(
            Handle(), behavior, payload, timeout=timeout, reply_to=reply_to, topic=topic
        )
        env = self.security.provide_broadcast(env, topic, [behavior])
        await self.network.publish(topic, env.to_json())
        return env

    # -- children and supervision ---------------------------------------------------------

    def create_child(
        self,
        inbox: str,
        *,
        key: PrivateKey | None = None,
        limits: RateLimiterConfig | None = None,
    ) -> Actor:
        """A child actor on our host with a fresh Ed25519 key and our capability context.

        The child is supervised by us (it grants us the healthcheck capability); start it with
        ``await nursery.start(child.run)``.
        """
        security = SecurityContext(key or Ed25519PrivateKey.generate(), self.security.capabilities)
        return Actor(
            self.network,
            security,
            inbox,
            supervisor=self._handle,
            limits=limits or self.limiter.config,
        )

    def _grant_healthcheck(self) -> None:
        """Let the supervisor call our healthcheck behaviour (spec §2.6).

        The grant (sub = supervisor's context DID, aud = our actor DID) becomes a require anchor,
        so invocations chained from it are accepted for two hours.
        """
        assert self.supervisor is not None
        if self.supervisor.did.empty():
            return
        try:
            tokens = self.security.grant(
                self.supervisor.did,
                did_from_id(self.security.id),
                [HEALTHCHECK_BEHAVIOR],
                self.security.now_ns() + HEALTHCHECK_GRANT_NS,
                depth=0,
            )
            self.security.capabilities.add_require(tokens.tokens)
        except Exception:
            log.exception("could not grant the healthcheck capability to the supervisor")

    async def _regrant_healthcheck(self) -> None:
        await trio.sleep(HEALTHCHECK_GRANT_NS / 1e9 - 60)
        self._grant_healthcheck()
