"""Reading and checking the envelope a REST client posts.

The body is read with a hard cap so an oversized upload is refused before it is buffered, parsed
with the actor layer's Go-style strict decoder, and re-encoded with Go's ``json.Marshal`` rules:
the Go DMS relays the envelope it *parsed*, not the bytes it received, so only Go-canonical
envelopes keep a valid signature on either implementation. Nothing here signs or verifies; the
client (the CLI) signs and the receiving actor verifies.
"""

from __future__ import annotations

from contextlib import aclosing

from fastapi import Request

from dms.actor import Envelope
from dms.api._errors import ApiError
from dms.errors import DMSError
from dms.network import FRAME_HEADER_SIZE, MAX_MESSAGE_SIZE

#: Largest request body accepted: an envelope never exceeds the 1 MiB frame limit.
MAX_BODY_SIZE = MAX_MESSAGE_SIZE


# The rest of a refused upload is never read, so the connection cannot carry another request:
# say so, or a keep-alive client would send its next request into a closing socket.
_CLOSE = {"connection": "close"}


async def read_body(request: Request, limit: int = MAX_BODY_SIZE) -> bytes:
    """The request body, refusing (400) more than ``limit`` bytes without buffering them."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"invalid Content-Length {declared!r}") from None
        if size > limit:
            raise ApiError(
                400,
                f"request body too large: {size} bytes, the limit is {limit}",
                headers=_CLOSE,
            )
    body = bytearray()
    # aclosing: leaving the loop early must finalise Starlette's generator now, not at GC.
    async with aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise ApiError(400, f"request body too large: over {limit} bytes", headers=_CLOSE)
    return bytes(body)


def parse_envelope(body: bytes) -> Envelope:
    """Decode a posted envelope as Go would; malformed or expired ones are a 400."""
    if not body.strip():
        raise ApiError(400, "invalid envelope: empty request body")
    try:
        envelope = Envelope.from_json(body)
    except DMSError as exc:
        raise ApiError(400, str(exc)) from None
    except (ValueError, RecursionError) as exc:  # defensive: the decoder should wrap these
        raise ApiError(400, f"invalid envelope: {exc}") from None
    if envelope.expired():
        raise ApiError(
            400, f"envelope expired: opt.exp {envelope.options.expire} ns is in the past"
        )
    return envelope


def encode_envelope(envelope: Envelope) -> bytes:
    """Go JSON of ``envelope``, refused (400) if it would not fit in one network frame."""
    data = envelope.to_json()
    if FRAME_HEADER_SIZE + len(data) > MAX_MESSAGE_SIZE:
        raise ApiError(
            400,
            f"message too large: {FRAME_HEADER_SIZE + len(data)} bytes framed, "
            f"the limit is {MAX_MESSAGE_SIZE}",
        )
    return data


def require_local_sender(envelope: Envelope, host_id: str) -> str:
    """The reply inbox (``from.addr.inbox``), which must live on this node.

    Replies are addressed to ``from.addr.host``/``from.addr.inbox``; the REST server can only
    catch them if that host is its own, so anything else would silently time out.
    """
    sender = envelope.from_.address
    if sender.host != host_id:
        raise ApiError(
            400,
            f"from.addr.host must be this node's host ID {host_id} "
            f"to receive replies, got {sender.host!r}",
        )
    if not sender.inbox:
        raise ApiError(400, "from.addr.inbox is empty: replies need an inbox to go to")
    return sender.inbox


def require_destination(envelope: Envelope) -> tuple[str, str]:
    """``(to.addr.host, to.addr.inbox)``, both required for a direct message."""
    target = envelope.to.address
    if not target.host:
        raise ApiError(400, "to.addr.host is empty: the envelope has no destination host")
    if not target.inbox:
        raise ApiError(400, "to.addr.inbox is empty: the envelope has no destination inbox")
    return target.host, target.inbox
