"""The public behaviours: ``/public/hello``, ``/public/status`` and ``/broadcast/hello``.

They are how nodes (and users) discover each other: ``/public`` is normally granted network-wide,
so any node that trusts the same user can greet us or ask what machine we run on. Each answers
with the Go payload (``HelloResponse{DID}``, ``PublicStatusResponse{Status, Resources}``), so
Go and Python nodes can greet each other. ``/broadcast/hello`` arrives on gossip topic
``/nunet/hello`` and is answered point-to-point to the broadcaster's continuation.

``PublicStatusResponse`` carries the machine resources and, added by us, the node's
``Location`` from ``general.host_*`` and ``Executors`` (which back-ends run here, and why the
others do not) and ``Subnets`` (whether it can put allocations on an ensemble's private
network, and why not); Go's struct has none of these fields and Go decoders skip them. A user
can check what the node will bid with.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dms.actor import Envelope
from dms.did import peer_id_from_did
from dms.errors import DMSError
from dms.node._hello import PUBLIC_HELLO
from dms.node._payloads import executors_payload, hello_response, public_status_response
from dms.node._reply import send_reply
from dms.resources import Resources

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)

PUBLIC_STATUS = "/public/status"
BROADCAST_HELLO = "/broadcast/hello"
BROADCAST_HELLO_TOPIC = "/nunet/hello"


def install_public(node: Node) -> None:
    """Register the public behaviours and the ``/nunet/hello`` subscription on ``node``."""

    async def public_hello(env: Envelope) -> None:
        # The sender's context DID names its node key (the root actor's key is the node's key),
        # so it tells us which peer greeted us: half of the hello exchange.
        try:
            peer = str(peer_id_from_did(env.from_.did))
        except DMSError as exc:
            log.debug("hello from an unusable DID %s: %s", env.from_.did.uri, exc)
            return
        node.hello.hello_received(peer)
        await send_reply(node, env, hello_response(node.security.did))

    async def broadcast_hello(env: Envelope) -> None:
        await send_reply(node, env, hello_response(node.security.did))

    async def public_status(env: Envelope) -> None:
        executors = executors_payload(await node.executor_availability())
        refusal = node.subnet_refusal()
        extra = (node.location, executors, (refusal is None, refusal or ""))
        try:
            payload = public_status_response("OK", await node.machine(), *extra)
        except Exception as exc:  # a detector failure is a status, not a crash
            log.warning("machine resources detection failed: %s", exc)
            payload = public_status_response("ERROR", Resources(), *extra)
        await send_reply(node, env, payload)

    node.actor.add_behavior(PUBLIC_HELLO, public_hello)
    node.actor.add_behavior(PUBLIC_STATUS, public_status)
    node.actor.add_behavior(BROADCAST_HELLO, broadcast_hello, topic=BROADCAST_HELLO_TOPIC)
    node.topics.add(BROADCAST_HELLO_TOPIC)
