"""The actor system: wire layer (handles, envelopes, frames) and actors on top of it.

Everything here is byte-compatible with the Go DMS (spec §2.1, §2.2, §2.4): envelopes marshal to
Go's ``encoding/json`` bytes, are signed over ``"dms:msg:"`` + those bytes, and travel in frames
of an 8-byte little-endian length followed by the JSON.

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
from dms.actor._handle import Address, Handle
from dms.actor._limiter import RateLimiter, RateLimiterConfig
from dms.actor._nonce import NonceSource
from dms.actor._security import SecurityContext

# Framing belongs to the network layer (dms.network._frame); re-exported for existing importers.
from dms.network import (
    FRAME_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    check_frame_size,
    decode_frame,
    encode_frame,
    frame_length,
)

__all__ = [
    "ALLOWED_KEY_TYPES",
    "BEHAVIOR_GC_INTERVAL",
    "DEFAULT_MESSAGE_TIMEOUT_NS",
    "DEFAULT_TIMEOUT",
    "FRAME_HEADER_SIZE",
    "HEALTHCHECK_BEHAVIOR",
    "HEALTHCHECK_INTERVAL",
    "MAX_MESSAGE_SIZE",
    "REPLY_PREFIX",
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
    "check_frame_size",
    "decode_frame",
    "encode_frame",
    "frame_length",
    "sender_key",
    "trio_deadline",
]
