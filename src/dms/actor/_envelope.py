"""Envelopes: the signed message every actor sends, byte-compatible with the Go DMS.

The signature covers ``b"dms:msg:" + json.Marshal(envelope without sig)`` and a Go verifier
re-marshals the envelope it parsed, so :meth:`Envelope.to_json` reproduces Go's bytes exactly
(field order ``to, be, from, nonce, opt, msg, cap, sig``; ``cap``/``sig``/``cont``/``topic``
omitted when empty) and :meth:`Envelope.from_json` parses the way Go's decoder does
(see :mod:`dms.gojson`; a repeated key is refused, this being a signed object). Envelopes are
immutable; ``sign`` and ``with_payload`` return new ones.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dms import gojson
from dms.actor._handle import Handle, decode_handle
from dms.crypto import ID, KeyType, PrivateKey, PublicKey
from dms.errors import CryptoError, DMSError, InvalidInput

#: Prefix of the bytes an envelope signature covers.
SIGNATURE_PREFIX = b"dms:msg:"
#: Default lifetime of a message (the Go DMS's default timeout), in nanoseconds.
DEFAULT_MESSAGE_TIMEOUT_NS = 30 * 1_000_000_000
#: Key types an actor may sign with (Go's ``crypto.AllowedKey``).
ALLOWED_KEY_TYPES = frozenset({KeyType.ED25519, KeyType.SECP256K1})

_UINT64_LIMIT = 1 << 64
_ENVELOPE = gojson.Fields("to", "be", "from", "nonce", "opt", "msg", "cap", "sig")
_OPTIONS = gojson.Fields("exp", "cont", "topic")


class InvalidSignature(CryptoError):
    """An envelope is unsigned, signed by a key we do not accept, or its signature is wrong."""


class EnvelopeExpired(DMSError):
    """An envelope's ``opt.exp`` has passed; receivers drop it (gossip ignores, not rejects)."""


def _check_uint64(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _UINT64_LIMIT:
        raise InvalidInput(f"invalid {name}: {value!r} is not a uint64")


@dataclass(frozen=True)
class EnvelopeOptions:
    """``opt``: absolute expiry in Unix nanoseconds, reply behaviour (``cont``), gossip topic."""

    expire: int
    reply_to: str = ""
    topic: str = ""

    def __post_init__(self) -> None:
        _check_uint64(self.expire, "opt.exp")

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(exp=self.expire)
        if self.reply_to:
            out["cont"] = self.reply_to
        if self.topic:
            out["topic"] = self.topic
        return out


@dataclass(frozen=True)
class Envelope:
    """A message between actors, with the Go ``Envelope`` fields in their Go order.

    ``message`` is ``None`` only for a Go nil slice (``"msg":null``); it is kept apart from
    ``b""`` (``"msg":""``) because the two marshal differently and so sign differently.
    """

    to: Handle = field(default_factory=Handle)
    behavior: str = ""
    from_: Handle = field(default_factory=Handle)
    nonce: int = 0
    options: EnvelopeOptions = EnvelopeOptions(0)
    message: bytes | None = b""
    capability: bytes = b""
    signature: bytes = b""

    def __post_init__(self) -> None:
        _check_uint64(self.nonce, "nonce")

    # -- Go JSON ---------------------------------------------------------------------------

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct()
        out["to"] = self.to
        out["be"] = self.behavior
        out["from"] = self.from_
        out["nonce"] = self.nonce
        out["opt"] = self.options
        out["msg"] = self.message
        if self.capability:
            out["cap"] = self.capability
        if self.signature:
            out["sig"] = self.signature
        return out

    @cached_property
    def unsigned_json(self) -> bytes:
        """Go's ``json.Marshal`` of the envelope without its signature (what is signed).

        Built directly rather than through the generic encoder: every message is marshalled
        for signing, for sending and for verifying, and this is several times faster. The
        generic path (``gojson.marshal(envelope)``) stays the reference the tests compare with.
        """
        opt = self.options
        opt_json = b'{"exp":' + str(opt.expire).encode()
        if opt.reply_to:
            opt_json += b',"cont":' + gojson.string(opt.reply_to)
        if opt.topic:
            opt_json += b',"topic":' + gojson.string(opt.topic)
        parts = [
            b'{"to":',
            self.to.json,
            b',"be":',
            gojson.string(self.behavior),
            b',"from":',
            self.from_.json,
            b',"nonce":',
            str(self.nonce).encode(),
            b',"opt":',
            opt_json,
            b'},"msg":',
            b"null"
            if self.message is None
            else b'"' + gojson.b64encode(self.message).encode() + b'"',
        ]
        if self.capability:
            parts += [b',"cap":"', gojson.b64encode(self.capability).encode(), b'"']
        parts.append(b"}")
        return b"".join(parts)

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` of the envelope: the bytes to send."""
        if not self.signature:
            return self.unsigned_json
        sig = gojson.b64encode(self.signature).encode()
        return self.unsigned_json[:-1] + b',"sig":"' + sig + b'"}'

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Envelope:
        """Parse envelope JSON as Go does; refuse non-objects and fields of the wrong type."""
        return cls.from_value(gojson.loads(data, "envelope"))

    @classmethod
    def from_value(cls, value: Any) -> Envelope:
        """Build an envelope from already-decoded JSON (e.g. a REST body from ``json.loads``).

        Go's field matching (:mod:`dms.gojson`), except that a repeated key is refused: the
        envelope is signed, and two readers must never disagree about what it says.
        """
        if value is None:
            raise InvalidInput("invalid envelope: expected an object, got null")
        f = gojson.decode_struct(value, _ENVELOPE, "envelope", signed=True)
        opt = gojson.decode_struct(f.get("opt"), _OPTIONS, "envelope.opt", signed=True)
        # Every field is checked by its converter (the nonce is a uint64), so the fields are
        # set directly: the frozen dataclass's generated __init__ is a hot cost per message.
        env = object.__new__(cls)
        env.__dict__.update(
            to=decode_handle(f.get("to"), "envelope.to"),
            behavior=gojson.str_value(f.get("be"), "envelope.be"),
            from_=decode_handle(f.get("from"), "envelope.from"),
            nonce=gojson.uint64_value(f.get("nonce"), "envelope.nonce"),
            options=EnvelopeOptions(
                gojson.uint64_value(opt.get("exp"), "envelope.opt.exp"),
                gojson.str_value(opt.get("cont"), "envelope.opt.cont"),
                gojson.str_value(opt.get("topic"), "envelope.opt.topic"),
            ),
            message=gojson.bytes_value(f.get("msg"), "envelope.msg"),
            capability=gojson.bytes_value(f.get("cap"), "envelope.cap") or b"",
            signature=gojson.bytes_value(f.get("sig"), "envelope.sig") or b"",
        )
        return env

    # -- signing ---------------------------------------------------------------------------

    def signing_bytes(self) -> bytes:
        """``b"dms:msg:"`` + Go JSON of the envelope without its signature."""
        return SIGNATURE_PREFIX + self.unsigned_json

    def sign(self, key: PrivateKey) -> Envelope:
        """Return a copy signed by ``key``, which must be the key behind ``from.id``.

        Go's ``Sign`` refuses to sign for another actor; we also refuse key types a receiver
        would reject, so the mistake shows up at the sender.
        """
        if key.key_type not in ALLOWED_KEY_TYPES:
            raise CryptoError(f"cannot sign envelopes with a {key.key_type.name} key")
        if ID.from_public_key(key.public_key) != self.from_.id:
            raise CryptoError("cannot sign envelope: the key is not the sender's (from.id)")
        signed = self.evolve(signature=key.sign(self.signing_bytes()))
        signed.__dict__["unsigned_json"] = self.unsigned_json  # same content, minus nothing
        return signed

    def evolve(self, **changes: Any) -> Envelope:
        """``dataclasses.replace`` for the fields ``__post_init__`` does not check (not ``nonce``).

        A plain field copy: ``replace`` re-runs the generated ``__init__``, and an envelope is
        copied several times per message. Cached encodings are not carried over.
        """
        if "nonce" in changes or not changes.keys() <= _FIELD_NAMES:
            return dataclasses.replace(self, **changes)
        new = object.__new__(type(self))
        fields = new.__dict__
        for name in _FIELD_NAMES:
            fields[name] = getattr(self, name)
        fields.update(changes)
        return new

    def verify(self, now_ns: int | None = None) -> None:
        """Raise unless the envelope is unexpired and signed by the key in ``from.id``.

        Expiry is checked first: it is cheap and lets gossip ignore (not penalise) stale
        messages. ``now_ns`` defaults to the current time.
        """
        now = time.time_ns() if now_ns is None else now_ns
        if self.expired(now):
            raise EnvelopeExpired(
                f"envelope expired: exp {self.options.expire} ns is before now {now} ns"
            )
        if not self.signature:
            raise InvalidSignature("envelope is not signed")
        key = sender_key(self.from_)
        if not key.verify(self.signing_bytes(), self.signature):
            raise InvalidSignature("envelope signature does not match its sender (from.id)")

    # -- predicates --------------------------------------------------------------------------

    def is_broadcast(self) -> bool:
        """True for a gossip message: no recipient and a topic (Go's ``IsBroadcast``)."""
        return self.to.empty() and bool(self.options.topic)

    def expired(self, now_ns: int | None = None) -> bool:
        """True when ``now_ns`` (default: now) is past ``opt.exp``."""
        now = time.time_ns() if now_ns is None else now_ns
        return now > self.options.expire

    # -- payload -----------------------------------------------------------------------------

    def with_payload(self, payload: Any) -> Envelope:
        """Return a copy whose ``msg`` is the Go JSON of ``payload`` (``None`` → ``""``).

        The signature is dropped because it no longer covers the message.
        """
        message = b"" if payload is None else gojson.marshal(payload)
        return self.evolve(message=message, signature=b"")

    def decode_payload(self) -> Any:
        """The payload decoded from ``msg`` as plain JSON values; ``None`` when empty."""
        if not self.message:
            return None
        try:
            return json.loads(self.message.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"invalid envelope payload: {exc}") from None


def sender_key(handle: Handle) -> PublicKey:
    """The public key in ``handle.id``, refused unless Ed25519 or secp256k1."""
    if handle.id.empty():
        raise InvalidSignature("envelope sender has no actor ID")
    try:
        key = handle.id.public_key()
    except DMSError as exc:
        raise InvalidSignature(f"envelope sender ID is not a public key: {exc}") from None
    if key.key_type not in ALLOWED_KEY_TYPES:
        raise InvalidSignature(f"envelope sender key type {key.key_type.name} is not allowed")
    return key


#: Every dataclass field of Envelope (what :meth:`Envelope.evolve` copies).
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Envelope))
