"""The provider side of ``/dms/deployment/constraint/edge`` (see :mod:`dms.orchestrator._edge`).

An orchestrator asks us (peer ``S``) whether our link to peer ``T`` meets an ensemble's edge
constraint before it places two nodes on us and ``T``. We ping ``T`` a few times and compare the
best round trip with the constraint; a peer we cannot reach fails the check.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dms import gojson
from dms.actor import Envelope
from dms.errors import DMSError
from dms.jobs import EDGE_CONSTRAINT
from dms.node._payloads import request_object
from dms.node._reply import send_reply
from dms.orchestrator import EDGE_PINGS, EdgeConstraintRequest

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)

PING_TIMEOUT = 1.0


def install_edge(node: Node) -> None:
    """Register ``/dms/deployment/constraint/edge`` on ``node``."""

    async def check(env: Envelope) -> None:
        try:
            request = EdgeConstraintRequest.from_json(request_object(env))
            if request.s != node.network.host_id:
                raise DMSError(f"this node is {node.network.host_id}, not S={request.s}")
            if request.t == request.s:
                ok, error = True, ""
            else:
                best = min(
                    [
                        await node.network.ping(request.t, timeout=PING_TIMEOUT)
                        for _ in range(EDGE_PINGS)
                    ]
                )
                rtt_ms = best * 1000
                ok = not request.rtt or rtt_ms <= request.rtt
                error = "" if ok else f"round trip {rtt_ms:.1f} ms exceeds {request.rtt} ms"
                if ok and request.bw:
                    error = "bandwidth not measured"
        except DMSError as exc:
            ok, error = False, str(exc)
        await send_reply(node, env, gojson.Struct(OK=ok, Error=error))

    # The capability is the behaviour's own name, as for every deployment behaviour: an
    # invocation carries a token for the behaviour it invokes, which a broader requirement
    # ("/dms/deployment") would never match.
    node.actor.add_behavior(EDGE_CONSTRAINT, check)
