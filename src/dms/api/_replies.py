"""Temporary reply inboxes for ``/invoke`` and ``/broadcast``.

The Go DMS registers a stream handler for ``actor/<from.inbox>/messages/0.0.1`` for the length
of one request and removes it afterwards. We do the same on the :class:`~dms.network.Network`,
with two guards Go lacks: an inbox already held by another request (or reserved by the node,
like ``root``) is refused with 409 instead of being hijacked, and the inbox is always
unregistered when the request ends, whether by reply, expiry, client disconnect or error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import trio
from fastapi import Request

from dms.actor import Envelope
from dms.api._errors import ApiError
from dms.errors import DMSError
from dms.network import Network

log = logging.getLogger("dms.api")

T = TypeVar("T")

ReplySink = Callable[[Envelope, str], None]
"""Receives ``(reply, remote_peer_id)`` for each parseable envelope sent to the inbox."""


class ReplyInboxes:
    """The temporary inboxes currently held by REST requests on one network host."""

    def __init__(self, network: Network, reserved: Callable[[str], bool]) -> None:
        self._network = network
        self._reserved = reserved
        self._active: set[str] = set()

    @property
    def active(self) -> frozenset[str]:
        """Inboxes held right now (for tests and diagnostics)."""
        return frozenset(self._active)

    @contextmanager
    def hold(self, inbox: str, sink: ReplySink) -> Iterator[None]:
        """Deliver envelopes sent to ``inbox`` to ``sink`` until the block exits.

        Messages that arrive after the block (handler tasks the network had already started)
        are dropped, so ``sink`` is never called once the request is over.
        """
        if inbox in self._active or self._reserved(inbox):
            raise ApiError(409, "inbox busy")
        open_ = True

        async def handler(data: bytes, remote_peer: str) -> None:
            if not open_:
                return
            try:
                envelope = Envelope.from_json(data)
            except DMSError as exc:
                log.debug(
                    "dropping malformed reply on inbox %s from %s: %s", inbox, remote_peer, exc
                )
                return
            sink(envelope, remote_peer)

        self._active.add(inbox)
        try:
            self._network.register_inbox(inbox, handler)
            yield
        finally:
            open_ = False
            self._network.unregister_inbox(inbox)
            self._active.discard(inbox)


async def _cancel_on_disconnect(request: Request, scope: trio.CancelScope) -> None:
    # The body has been read, so the next ASGI event is http.disconnect: the client gave up.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def unless_disconnected(request: Request, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``work``; return its result, or ``None`` if the HTTP client disconnects first.

    Hypercorn does not cancel a request's task when the client goes away, it only queues
    ``http.disconnect``; without this, an abandoned ``/invoke`` would hold its inbox until
    ``opt.exp``. A single exception from ``work`` is re-raised as itself (not as a group) so
    the error handlers see :class:`ApiError`.
    """
    result: list[T] = []
    try:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                result.append(await work())
                nursery.cancel_scope.cancel()

            nursery.start_soon(_cancel_on_disconnect, request, nursery.cancel_scope)
            nursery.start_soon(run)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    return result[0] if result else None
