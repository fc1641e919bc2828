"""Replying from a behaviour without ever raising (Go's ``sendReply``).

A behaviour handler's job ends with one reply; if the request has no continuation or the
requester is gone, Go logs and drops the reply. Doing the same here keeps a failed reply from
surfacing as a handler crash in the dispatcher.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dms.actor import Envelope
from dms.errors import DMSError

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)


async def send_reply(node: Node, request: Envelope, payload: Any) -> None:
    """Answer ``request`` with ``payload``; log (do not raise) when that is impossible."""
    if not request.options.reply_to:
        log.debug("%s from %s has no continuation: no reply", request.behavior, request.from_)
        return
    try:
        await node.actor.reply(request, payload)
    except DMSError as exc:
        log.debug("could not reply to %s: %s", request.behavior, exc)
