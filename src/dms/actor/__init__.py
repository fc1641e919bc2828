"""The actor system: wire layer (handles, envelopes) and actors on top of it.

Everything here is byte-compatible with the Go DMS (spec §2.1, §2.2, §2.4): envelopes marshal to
Go's ``encoding/json`` bytes and are signed over ``"dms:msg:"`` + those bytes. Framing them on a
stream (an 8-byte little-endian length, then the JSON) is the network's job: :mod:`dms.network`.

On top of that: :class:`SecurityContext` (an actor's key plus the shared capability context),
:class:`Actor` (behaviours, dispatch with capability checks, invoke/reply, broadcast, children),
the :class:`BehaviorRegistry`, the :class:`RateLimiter` and the :class:`DropReason` every refused
message is counted under.

The wire layer (envelopes, handles, security contexts, errors) is imported with the package; the
runtime (:class:`Actor`, the dispatcher, the rate limiter: trio and the network) is loaded on
first use of one of its names, so a client that only builds and signs messages (the CLI) does not
pay for trio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dms._lazy import lazy_names
from dms.actor._behavior import Behavior, BehaviorRegistry, Handler
from dms.actor._envelope import (
    ALLOWED_KEY_TYPES,
    DEFAULT_MESSAGE_TIMEOUT_NS,
    SIGNATURE_PREFIX,
    Envelope,
    EnvelopeExpired,
    EnvelopeOptions,
    InvalidSignature,
    sender_key,
)
from dms.actor._errors import ActorError, ActorNotRunning, InvokeTimeout, SendError
from dms.actor._handle import ROOT_INBOX, Address, Handle
from dms.actor._nonce import NonceSource
from dms.actor._security import SecurityContext

if TYPE_CHECKING:
    from dms.actor._actor import (
        BEHAVIOR_GC_INTERVAL,
        DEFAULT_TIMEOUT,
        HEALTHCHECK_BEHAVIOR,
        HEALTHCHECK_INTERVAL,
        REPLY_PREFIX,
        Actor,
    )
    from dms.actor._dispatch import Dispatcher, DropReason, trio_deadline
    from dms.actor._limiter import RateLimiter, RateLimiterConfig

#: The runtime (trio, the network) behind each lazily loaded name: module -> names.
_RUNTIME: dict[str, tuple[str, ...]] = {
    "dms.actor._actor": (
        "BEHAVIOR_GC_INTERVAL",
        "DEFAULT_TIMEOUT",
        "HEALTHCHECK_BEHAVIOR",
        "HEALTHCHECK_INTERVAL",
        "REPLY_PREFIX",
        "Actor",
    ),
    "dms.actor._dispatch": ("Dispatcher", "DropReason", "trio_deadline"),
    "dms.actor._limiter": ("RateLimiter", "RateLimiterConfig"),
}
__getattr__, __dir__ = lazy_names(__name__, globals(), _RUNTIME)


__all__ = [
    "ALLOWED_KEY_TYPES",
    "BEHAVIOR_GC_INTERVAL",
    "DEFAULT_MESSAGE_TIMEOUT_NS",
    "DEFAULT_TIMEOUT",
    "HEALTHCHECK_BEHAVIOR",
    "HEALTHCHECK_INTERVAL",
    "REPLY_PREFIX",
    "ROOT_INBOX",
    "SIGNATURE_PREFIX",
    "Actor",
    "ActorError",
    "ActorNotRunning",
    "Address",
    "Behavior",
    "BehaviorRegistry",
    "Dispatcher",
    "DropReason",
    "Envelope",
    "EnvelopeExpired",
    "EnvelopeOptions",
    "Handle",
    "Handler",
    "InvalidSignature",
    "InvokeTimeout",
    "NonceSource",
    "RateLimiter",
    "RateLimiterConfig",
    "SecurityContext",
    "SendError",
    "sender_key",
    "trio_deadline",
]
