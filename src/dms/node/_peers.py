"""The ``/dms/node/peers/*`` behaviours: the node's view of the peer-to-peer network.

They let the node's owner (``nunet actor cmd /dms/node/peers/...``) inspect and steer the
network layer remotely: list connected peers, show our ID and addresses, ping, connect, dump the
DHT routing table and the gossipsub scores. Payloads are Go's (see :mod:`._payloads`), and as in
Go every failure is reported in the response's ``Error`` field, never as a missing reply.

Where our stack knows less than go-libp2p, the Go shape is kept and the gap is documented:

* ``list`` returns the *connected* peers (Go returns its peerstore, which also remembers peers
  it was connected to before and itself);
* ``self`` joins our listen addresses with ``", "`` and strips the ``/p2p/<id>`` suffix, as
  Go's ``Host.Addrs()`` has none;
* ``dht`` asks the network for a ``dht_peers()`` view (peer IDs of the routing table) when it
  has one; timestamps we do not track are Go's zero time. Without one the list is empty (Go
  sends no reply at all on a non-libp2p network);
* ``score``: there is no gossipsub peer scoring yet, so each connected peer's snapshot carries
  only the application score (5 after hello both ways, 1 for a root-protocol peer, else 0) in
  ``AppSpecificScore`` and ``Score`` (application weight 1), with no topics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dms.actor import Envelope
from dms.crypto import PeerID
from dms.errors import DMSError
from dms.network import DEFAULT_TIMEOUT
from dms.node._payloads import (
    ERR_UNMARSHAL,
    DHTPeer,
    PeerScore,
    RequestError,
    connect_response,
    dht_response,
    peer_addr_info_response,
    peers_list_response,
    ping_response,
    request_object,
    score_response,
    string_field,
)
from dms.node._reply import send_reply

if TYPE_CHECKING:
    from dms.node._node import Node

PEERS_LIST = "/dms/node/peers/list"
PEERS_SELF = "/dms/node/peers/self"
PEERS_PING = "/dms/node/peers/ping"
PEERS_DHT = "/dms/node/peers/dht"
PEERS_CONNECT = "/dms/node/peers/connect"
PEERS_SCORE = "/dms/node/peers/score"

#: Go's ping timeout for ``/dms/node/peers/ping``, in seconds.
PING_TIMEOUT = 1.0
#: Time kept back from a request's expiry so a connect error still reaches the requester.
REPLY_MARGIN = 0.5


def _strip_p2p(address: str, host_id: str) -> str:
    suffix = f"/p2p/{host_id}"
    return address[: -len(suffix)] if address.endswith(suffix) else address


def _remaining(env: Envelope) -> float:
    """Seconds left before ``env`` expires, less the margin needed to send the reply."""
    return (env.options.expire - time.time_ns()) / 1e9 - REPLY_MARGIN


def install_peers(node: Node) -> None:
    """Register the ``/dms/node/peers/*`` behaviours on ``node``."""
    network = node.network

    async def peers_list(env: Envelope) -> None:
        await send_reply(node, env, peers_list_response(p.peer_id for p in network.peers()))

    async def peers_self(env: Envelope) -> None:
        host = network.host_id
        addrs = ", ".join(_strip_p2p(a, host) for a in network.listen_addresses())
        await send_reply(node, env, peer_addr_info_response(host, addrs))

    async def peers_ping(env: Envelope) -> None:
        try:
            host = string_field(request_object(env), "Host")
        except RequestError:
            await send_reply(node, env, ping_response(ERR_UNMARSHAL))
            return
        if not host:
            await send_reply(node, env, ping_response("ping request: host is empty"))
            return
        if host == network.host_id:
            await send_reply(node, env, ping_response("can't ping self"))
            return
        try:
            PeerID.parse(host)
            rtt = await network.ping(host, timeout=PING_TIMEOUT)
        except DMSError as exc:
            await send_reply(node, env, ping_response(str(exc)))
            return
        await send_reply(node, env, ping_response(rtt_ms=int(rtt * 1000)))

    async def peers_connect(env: Envelope) -> None:
        try:
            address = string_field(request_object(env), "Address")
        except RequestError:
            await send_reply(node, env, connect_response(error=f"peer connect: {ERR_UNMARSHAL}"))
            return
        if not address:
            await send_reply(node, env, connect_response(error="peer multiaddress is empty"))
            return
        timeout = max(0.1, min(DEFAULT_TIMEOUT, _remaining(env)))
        try:
            await network.connect(address, timeout=timeout)
        except DMSError as exc:
            error = f"failed to connect to peer {address}: {exc}"
            await send_reply(node, env, connect_response(error=error))
            return
        await send_reply(node, env, connect_response(status="CONNECTED"))

    async def peers_dht(env: Envelope) -> None:
        view: Callable[[], Sequence[str]] | None = getattr(network, "dht_peers", None)
        peers = [DHTPeer(p) for p in view()] if callable(view) else []
        await send_reply(node, env, dht_response(peers))

    async def peers_score(env: Envelope) -> None:
        scores = {}
        for info in network.peers():
            app = node.hello.app_score(info.peer_id)
            scores[info.peer_id] = PeerScore(score=app, app_specific_score=app)
        await send_reply(node, env, score_response(scores))

    node.actor.add_behavior(PEERS_LIST, peers_list)
    node.actor.add_behavior(PEERS_SELF, peers_self)
    node.actor.add_behavior(PEERS_PING, peers_ping)
    node.actor.add_behavior(PEERS_DHT, peers_dht)
    node.actor.add_behavior(PEERS_CONNECT, peers_connect)
    node.actor.add_behavior(PEERS_SCORE, peers_score)
