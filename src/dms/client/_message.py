"""Envelopes a user sends through a DMS, built the way the Go CLI builds them.

The user never holds the DMS's key: each message gets a fresh **ephemeral** Ed25519 actor key
(``from.id``) while ``from.did`` is the user's capability-context DID, so the DMS sees tokens
issued by the user's DID for an actor it has never met. The reply comes back to the DMS's host
on inbox ``user-<n>``, where ``n`` is the first nonce of the fresh security context; invocations
continue on ``/private/user/<n>`` (with a delegate token so the target may answer),
broadcasts on ``/public/user/<n>`` (no delegate token), as in ``cmd/actor/util.go``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dms.actor import ROOT_INBOX, Address, Envelope, EnvelopeOptions, Handle, SecurityContext
from dms.crypto import ID, Ed25519PrivateKey, PeerID, extract_public_key
from dms.did import DID, did_from_peer_id, id_from_did, peer_id_from_did
from dms.errors import InvalidInput
from dms.ucan import CapabilityContext

DEFAULT_TIMEOUT_S = 30.0


def parse_destination(text: str) -> Handle:
    """A destination as the Go CLI accepts it: a DID, a JSON handle, or a peer ID."""
    spec = text.strip()
    try:
        if spec.startswith("did:"):
            did = DID.parse(spec)
            return Handle(id_from_did(did), did, Address(str(peer_id_from_did(did)), ROOT_INBOX))
        if spec.startswith("{"):
            return Handle.from_json(spec)
        peer = PeerID.parse(spec)
        key = extract_public_key(peer)
        return Handle(
            ID.from_public_key(key), did_from_peer_id(peer), Address(str(peer), ROOT_INBOX)
        )
    except InvalidInput:
        raise
    except Exception as exc:  # any decoding failure is the user's input, said in one line
        raise InvalidInput(f"invalid destination {text!r}: {exc}") from None


@dataclass(frozen=True)
class UserMessage:
    """A signed envelope ready to relay, and what the CLI needs to know about it."""

    envelope: Envelope
    invocation: bool
    broadcast: bool

    def to_json(self) -> str:
        return self.envelope.to_json().decode()


def build_message(
    capabilities: CapabilityContext,
    dms_handle: Handle,
    behavior: str,
    payload: Any,
    *,
    destination: str | None = None,
    topic: str | None = None,
    invocation: bool = False,
    timeout_s: float | None = None,
    expiry_ns: int | None = None,
) -> UserMessage:
    """Build and sign a message from the user to ``destination`` (default: the DMS itself)."""
    if topic and destination:
        raise InvalidInput("a broadcast has no destination: give either --dest or --broadcast")
    if topic and invocation:
        raise InvalidInput("a broadcast cannot be an invocation: give either -i or --broadcast")
    if timeout_s is not None and expiry_ns is not None:
        raise InvalidInput("give either --timeout or --expiry, not both")
    if not behavior.startswith("/"):
        raise InvalidInput(f"invalid behavior {behavior!r}: behaviors are paths like /public/hello")
    security = SecurityContext(Ed25519PrivateKey.generate(), capabilities)
    first = security.nonce()
    source = Handle(security.id, security.did, Address(dms_handle.address.host, f"user-{first}"))
    if topic:
        target = Handle()
        reply_to = f"/public/user/{first}"
    else:
        target = parse_destination(destination) if destination else dms_handle
        reply_to = f"/private/user/{first}" if invocation else ""
    now = time.time_ns()
    if expiry_ns is not None:
        expire = expiry_ns
    else:
        expire = now + int((timeout_s if timeout_s else DEFAULT_TIMEOUT_S) * 1e9)
    if expire <= now:
        raise InvalidInput("the message would already be expired")
    envelope = Envelope(
        to=target,
        behavior=behavior,
        from_=source,
        nonce=security.nonce(),
        options=EnvelopeOptions(expire, reply_to, topic or ""),
    ).with_payload(payload)
    if topic:
        envelope = security.provide_broadcast(envelope, topic, [behavior])
    else:
        delegate = [reply_to] if reply_to else []
        envelope = security.provide(envelope, [behavior], delegate)
    return UserMessage(envelope, invocation=bool(reply_to) and not topic, broadcast=bool(topic))


def read_at_file(text: str, what: str = "") -> str:
    """``text`` itself, or the contents of ``FILE`` when ``text`` is ``@FILE``.

    An unreadable file raises :class:`InvalidInput` (``cannot read <what> file FILE: ...``, or
    ``cannot read FILE: ...`` without ``what``).
    """
    if not text.startswith("@"):
        return text
    name = text[1:]
    try:
        return Path(name).read_text()
    except OSError as exc:
        subject = f"{what} file {name}" if what else name
        raise InvalidInput(f"cannot read {subject}: {exc.strerror}") from None


def payload_from_text(text: str | None) -> Any:
    """The ``<payload>`` argument: JSON when it parses as JSON, else the plain string (as Go).

    ``@FILE`` reads the payload from a file (large payloads do not fit in an argument).
    """
    if text is None or text == "":
        return None
    text = read_at_file(text, "payload")
    try:
        return json.loads(text)
    except ValueError:
        return text
