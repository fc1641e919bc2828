"""The actor system: wire layer (handles, envelopes) and actors on top of it.

Everything here is byte-compatible with the Go DMS (spec §2.1, §2.2, §2.4): envelopes marshal to
Go's ``encoding/json`` bytes and are signed over ``"dms:msg:"`` + those bytes. Framing them on a
stream (an 8-byte little-endian length, then the JSON) is the network's job: :mod:`dms.network`.

On top of that: :class:`SecurityContext` (an actor's key plus the shared capability context),
:class:`Actor` (behaviours, dispatch with capability checks, invoke/reply, broadcast, children),
the :class:`BehaviorRegistry`, the :class:`RateLimiter` and the :class:`DropReason` every refused
message is counted under.
"""

from dms.actor._actor import (
    BEHAVIOR_GC_INTERVAL,
    DEFAULT_TIMEOUT,
    HEALTHCHECK_BEHAVIOR,
    HEALTHCHECK_INTERVAL,
    REPLY_PREFIX,
    Actor,
)
from dms.actor._behavior import Behavior, BehaviorRegistry, Handler
from dms.actor._dispatch import Dispatcher, DropReason, trio_deadline
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
from dms.actor._limiter import RateLimiter, RateLimiterConfig
from dms.actor._nonce import NonceSource
from dms.actor._security import SecurityContext

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
