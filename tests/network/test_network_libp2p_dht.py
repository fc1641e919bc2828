"""The DHT on /nunet/kad/1.0.0 answers FIND_NODE with dialable peers only (real hosts, loopback).

The query is written by hand (a Kademlia protobuf on a raw stream) so the test sees exactly
what a remote DHT client (Go's, js's) receives, with no client-side filtering in between.
"""

from __future__ import annotations

from typing import Any

import multiaddr
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes
from tests.network.test_network_libp2p_direct import LOOPBACK, running

from dms.crypto import Ed25519PrivateKey
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_dht import DHT_PROTOCOL, own_addresses


async def find_node(querier: Libp2pNetwork, server: Libp2pNetwork, target: ID) -> dict[str, Any]:
    """One raw FIND_NODE from ``querier`` to ``server``: ``{peer id: [addresses]}`` answered."""
    request = Message()
    request.type = Message.MessageType.FIND_NODE
    request.key = target.to_bytes()
    body = request.SerializeToString()
    with trio.fail_after(10):
        stream = await querier._host.new_stream(ID.from_base58(server.host_id), [DHT_PROTOCOL])
        await stream.write(encode_uvarint(len(body)) + body)
        reply = Message()
        reply.ParseFromString(await read_varint_prefixed_bytes(stream))
        await stream.close()
    return {
        str(ID(p.id)): [str(multiaddr.Multiaddr(a)) for a in p.addrs] for p in reply.closerPeers
    }


async def test_find_node_for_the_server_itself_carries_its_addresses() -> None:
    server = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK)
    querier = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK)
    async with running(server, querier):
        port = server.listen_addresses()[0].split("/")[4]
        await querier.connect(server.listen_addresses()[0])
        answer = await find_node(querier, server, ID.from_base58(server.host_id))
        assert answer[server.host_id] == [f"/ip4/127.0.0.1/tcp/{port}"]


async def test_find_node_never_names_a_peer_without_addresses() -> None:
    server = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK)
    querier = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK)
    ghost = ID.from_pubkey(create_new_key_pair().public_key)
    async with running(server, querier):
        await querier.connect(server.listen_addresses()[0])
        # A routing-table entry whose addresses are gone (expired, or never learnt).
        added = await server._dht.routing_table.add_peer(
            PeerInfo(ghost, []), skip_server_mode_check=True
        )
        assert added and ghost in server._dht.routing_table.get_peer_ids()
        answer = await find_node(querier, server, ghost)
        assert str(ghost) not in answer
        assert all(answer.values())  # every peer named is dialable


def test_unspecified_listen_address_becomes_interface_addresses() -> None:
    expanded = [str(a) for a in own_addresses([multiaddr.Multiaddr("/ip4/0.0.0.0/tcp/4001")])]
    assert "/ip4/127.0.0.1/tcp/4001" in expanded
    assert not any("0.0.0.0" in a for a in expanded)
    plain = multiaddr.Multiaddr("/ip4/10.1.2.3/tcp/9")
    assert [str(a) for a in own_addresses([plain, plain])] == ["/ip4/10.1.2.3/tcp/9"]
