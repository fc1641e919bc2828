"""The ``udp`` subnet transport between network namespaces, over real libp2p hosts.

Real traffic (ping, a checked TCP transfer) between allocations' TUN devices on two
providers whose routers use :class:`UdpTransport` with :class:`Libp2pStreamTransport` as the
fallback; endpoints that do not answer, a peer that names someone else's address, a network
that duplicates every datagram, non-members, and a peer that lost its keys.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from dms.crypto import Ed25519PrivateKey
from dms.network._libp2p import Libp2pNetwork
from dms.subnet import Libp2pStreamTransport, SubnetRouter, ipv4_packet
from dms.subnet._datagram_wire import DATA, PROBE
from dms.subnet._udp_transport import UdpTransport
from tests.subnet.netns_support import (
    can_make_namespaces,
    namespaces,
    ns_path,
    probe,
    probe_command,
    rtts,
)
from tests.subnet.test_packet_path import host, random_cidr, tcp_transfer, wait_for

pytestmark = pytest.mark.skipif(
    not can_make_namespaces(), reason="needs root, /dev/net/tun and the ip tool"
)

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
SUBNET = "subnet-udp-test"
Advertise = Callable[[int], "Sequence[tuple[str, int]] | None"]


def only_second(endpoint: tuple[str, int]) -> Advertise:
    """The second node advertises ``endpoint`` instead of its own socket."""
    return lambda i: [endpoint] if i == 1 else None


@dataclass
class Node:
    net: Libp2pNetwork
    transport: UdpTransport
    router: SubnetRouter

    @property
    def peer(self) -> str:
        return self.net.host_id


@asynccontextmanager
async def nodes(
    count: int, cidr: ipaddress.IPv4Network, advertise: Advertise = lambda i: None
) -> AsyncIterator[list[Node]]:
    """``count`` connected hosts, each with a running UDP transport (on 127.0.0.1) and router."""
    nets = [Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK) for _ in range(count)]
    async with trio.open_nursery() as nursery:
        for net in nets:
            await nursery.start(net.run)
        for net in nets[1:]:
            await net.connect(nets[0].listen_addresses()[0])
        result = []
        for i, net in enumerate(nets):
            fallback = Libp2pStreamTransport(net, timeout=5)
            transport = UdpTransport(net, fallback, host="127.0.0.1", advertise=advertise(i))
            await nursery.start(transport.run)
            router = SubnetRouter(SUBNET, cidr, transport, local_peer=net.host_id)
            await nursery.start(router.run)
            result.append(Node(net, transport, router))
        try:
            yield result
        finally:
            for node in result:
                await node.router.close()
                await node.transport.aclose()
            nursery.cancel_scope.cancel()


async def connect_pair(a: Node, b: Node, ns_a: str, ns_b: str, cidr: ipaddress.IPv4Network) -> None:
    routes = {host(cidr, 2): a.peer, host(cidr, 3): b.peer}
    for node in (a, b):
        node.router.add_routes(routes)
    await a.router.attach(host(cidr, 2), netns=ns_path(ns_a))
    await b.router.attach(host(cidr, 3), netns=ns_path(ns_b))


async def test_ping_and_tcp_go_over_udp_once_the_path_is_confirmed() -> None:
    cidr = random_cidr()
    ip_a, ip_b = host(cidr, 2), host(cidr, 3)
    with namespaces(2) as (ns_a, ns_b):
        async with nodes(2, cidr) as (a, b):
            await connect_pair(a, b, ns_a, ns_b, cidr)
            assert a.transport.path_to(SUBNET, b.peer) == "libp2p-stream"
            assert len(rtts(await probe(ns_a, "ping", ip_b, "3"))) == 3  # first ones: fallback
            await wait_for(lambda: a.transport.path_to(SUBNET, b.peer) == "udp")
            await wait_for(lambda: b.transport.path_to(SUBNET, a.peer) == "udp")
            assert a.transport.address is not None and a.transport.endpoints() == (
                a.transport.address,
            )

            before = a.transport.stats.packets_sent, b.transport.stats.packets_received
            assert len(rtts(await probe(ns_a, "ping", ip_b, "5"))) == 5
            assert a.transport.stats.packets_sent >= before[0] + 5
            assert b.transport.stats.packets_received >= before[1] + 5

            # a bulk transfer: MTU-sized packets and ACKs by datagram, 64 KiB offload packets
            # on the stream; the bytes arrive whole either way
            await tcp_transfer(ns_a, ns_b, ip_b, 8 << 20)
            await tcp_transfer(ns_b, ns_a, ip_a, 2 << 20)
            for node in (a, b):
                stats = node.transport.stats
                assert stats.paths_up >= 1 and stats.negotiations_failed == 0
                assert stats.dropped_unopened == stats.dropped_malformed == 0
                assert node.router.stats.dropped_spoofed == node.router.stats.dropped_malformed == 0


async def test_unanswered_endpoints_leave_the_traffic_on_the_stream() -> None:
    cidr = random_cidr()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    nowhere = silent.getsockname()
    with silent, namespaces(2) as (ns_a, ns_b):
        async with nodes(2, cidr, advertise=lambda i: [nowhere]) as (a, b):
            await connect_pair(a, b, ns_a, ns_b, cidr)
            assert len(rtts(await probe(ns_a, "ping", host(cidr, 3), "3"))) == 3
            await wait_for(lambda: a.transport._paths[(SUBNET, b.peer)].state == "failed")
            assert a.transport.path_to(SUBNET, b.peer) == "libp2p-stream"
            await tcp_transfer(ns_a, ns_b, host(cidr, 3), 1 << 20)
            assert a.transport.stats.packets_sent == 0
            assert a.transport.stats.packets_via_fallback > 0
            assert a.transport.stats.negotiations >= 1


async def test_a_peer_cannot_aim_our_traffic_at_an_address_that_is_not_its_own() -> None:
    """b names a victim's socket as its endpoint: the victim gets probes, never data."""
    cidr = random_cidr()
    victim = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await victim.bind(("127.0.0.1", 0))
    kinds: list[int] = []

    async def listen() -> None:
        while True:
            data = await victim.recv(65_535)
            kinds.append(data[0])

    with victim, namespaces(2) as (ns_a, ns_b):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            async with nodes(2, cidr, advertise=only_second(victim.getsockname())) as (a, b):
                await connect_pair(a, b, ns_a, ns_b, cidr)
                assert len(rtts(await probe(ns_a, "ping", host(cidr, 3), "5"))) == 5
                await wait_for(lambda: a.transport._paths[(SUBNET, b.peer)].state == "failed")
                assert a.transport.path_to(SUBNET, b.peer) == "libp2p-stream"
            nursery.cancel_scope.cancel()
    assert PROBE in kinds and DATA not in kinds


async def test_duplicated_datagrams_are_dropped_as_replays() -> None:
    """A network that delivers every datagram twice: the copies never reach a device."""
    cidr = random_cidr()
    relay = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await relay.bind(("127.0.0.1", 0))
    target: list[tuple[str, int]] = []
    client: list[tuple[str, int]] = []

    async def duplicate() -> None:
        while True:
            data, source = await relay.recvfrom(65_535)
            if source == target[0]:
                destination = client[0]
            else:
                client[:] = [source]
                destination = target[0]
            for _ in range(2):
                await relay.sendto(data, destination)

    with relay, namespaces(2) as (ns_a, ns_b):
        async with trio.open_nursery() as nursery:
            async with nodes(2, cidr, advertise=only_second(relay.getsockname())) as (a, b):
                assert b.transport.address is not None
                target.append(b.transport.address)
                nursery.start_soon(duplicate)
                await connect_pair(a, b, ns_a, ns_b, cidr)
                await probe(ns_a, "ping", host(cidr, 3), "2")
                await wait_for(lambda: a.transport.path_to(SUBNET, b.peer) == "udp")
                received = b.router.stats.received_packets
                out = await probe(ns_a, "ping", host(cidr, 3), "5")
                assert len(rtts(out)) == 5 and "DUP" not in out
                assert b.transport.stats.dropped_unopened >= 5  # the copies
                assert b.router.stats.received_packets - received == 5
            nursery.cancel_scope.cancel()


async def test_non_members_keys_do_not_let_their_packets_through() -> None:
    cidr = random_cidr()
    ip_a, ip_c = host(cidr, 2), host(cidr, 4)
    with namespaces(2) as (ns_a, ns_b):
        async with nodes(3, cidr) as (a, b, c):
            await connect_pair(a, b, ns_a, ns_b, cidr)
            c.router.add_routes({ip_c: c.peer, ip_a: a.peer})  # c thinks it is a member
            for _ in range(20):
                await c.transport.send(SUBNET, a.peer, [ipv4_packet(ip_c, ip_a, b"let me in")])
                if c.transport.path_to(SUBNET, a.peer) == "udp":
                    break
                await trio.sleep(0.05)
            assert c.transport.path_to(SUBNET, a.peer) == "udp"  # keys are not membership
            dropped = a.router.stats.dropped_not_member
            await c.transport.send(SUBNET, a.peer, [ipv4_packet(ip_c, ip_a, b"let me in")] * 3)
            await wait_for(lambda: a.router.stats.dropped_not_member >= dropped + 3)
            assert a.router.stats.received_packets == 0


async def test_a_peer_that_lost_our_keys_is_reached_again_within_seconds() -> None:
    cidr = random_cidr()
    with namespaces(2) as (ns_a, ns_b):
        async with nodes(2, cidr) as (a, b):
            await connect_pair(a, b, ns_a, ns_b, cidr)
            await probe(ns_a, "ping", host(cidr, 3), "2")
            await wait_for(lambda: a.transport.path_to(SUBNET, b.peer) == "udp")
            await wait_for(lambda: b.transport.path_to(SUBNET, a.peer) == "udp")
            # b forgets a (as a restarted provider would): a's datagrams name a lost session
            await b.transport.forget_peer(SUBNET, a.peer)
            with trio.fail_after(30):  # ping exits 1 when any echo was lost: that is expected
                result = await trio.run_process(
                    probe_command(ns_a, "ping", host(cidr, 3), "6"),
                    capture_stdout=True,
                    check=False,
                )
            assert len(rtts(result.stdout.decode())) >= 4  # one or two lost, then answered
            assert a.transport.stats.paths_lost >= 1
            await wait_for(lambda: a.transport.path_to(SUBNET, b.peer) == "udp")
