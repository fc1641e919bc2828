"""GossipSub with settings that work, and the bridge from our validators to libp2p's.

py-libp2p 0.8.1's gossipsub defaults deliver ~10 % of anything above 10 msg/s (spam protection
applies to our own publishes), prune every mesh to zero on loopback or behind one NAT (eclipse
protection counts unique IPs), heartbeat every 120 s, and drop messages when a 32-slot
subscriber or per-peer outbound queue fills (spec/py-libp2p-0.8.1.md §3). Every one of those
is set explicitly here; the two queue sizes are module constants the constructors do not
expose, so :func:`patch_pubsub_queues` raises them once per process.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libp2p.peer.id import ID
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub import rpc_queue
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub

from dms.network._base import TopicValidator, Validation
from dms.network._libp2p_gossip_reader import InlinePubsub
from dms.network._libp2p_records import patch_signed_records

log = logging.getLogger(__name__)

#: Queue sizes we run with (the library's are 32).
SUBSCRIPTION_QUEUE_SIZE = 1024
OUTBOUND_QUEUE_SIZE = 1024


def patch_pubsub_queues(
    subscription: int = SUBSCRIPTION_QUEUE_SIZE, outbound: int = OUTBOUND_QUEUE_SIZE
) -> None:
    """Raise py-libp2p's two hard-coded pubsub queue sizes, process-wide, idempotently.

    * ``libp2p.pubsub.pubsub.SUBSCRIPTION_CHANNEL_SIZE`` (32): the channel between pubsub and a
      subscriber, filled with ``send_nowait`` — full means the message is silently dropped.
      Read at ``subscribe`` time, so setting the module global works.
    * ``RpcQueue(max_size=OutBoundQueueSize)`` (32): the per-peer outbound queue, also
      drop-on-full. ``RpcQueue()`` is built without arguments and its default was bound when
      the function was defined, so the constant cannot be patched; its ``__defaults__`` can.

    Pinned to libp2p 0.8.1 (pyproject): re-check both names when upgrading. Setting the same
    values again is harmless, so callers need not track whether it already ran.
    """
    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = subscription
    defaults = rpc_queue.RpcQueue.__init__.__defaults__
    if defaults is None or len(defaults) != 2:
        raise RuntimeError("libp2p RpcQueue.__init__ changed: cannot raise its queue size")
    rpc_queue.RpcQueue.__init__.__defaults__ = (outbound, defaults[1])


@dataclass(frozen=True)
class GossipSettings:
    """GossipSub parameters (Go's defaults where py-libp2p's are unusable)."""

    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    heartbeat_interval: int = 1
    #: Per (forwarder, topic) cap; libp2p's 10/s also throttles our own publishes.
    max_messages_per_topic_per_second: float = 1000.0
    spam_protection: bool = False
    #: Counts unique IPs in a mesh: wrong on loopback, LANs and behind NAT.
    eclipse_protection: bool = False
    seen_ttl: int = 120
    validation_timeout: float = 5.0


def make_pubsub(host: Any, settings: GossipSettings) -> Pubsub:
    """A strict-signing Pubsub over a GossipSub router configured by ``settings``.

    The read loop is :class:`._libp2p_gossip_reader.InlinePubsub`'s (no task per message).
    """
    patch_pubsub_queues()
    patch_signed_records()
    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=settings.degree,
        degree_low=settings.degree_low,
        degree_high=settings.degree_high,
        heartbeat_interval=settings.heartbeat_interval,
        spam_protection_enabled=settings.spam_protection,
        max_messages_per_topic_per_second=settings.max_messages_per_topic_per_second,
        eclipse_protection_enabled=settings.eclipse_protection,
    )
    return InlinePubsub(
        host,
        router,
        strict_signing=True,
        seen_ttl=settings.seen_ttl,
        validation_timeout=settings.validation_timeout,
    )


@functools.lru_cache(maxsize=4096)
def message_source(from_id: bytes) -> tuple[ID, str]:
    """A message's signed ``from`` as a peer ID and its base58 text, remembered.

    base58 is pure-Python big-integer arithmetic (tens of microseconds), cached only per ``ID``
    object, and a gossip message needed a fresh one two or three times on its way to a handler.
    Bounded; the ID object is shared by the callers, which only read it.
    """
    source = ID(from_id)
    return source, source.to_base58()


def libp2p_validator(
    self_id: ID, topic: str, validator: TopicValidator
) -> Callable[[ID, Any], bool]:
    """Wrap our validator as a py-libp2p synchronous topic validator.

    py-libp2p 0.8.1 validators return a bool: there is no separate *ignore*, so both
    ``REJECT`` and ``IGNORE`` become ``False`` (drop, do not forward). Our own publications
    also pass through the validator before they are sent, so they are accepted here; they are
    filtered out on delivery instead. The source is the message's signed ``from`` (strict
    signing is on), not the forwarder.
    """

    def validate(forwarder: ID, msg: Any) -> bool:
        try:
            source, source_text = message_source(bytes(msg.from_id))
        except Exception:
            return False
        if source == self_id:
            return True
        try:
            verdict = validator(bytes(msg.data), source_text)
        except Exception:
            log.exception("pubsub validator for %s raised; rejecting", topic)
            return False
        if verdict is not Validation.ACCEPT:
            log.debug("pubsub %s from %s via %s: %s", topic, source, forwarder, verdict.value)
        return verdict is Validation.ACCEPT

    return validate
