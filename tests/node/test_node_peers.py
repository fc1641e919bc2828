"""``/dms/node/peers/*`` between real nodes: Go payload shapes, errors in the Error field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from tests.actor.actor_sim import User, wait_for
from tests.node.node_sim import SimNode, make_sim_nodes

from dms.actor import DropReason, InvokeTimeout
from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.network import MemoryFabric
from dms.node._hello import root_handle


async def call(a: SimNode, b: SimNode, behavior: str, payload: Any = None) -> Any:
    reply = await a.actor.invoke(root_handle(b.peer_id), behavior, payload, timeout=5)
    return reply.decode_payload()


def unknown_peer() -> str:
    return str(peer_id_from_public_key(Ed25519PrivateKey.generate().public_key))


async def test_self_returns_peer_id_and_addresses(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    reply = await a.actor.invoke(root_handle(b.peer_id), "/dms/node/peers/self", timeout=5)
    expected = f'{{"id":"{b.peer_id}","listen_addr":"/memory/{b.peer_id}"}}'
    assert reply.message == expected.encode()


async def test_connect_then_list_shows_the_peer(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b, c = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 3)
    assert c.peer_id not in (await call(a, b, "/dms/node/peers/list"))["Peers"]
    reply = await a.actor.invoke(
        root_handle(b.peer_id), "/dms/node/peers/connect", {"Address": c.address}, timeout=5
    )
    assert reply.message == b'{"Status":"CONNECTED","Error":""}'
    listed = await call(a, b, "/dms/node/peers/list")
    assert list(listed) == ["Peers"]
    assert c.peer_id in listed["Peers"]
    assert a.peer_id in listed["Peers"]  # it talked to b, so it is connected


async def test_connect_errors_are_reported(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    bad = "/ip4/10.0.0.1/tcp/1"
    reply = await call(a, b, "/dms/node/peers/connect", {"address": bad})
    assert reply["Status"] == ""
    assert reply["Error"].startswith(f"failed to connect to peer {bad}: ")
    gone = unknown_peer()
    reply = await call(a, b, "/dms/node/peers/connect", {"Address": f"/memory/{gone}/p2p/{gone}"})
    assert reply["Status"] == "" and "not reachable" in reply["Error"]
    assert await call(a, b, "/dms/node/peers/connect", {}) == {
        "Status": "",
        "Error": "peer multiaddress is empty",
    }
    assert (await call(a, b, "/dms/node/peers/connect", [1]))["Error"] == (
        "peer connect: failed to unmarshal"
    )
    assert gone not in (await call(a, b, "/dms/node/peers/list"))["Peers"]


async def test_ping(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b, c = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 3)
    await call(a, b, "/dms/node/peers/connect", {"Address": c.address})
    reply = await a.actor.invoke(
        root_handle(b.peer_id), "/dms/node/peers/ping", {"host": c.peer_id}, timeout=5
    )
    assert reply.message == b'{"Error":"","RTT":0}'  # memory RTT is below a millisecond
    with trio.fail_after(3):
        unknown = await call(a, b, "/dms/node/peers/ping", {"Host": unknown_peer()})
    assert unknown["Error"] and unknown["RTT"] == 0
    assert await call(a, b, "/dms/node/peers/ping", {"Host": ""}) == {
        "Error": "ping request: host is empty",
        "RTT": 0,
    }
    assert (await call(a, b, "/dms/node/peers/ping", {"Host": b.peer_id}))["Error"] == (
        "can't ping self"
    )
    assert (await call(a, b, "/dms/node/peers/ping", {"Host": "not-a-peer"}))["Error"]
    assert (await call(a, b, "/dms/node/peers/ping"))["Error"] == "failed to unmarshal"
    assert (await call(a, b, "/dms/node/peers/ping", {"Host": 5}))["Error"] == (
        "failed to unmarshal"
    )


async def test_dht(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b, c = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 3)
    assert (await a.actor.invoke(root_handle(b.peer_id), "/dms/node/peers/dht")).message == (
        b'{"Peers":[]}'
    )
    b.net.dht_peers = lambda: [c.peer_id]  # type: ignore[attr-defined]
    reply = await call(a, b, "/dms/node/peers/dht")
    zero = "0001-01-01T00:00:00Z"
    assert reply == {
        "Peers": [
            {
                "Id": c.peer_id,
                "Mode": 0,
                "LastUsefulAt": zero,
                "LastSuccessfulOutboundQueryAt": zero,
                "AddedAt": zero,
            }
        ]
    }


async def test_score_carries_the_hello_app_score(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 2)
    await a.net.connect(b.address)
    await wait_for(lambda: a.node.hello.exchanged(b.peer_id) and b.node.hello.exchanged(a.peer_id))
    reply = await a.actor.invoke(root_handle(b.peer_id), "/dms/node/peers/score", timeout=5)
    assert reply.message == (
        b'{"Score":{"' + a.peer_id.encode() + b'":{"Score":5,"Topics":{},"AppSpecificScore":5,'
        b'"IPColocationFactor":0,"BehaviourPenalty":0}}}'
    )


async def test_peers_behaviours_need_the_dms_capability(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    user, fabric = User(), MemoryFabric()
    b, c = await make_sim_nodes(nursery, fabric, user, tmp_path, 2)
    (outsider,) = await make_sim_nodes(
        nursery, fabric, user, tmp_path, 1, caps=["/public", "/broadcast"]
    )
    with pytest.raises(InvokeTimeout):
        await outsider.actor.invoke(
            root_handle(b.peer_id), "/dms/node/peers/connect", {"Address": c.address}, timeout=0.5
        )
    with pytest.raises(InvokeTimeout):
        await outsider.actor.invoke(root_handle(b.peer_id), "/dms/node/peers/list", timeout=0.5)
    assert b.actor.stats.get(DropReason.UNAUTHORIZED, 0) >= 2
    assert c.peer_id not in {p.peer_id for p in b.net.peers()}
