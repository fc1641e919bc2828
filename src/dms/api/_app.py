"""The REST API of a node (spec §6): a thin relay between HTTP clients and the actor network.

Same routes, bodies and status codes as the Go DMS's gin server, so the Go CLI and ours can talk
to either. The API holds no business logic and no keys: clients post envelopes they signed, and
the server parses them, re-encodes them as Go does and hands them to the :class:`Network`;
``/invoke`` and ``/broadcast`` also catch the replies on a temporary inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

import trio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dms.actor import ROOT_INBOX, Envelope, Handle, trio_deadline
from dms.api import _schema
from dms.api._body import (
    encode_envelope,
    parse_envelope,
    read_body,
    require_destination,
    require_local_sender,
)
from dms.api._errors import ApiError, error_response, install_error_handlers
from dms.api._replies import ReplyInboxes, unless_disconnected
from dms.errors import NetworkError, NetworkTimeout
from dms.network import Network

log = logging.getLogger("dms.api")

#: Inboxes a request may never borrow: the node actor's own.
RESERVED_INBOXES = frozenset({ROOT_INBOX})

_TIMEOUT_MESSAGE = "request timeout"


def _json(data: bytes, status: int = 200) -> Response:
    # Bytes already in Go's JSON form: send them untouched rather than re-serialising.
    return Response(content=data, status_code=status, media_type="application/json")


def _timeout() -> Response:
    return error_response(408, _TIMEOUT_MESSAGE)


def create_app(
    network: Network,
    node_handle: Callable[[], Handle] | Handle,
    *,
    reserved_inbox: Callable[[str], bool] | None = None,
) -> FastAPI:
    """Build the REST API of the node that owns ``network``.

    ``node_handle`` is the node actor's root handle (``addr.inbox == "root"``), or a callable
    returning it when the handle is only known once the node has started. ``reserved_inbox``
    says whether an inbox belongs to a local actor and so may not be used as a temporary reply
    inbox (default: ``root``); the :class:`Network` interface cannot tell us which are taken.
    """
    get_handle: Callable[[], Handle] = (
        node_handle if callable(node_handle) else (lambda: node_handle)
    )
    inboxes = ReplyInboxes(network, reserved_inbox or RESERVED_INBOXES.__contains__)

    app = FastAPI(
        title="NuNet DMS",
        description=(
            "REST API of a NuNet Device Management Service node (Python implementation). "
            "Clients build and sign actor envelopes themselves; the node relays them."
        ),
        version="0.1.0",
    )
    app.state.reply_inboxes = inboxes
    install_error_handlers(app)

    @app.get(
        "/health",
        summary="Liveness check",
        description='Answers `{"status":"ok"}` while the node\'s HTTP server is running.',
        responses={
            200: {
                "description": "The server is up.",
                "content": _schema.json_content(
                    {"type": "object", "properties": {"status": {"type": "string"}}}
                ),
            }
        },
        tags=["node"],
    )
    async def health() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get(
        "/api/v1/actor/handle",
        summary="The node actor's handle",
        description=(
            "The node's root actor handle (inbox `root`). Clients put it in `to` to address "
            "the node and take `addr.host` from it for their own `from` handle, so replies "
            "come back to this node."
        ),
        responses={
            200: {
                "description": "Handle JSON",
                "content": _schema.json_content(_schema.HANDLE_SCHEMA),
            }
        },
        tags=["actor"],
    )
    async def handle() -> Response:
        return _json(get_handle().to_json())

    @app.post(
        "/api/v1/actor/send",
        summary="Send a signed envelope",
        description=(
            "Delivers the envelope to `to.addr.inbox` on `to.addr.host` and returns once the "
            "peer has it (Go's `SendMessageSync`), waiting at most until `opt.exp`. "
            "No reply is awaited."
        ),
        openapi_extra=_schema.envelope_request_body(),
        responses={
            200: {
                "description": "Delivered.",
                "content": _schema.json_content(
                    {"type": "object", "properties": {"message": {"type": "string"}}}
                ),
            },
            400: _schema.error("Malformed, oversized or expired envelope."),
            500: _schema.error("The network could not deliver it."),
        },
        tags=["actor"],
    )
    async def send(request: Request) -> Response:
        envelope = parse_envelope(await read_body(request))
        host, inbox = require_destination(envelope)
        data = encode_envelope(envelope)
        await _send(
            network, host, inbox, data, trio_deadline(envelope.options.expire), timeout_status=500
        )
        return JSONResponse({"message": "message sent"})

    @app.post(
        "/api/v1/actor/invoke",
        summary="Send a signed envelope and wait for its reply",
        description=(
            "Listens on `from.addr.inbox` (so `from.addr.host` must be this node's host ID), "
            "sends the envelope and returns the first envelope that arrives on that inbox "
            "before `opt.exp`, as Go JSON (its payload still base64 in `msg`). 408 if none "
            "arrives; 409 if another request is already using that inbox."
        ),
        openapi_extra=_schema.envelope_request_body(),
        responses={
            200: {
                "description": "The reply envelope.",
                "content": _schema.json_content(_schema.ENVELOPE_SCHEMA),
            },
            400: _schema.error("Malformed, oversized or expired envelope, or a foreign sender."),
            408: _schema.error("No reply before opt.exp (`request timeout`)."),
            409: _schema.error("The reply inbox is in use (`inbox busy`)."),
            500: _schema.error("The network could not deliver the request."),
        },
        tags=["actor"],
    )
    async def invoke(request: Request) -> Response:
        envelope = parse_envelope(await read_body(request))
        reply_inbox = require_local_sender(envelope, network.host_id)
        host, inbox = require_destination(envelope)
        data = encode_envelope(envelope)
        deadline = trio_deadline(envelope.options.expire)
        replies_in, replies_out = trio.open_memory_channel[Envelope](1)

        def sink(reply: Envelope, remote_peer: str) -> None:
            # Only the first reply counts, as in Go; later ones (or late ones) are dropped.
            with suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                replies_in.send_nowait(reply)

        async def exchange() -> Response:
            with trio.move_on_at(deadline):
                await _send(network, host, inbox, data, deadline, timeout_status=408)
                reply = await replies_out.receive()
                return _json(reply.to_json())
            return _timeout()

        with replies_in, replies_out, inboxes.hold(reply_inbox, sink):
            response = await unless_disconnected(request, exchange)
        return response if response is not None else _timeout()

    @app.post(
        "/api/v1/actor/broadcast",
        summary="Publish a signed broadcast and collect replies",
        description=(
            "The envelope must be a broadcast (empty `to`, `opt.topic` set). Listens on "
            "`from.addr.inbox` (so `from.addr.host` must be this node's host ID), publishes "
            "the envelope on gossip topic `opt.topic` and returns every envelope that arrives "
            "on that inbox until `opt.exp`, as a JSON array, or `null` if none did."
        ),
        openapi_extra=_schema.envelope_request_body(),
        responses={
            200: {
                "description": "The replies (array), or null.",
                "content": _schema.json_content(
                    {"type": "array", "items": _schema.ENVELOPE_SCHEMA, "nullable": True}
                ),
            },
            400: _schema.error(
                "Not a broadcast (`message is not a broadcast message`), or "
                "malformed, oversized or expired."
            ),
            409: _schema.error("The reply inbox is in use (`inbox busy`)."),
            500: _schema.error("Publishing failed."),
        },
        tags=["actor"],
    )
    async def broadcast(request: Request) -> Response:
        envelope = parse_envelope(await read_body(request))
        if not envelope.is_broadcast():
            raise ApiError(400, "message is not a broadcast message")
        reply_inbox = require_local_sender(envelope, network.host_id)
        data = encode_envelope(envelope)
        deadline = trio_deadline(envelope.options.expire)
        replies: list[Envelope] = []

        async def collect() -> Response:
            try:
                await network.publish(envelope.options.topic, data)
            except NetworkError as exc:
                raise ApiError(500, f"publish failed: {exc}") from None
            await trio.sleep_until(deadline)
            if not replies:
                return _json(b"null")
            return _json(b"[" + b",".join(reply.to_json() for reply in replies) + b"]")

        with inboxes.hold(reply_inbox, lambda reply, _peer: replies.append(reply)):
            response = await unless_disconnected(request, collect)
        return response if response is not None else _timeout()

    return app


async def _send(
    network: Network, host: str, inbox: str, data: bytes, deadline: float, *, timeout_status: int
) -> None:
    """Send before the envelope's deadline; a failure is the spec's 500.

    Running out of time is a failed send for ``/send`` (500, as Go's ``SendMessageSync``
    reports it) but a ``request timeout`` (408) for ``/invoke``, whose contract is "reply
    before opt.exp or 408".
    """
    timeout = deadline - trio.current_time()
    try:
        if timeout <= 0:
            raise NetworkTimeout("the envelope expired before it could be sent")
        await network.send(host, inbox, data, timeout=timeout)
    except NetworkTimeout as exc:
        if timeout_status == 408:
            raise ApiError(408, _TIMEOUT_MESSAGE) from None
        raise ApiError(timeout_status, f"send failed: {exc}") from None
    except NetworkError as exc:
        raise ApiError(500, f"send failed: {exc}") from None
