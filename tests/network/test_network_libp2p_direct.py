"""Direct messages between real py-libp2p hosts on 127.0.0.1 (one trio process)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.errors import InvalidInput, NetworkError
from dms.network import MAX_MESSAGE_SIZE
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_streams import (
    REUSE_PROTOCOL,
    announcement_frame,
    go_protocol,
    parse_announcement,
    split_reuse_body,
)

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]


@asynccontextmanager
async def running(*nets: Libp2pNetwork) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        for net in nets:
            await nursery.start(net.run)
        yield nursery
        nursery.cancel_scope.cancel()


def new_net(**kwargs: object) -> Libp2pNetwork:
    return Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK, **kwargs)  # type: ignore[arg-type]


def collector() -> tuple[list[tuple[bytes, str]], Callable[[bytes, str], object]]:
    got: list[tuple[bytes, str]] = []

    async def handler(data: bytes, remote: str) -> None:
        got.append((data, remote))

    return got, handler


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


async def wait_identified(a: Libp2pNetwork, b: Libp2pNetwork) -> None:
    """Until ``a`` has ``b``'s identify record (its protocol list)."""
    await wait_for(lambda: any(p.peer_id == b.host_id and p.protocols for p in a.peers()))


def test_host_id_is_our_key() -> None:
    key = Ed25519PrivateKey.generate()
    net = Libp2pNetwork(key, LOOPBACK)
    assert net.host_id == str(peer_id_from_public_key(key.public_key))


async def test_send_arrives_with_authenticated_peer_id() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        assert await a.connect(b.listen_addresses()[0]) == b.host_id
        await a.send(b.host_id, "root", b'{"hello":1}', timeout=5)
        await wait_for(lambda: len(got) == 1)
        assert got == [(b'{"hello":1}', a.host_id)]
        # and back, over the inbound connection
        got_a, handler_a = collector()
        a.register_inbox("root", handler_a)
        await wait_identified(b, a)
        await b.send(a.host_id, "root", b"back", timeout=5)
        await wait_for(lambda: got_a == [(b"back", b.host_id)])


async def test_concurrent_senders_share_one_reused_stream_in_order() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    opened: list[object] = []
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        await wait_identified(a, b)
        assert REUSE_PROTOCOL in next(p.protocols for p in a.peers())
        original = a._host.new_stream

        async def counting_new_stream(peer: object, protocols: list[str]) -> object:
            opened.append(protocols)
            return await original(peer, protocols)

        a._host.new_stream = counting_new_stream

        async def sender(k: int) -> None:
            for i in range(50):
                await a.send(b.host_id, "root", f"{k}:{i}".encode(), timeout=10)

        async with trio.open_nursery() as senders:
            for k in range(10):
                senders.start_soon(sender, k)
        await wait_for(lambda: len(got) == 500, timeout=20)
        assert opened == [[REUSE_PROTOCOL]]
        for k in range(10):
            seq = [int(d.split(b":")[1]) for d, _ in got if d.startswith(f"{k}:".encode())]
            assert seq == list(range(50))
        assert {r for _, r in got} == {a.host_id}


async def test_peer_without_reuse_gets_one_stream_per_message() -> None:
    a = new_net()
    go_like = new_net(reuse_streams=False)  # stands in for the Go DMS
    got, handler = collector()
    go_like.register_inbox("root", handler)
    opened: list[object] = []
    async with running(a, go_like):
        await a.connect(go_like.listen_addresses()[0])
        await wait_identified(a, go_like)
        assert REUSE_PROTOCOL not in next(p.protocols for p in a.peers())
        swarm = a._host.get_network()
        original = swarm.new_stream

        async def counting_new_stream(peer: object) -> object:
            stream = await original(peer)
            opened.append(stream)
            return stream

        swarm.new_stream = counting_new_stream
        for i in range(20):
            await a.send(go_like.host_id, "root", b"m%d" % i, timeout=5)
        await wait_for(lambda: len(got) == 20)
        # One new stream per message, each negotiated lazily for the Go protocol (the inbox is
        # in go_like's identify record), none for our reuse protocol.
        assert len(opened) == 20
        assert {s.get_protocol() for s in opened} == {go_protocol("root")}  # type: ignore[attr-defined]
        assert {r for _, r in got} == {a.host_id}


async def test_reuse_negotiation_before_identify_falls_back() -> None:
    """A send racing identify tries the reuse protocol, learns it is refused, uses Go's."""
    a = new_net()
    go_like = new_net(reuse_streams=False)
    got, handler = collector()
    go_like.register_inbox("root", handler)
    async with running(a, go_like):
        await a.connect(go_like.listen_addresses()[0])
        a._host.get_peerstore().get_protocols = lambda peer: []  # identify not done yet
        for i in range(3):
            await a.send(go_like.host_id, "root", b"x%d" % i, timeout=5)
        await wait_for(lambda: len(got) == 3)


async def test_oversized_frame_is_reset_and_never_delivered() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        for protocol in (go_protocol("root"), REUSE_PROTOCOL):
            stream = await a._host.new_stream(b._host.get_id(), [protocol])
            await stream.write(struct.pack("<Q", 2 << 20) + b"x" * 1000)
            with trio.fail_after(5), pytest.raises(Exception):  # noqa: B017
                while await stream.read(100):
                    pass
                raise EOFError
        # the host still works afterwards
        await a.send(b.host_id, "root", b"ok", timeout=5)
        await wait_for(lambda: len(got) == 1)
        assert got[0][0] == b"ok"


async def test_two_mib_refused_locally() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        with pytest.raises(NetworkError, match="too large"):
            await a.send(b.host_id, "root", b"x" * (2 << 20), timeout=5)
        with pytest.raises(NetworkError, match="too large"):
            await a.send(a.host_id, "root", b"x" * (2 << 20), timeout=5)
        biggest = b"y" * (MAX_MESSAGE_SIZE - 8)
        await a.send(b.host_id, "root", biggest, timeout=10)
        await wait_for(lambda: len(got) == 1)
        assert got[0][0] == biggest


async def test_unknown_inbox() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        await wait_identified(a, b)
        with pytest.raises(NetworkError, match="nope"):
            await a.send(b.host_id, "nope", b"x", timeout=5)
        b.unregister_inbox("root")
        b.unregister_inbox("never-registered")
        with pytest.raises(NetworkError):
            await a.send(a.host_id, "nope", b"x", timeout=5)
        # an inbox registered after identify is still reachable (Go protocol fallback)
        late, late_handler = collector()
        b.register_inbox("late", late_handler)
        await a.send(b.host_id, "late", b"hi", timeout=5)
        await wait_for(lambda: late == [(b"hi", a.host_id)])
        assert got == []


async def test_local_delivery_without_the_wire() -> None:
    a = new_net()
    got, handler = collector()
    a.register_inbox("root", handler)
    async with running(a):
        for i in range(10):
            await a.send(a.host_id, "root", b"%d" % i, timeout=1)
        await wait_for(lambda: len(got) == 10)
        assert got == [(b"%d" % i, a.host_id) for i in range(10)]
        assert a.peers() == []


async def test_ping_peers_and_find_peer() -> None:
    a, b, c = new_net(), new_net(), new_net()
    async with running(a, b, c):
        await a.connect(b.listen_addresses()[0])
        await c.connect(b.listen_addresses()[0])
        rtt = await a.ping(b.host_id, timeout=5)
        assert 0 < rtt < 1
        info = {p.peer_id: p for p in a.peers()}
        assert info[b.host_id].rtt_seconds == rtt
        # is_connected agrees with peers(), without rendering them
        assert a.is_connected(b.host_id) and not a.is_connected(c.host_id)
        assert not a.is_connected("not a peer id") and not a.is_connected("")
        assert any("/tcp/" in addr for addr in info[b.host_id].addresses)
        assert list(await a.find_peer(b.host_id)) == list(info[b.host_id].addresses)
        # c is only known through b's DHT
        await wait_for(lambda: b._dht.get_routing_table_size() >= 2, timeout=10)
        await wait_for(lambda: a._dht.get_routing_table_size() >= 1, timeout=10)
        # ...over the Go DMS's DHT protocol: b serves it and a learned that through identify
        assert "/nunet/kad/1.0.0" in b._host.get_mux().handlers
        assert "/ipfs/kad/1.0.0" not in b._host.get_mux().handlers
        assert "/nunet/kad/1.0.0" in a._host.get_peerstore().get_protocols(b._id)
        found = await a.find_peer(c.host_id, timeout=10)
        c_port = c.listen_addresses()[0].split("/tcp/")[1].split("/")[0]
        assert any(f"/tcp/{c_port}" in addr for addr in found)
        with pytest.raises(NetworkError):
            await a.ping(Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK).host_id, timeout=2)


async def test_bootstrap_peers_and_bad_addresses() -> None:
    b = new_net()
    async with running(b):
        a = Libp2pNetwork(
            Ed25519PrivateKey.generate(),
            LOOPBACK,
            [b.listen_addresses()[0], "/ip4/127.0.0.1/tcp/1/p2p/" + new_net().host_id],
        )
        async with running(a):
            await wait_for(lambda: [p.peer_id for p in a.peers()] == [b.host_id])
            with pytest.raises(Exception, match="p2p"):
                await a.connect("/ip4/127.0.0.1/tcp/1")


def count_new_streams(net: Libp2pNetwork) -> list[object]:
    """The protocols of every stream ``net`` opens from now on."""
    opened: list[object] = []
    original = net._host.new_stream

    async def counting_new_stream(peer: object, protocols: list[str]) -> object:
        opened.append(protocols)
        return await original(peer, protocols)

    net._host.new_stream = counting_new_stream
    return opened


async def test_a_new_inbox_is_announced_with_the_next_message_and_then_reused() -> None:
    """b's fresh inbox reaches a with b's next message to a, in the same write: a answers it
    on its reuse stream at once (no new stream per message, no push to every peer)."""
    a, b = new_net(), new_net()
    got_a, handler_a = collector()
    a.register_inbox("root", handler_a)  # before connecting, as a node's root inbox is
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        await wait_identified(a, b)
        await wait_identified(b, a)
        got, handler = collector()
        b.register_inbox("alloc-1", handler)  # after identify: a has not heard of it
        assert not any(go_protocol("alloc-1") in p.protocols for p in a.peers())
        await b.send(a.host_id, "root", b"from b", timeout=5)  # carries b's inbox list
        await wait_for(lambda: len(got_a) == 1)

        opened = count_new_streams(a)
        for i in range(5):
            await a.send(b.host_id, "alloc-1", b"%d" % i, timeout=5)
        await wait_for(lambda: len(got) == 5)
        assert opened == [[REUSE_PROTOCOL]]
        assert [data for data, _ in got] == [b"0", b"1", b"2", b"3", b"4"]


async def test_a_removed_inbox_is_announced_too_and_unknown_ones_take_the_go_protocol() -> None:
    a, b = new_net(), new_net()
    got_a, handler_a = collector()
    a.register_inbox("root", handler_a)  # before connecting, as a node's root inbox is
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        await wait_identified(a, b)
        await wait_identified(b, a)
        _, handler = collector()
        b.register_inbox("orchestrator", handler)
        await b.send(a.host_id, "root", b"1", timeout=5)
        await wait_for(lambda: len(got_a) == 1)
        b.unregister_inbox("orchestrator")
        await b.send(a.host_id, "root", b"2", timeout=5)  # announces the removal
        await wait_for(lambda: len(got_a) == 2)
        # a no longer believes in it: the Go protocol's negotiation says it is gone
        opened = count_new_streams(a)
        with pytest.raises(NetworkError):
            await a.send(b.host_id, "orchestrator", b"late", timeout=5)
        assert opened == [[go_protocol("orchestrator")]]


async def test_a_message_to_a_stale_inbox_is_dropped_and_the_sender_corrected_at_once() -> None:
    """a still believes in b's one-shot reply inbox (b announced it, then dropped it without
    writing to a again): the message is dropped by b, which tells a its inboxes at once, so
    a's next try is refused outright."""
    a, b = new_net(), new_net()
    got_a, handler_a = collector()
    a.register_inbox("root", handler_a)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        await wait_identified(a, b)
        await wait_identified(b, a)
        got, handler = collector()
        b.register_inbox("reply-1", handler)
        await b.send(a.host_id, "root", b"request", timeout=5)
        await wait_for(lambda: len(got_a) == 1)
        await a.send(b.host_id, "reply-1", b"reply", timeout=5)
        await wait_for(lambda: len(got) == 1)
        b.unregister_inbox("reply-1")
        await a.send(b.host_id, "reply-1", b"replayed", timeout=5)  # b takes it, drops it

        async def refused() -> bool:
            try:
                await a.send(b.host_id, "reply-1", b"again", timeout=5)
            except NetworkError:
                return True
            return False

        with trio.fail_after(5):
            while not await refused():
                await trio.sleep(0.05)
        assert len(got) == 1


def test_inbox_announcements_round_trip_and_malformed_ones_are_refused() -> None:
    names = frozenset({"root", "orchestrator-\u00e9", "reply-1234"})
    frame = announcement_frame(names)
    assert frame is not None
    inbox, data = split_reuse_body(frame[8:])
    assert inbox == "" and parse_announcement(data) == names
    assert parse_announcement(b"") == frozenset()
    for bad in (b"\x05\x00ab", b"\x00\x00", b"\x01", b"\x02\x00\xff\xfe"):
        with pytest.raises(InvalidInput):
            parse_announcement(bad)
