"""The automatic hello exchange: greet new peers, retry, forget departed peers, app scores."""

from __future__ import annotations

from pathlib import Path

import trio
from tests.actor.actor_sim import User, wait_for
from tests.node.node_sim import make_sim_nodes

from dms.network import MemoryFabric, PeerInfo
from dms.node._hello import ROOT_PROTOCOL, HelloExchange, PeerState


async def test_hello_is_exchanged_after_connect(nursery: trio.Nursery, tmp_path: Path) -> None:
    a, b, c = await make_sim_nodes(nursery, MemoryFabric(), User(), tmp_path, 3)
    assert a.node.hello.peers == {}
    await a.net.connect(b.address)
    await wait_for(lambda: a.node.hello.exchanged(b.peer_id) and b.node.hello.exchanged(a.peer_id))
    assert a.node.hello.app_score(b.peer_id) == 5.0
    assert b.node.hello.app_score(a.peer_id) == 5.0
    assert not a.node.hello.exchanged(c.peer_id)  # never connected
    assert c.node.hello.peers == {}


async def test_no_exchange_between_nodes_of_different_users(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fabric = MemoryFabric()
    (a,) = await make_sim_nodes(nursery, fabric, User(), tmp_path, 1, hello_delay=(0.01, 0.02))
    (b,) = await make_sim_nodes(nursery, fabric, User(), tmp_path, 1, hello_delay=(0.01, 0.02))
    a.node.hello.timeout = b.node.hello.timeout = 0.1
    await a.net.connect(b.address)

    def given_up() -> bool:
        st = a.node.hello.peers.get(b.peer_id)
        return st is not None and st.hello_attempts == 3 and not st.hello_pending

    await wait_for(given_up)
    assert not a.node.hello.exchanged(b.peer_id)
    assert a.node.hello.app_score(b.peer_id) == 0.0


async def test_departed_peer_is_forgotten_and_greeted_again(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fabric = MemoryFabric()
    a, b = await make_sim_nodes(nursery, fabric, User(), tmp_path, 2)
    await a.net.connect(b.address)
    await wait_for(lambda: a.node.hello.exchanged(b.peer_id))
    fabric.partition(a.peer_id, b.peer_id)
    await wait_for(lambda: b.peer_id not in a.node.hello.peers)
    fabric.heal(a.peer_id, b.peer_id)
    await wait_for(lambda: a.node.hello.exchanged(b.peer_id))


async def test_a_gap_one_side_missed_is_healed_by_the_other_sides_hello(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fabric = MemoryFabric()
    a, b = await make_sim_nodes(nursery, fabric, User(), tmp_path, 2)
    await a.net.connect(b.address)
    await wait_for(lambda: a.node.hello.exchanged(b.peer_id) and b.node.hello.exchanged(a.peer_id))
    b.node.hello.poll_interval = 3600.0  # b will not notice the partition
    await trio.sleep(0.05)
    fabric.partition(a.peer_id, b.peer_id)
    await wait_for(lambda: b.peer_id not in a.node.hello.peers)
    fabric.heal(a.peer_id, b.peer_id)
    await wait_for(lambda: a.node.hello.exchanged(b.peer_id) and b.node.hello.exchanged(a.peer_id))
    assert b.node.hello.peers[a.peer_id].hello_attempts == 1


class _FakeNetwork:
    """Just enough of a Network for :meth:`HelloExchange.poll` (no nursery: no greeting)."""

    host_id = "self"

    def __init__(self) -> None:
        self.listed: list[PeerInfo] = []

    def peers(self) -> list[PeerInfo]:
        return self.listed

    def is_connected(self, peer_id: str) -> bool:
        return any(p.peer_id == peer_id for p in self.listed)


def test_poll_tracks_protocols_and_scores() -> None:
    net = _FakeNetwork()
    hello = HelloExchange(None, net)  # type: ignore[arg-type]
    net.listed = [
        PeerInfo("dms", protocols=(ROOT_PROTOCOL,)),
        PeerInfo("other", protocols=("/ipfs/kad/1.0.0",)),
        PeerInfo("self"),
    ]
    hello.poll()
    assert set(hello.peers) == {"dms", "other"}
    assert hello.app_score("dms") == 1.0 and hello.app_score("other") == 0.0
    hello.hello_received("dms")
    hello.peers["dms"].hello_out = True
    assert hello.app_score("dms") == 5.0 and hello.exchanged("dms")
    hello.hello_received("stranger")  # not connected: ignored
    assert "stranger" not in hello.peers
    net.listed = [PeerInfo("other", protocols=("/ipfs/kad/1.0.0", ROOT_PROTOCOL))]
    hello.poll()
    assert set(hello.peers) == {"other"}
    assert hello.peers["other"] == PeerState(has_root=True)
