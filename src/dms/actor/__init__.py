"""The actor system's wire layer: handles, envelopes, nonces and stream frames.

Everything here is byte-compatible with the Go DMS (spec §2.1, §2.2, §2.4): envelopes marshal to
Go's ``encoding/json`` bytes, are signed over ``"dms:msg:"`` + those bytes, and travel in frames
of an 8-byte little-endian length followed by the JSON.
"""

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
from dms.actor._frame import (
    FRAME_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    decode_frame,
    encode_frame,
    frame_length,
)
from dms.actor._handle import Address, Handle
from dms.actor._nonce import NonceSource

__all__ = [
    "ALLOWED_KEY_TYPES",
    "DEFAULT_MESSAGE_TIMEOUT_NS",
    "FRAME_HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "SIGNATURE_PREFIX",
    "Address",
    "Envelope",
    "EnvelopeExpired",
    "EnvelopeOptions",
    "Handle",
    "InvalidSignature",
    "NonceSource",
    "decode_frame",
    "encode_frame",
    "frame_length",
    "sender_key",
]
