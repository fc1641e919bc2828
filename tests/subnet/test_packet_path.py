"""The subnet data path between network namespaces, over real libp2p hosts (and memory).

Each test makes its own namespaces (``ip netns add``, always removed), puts allocations' TUN
devices in them through :class:`SubnetRouter`, and drives real traffic with the probes of
``nsprog.py`` run by ``ip netns exec``: ICMP echo, a TCP transfer whose bytes are checked, and
crafted packets from non-members and spoofers, which must be dropped and counted.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import struct
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from dms.crypto import Ed25519PrivateKey
from dms.network import MemoryFabric, MemoryNetwork, Network
from dms.network._libp2p import Libp2pNetwork
from dms.subnet import Libp2pStreamTransport, SubnetRouter, ipv4_packet, remove_stale_devices
from dms.subnet._packets import PLAIN_HEADER
from dms.subnet._tun import IFF_NO_PI, IFF_TUN, TUNSETIFF
from tests.subnet.netns_support import (
    can_make_namespaces,
    links,
    namespaces,
    ns_path,
    probe,
    rtts,
)

pytestmark = pytest.mark.skipif(
    not can_make_namespaces(), reason="needs root, /dev/net/tun and the ip tool"
)

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
TUNSETPERSIST = 0x400454CB
SUBNET = "subnet-test"


def random_cidr() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")


def host(cidr: ipaddress.IPv4Network, n: int) -> str:
    return str(cidr.network_address + n)


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


@dataclass
class Node:
    net: Network
    transport: Libp2pStreamTransport
    router: SubnetRouter

    @property
    def peer(self) -> str:
        return self.net.host_id


@asynccontextmanager
async def nodes(
    count: int, cidr: ipaddress.IPv4Network, *, memory: bool = False
) -> AsyncIterator[list[Node]]:
    """``count`` running hosts, all connected to the first, each with a transport and router."""
    fabric = MemoryFabric()
    nets: list[Network] = []
    for i in range(count):
        if memory:
            nets.append(MemoryNetwork(fabric, f"peer{i}"))
        else:
            nets.append(Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK))
    async with trio.open_nursery() as nursery:
        for net in nets:
            await nursery.start(net.run)
        for net in nets[1:]:
            await net.connect(nets[0].listen_addresses()[0])
        result = []
        for net in nets:
            transport = Libp2pStreamTransport(net, timeout=5)
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


async def tcp_transfer(sender_ns: str, receiver_ns: str, ip: str, nbytes: int) -> None:
    """Send ``nbytes`` from one namespace to ``ip`` in another; check count and digest."""
    port = str(random.randint(20000, 30000))
    received: list[str] = []

    async def serve() -> None:
        received.append(await probe(receiver_ns, "tcp-recv", ip, port))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        sent = await probe(sender_ns, "tcp-send", ip, port, str(nbytes))
    assert received[0].split()[1:5] == ["BYTES", str(nbytes), "SHA256", sent.split()[1]]


async def test_ping_and_tcp_between_two_providers() -> None:
    cidr = random_cidr()
    ip_a, ip_b = host(cidr, 2), host(cidr, 3)
    with namespaces(2) as (ns_a, ns_b):
        async with nodes(2, cidr) as (a, b):
            routes = {ip_a: a.peer, ip_b: b.peer}
            for node in (a, b):
                node.router.add_routes(routes)
            dev_a = await a.router.attach(ip_a, netns=ns_path(ns_a))
            await b.router.attach(ip_b, netns=ns_path(ns_b))
            assert len(dev_a) <= 15 and dev_a.startswith("nn")
            route = subprocess.run(
                ["ip", "-n", ns_a, "route", "get", ip_b], check=True, capture_output=True, text=True
            ).stdout
            assert f"dev {dev_a}" in route

            out = await probe(ns_a, "ping", ip_b, "3")
            assert len(rtts(out)) == 3

            await tcp_transfer(ns_a, ns_b, ip_b, 4 << 20)
            await tcp_transfer(ns_b, ns_a, ip_a, 1 << 20)

            for node in (a, b):
                stats = node.router.stats
                assert stats.sent_packets > 0 and stats.received_packets > 0
                assert stats.dropped_spoofed == stats.dropped_not_member == 0
                assert stats.dropped_send_failed == stats.dropped_malformed == 0
            assert a.router.members == {a.peer, b.peer}


async def test_non_members_spoofers_and_unknown_subnets_are_refused() -> None:
    cidr = random_cidr()
    ip_a, ip_b, ip_c = host(cidr, 2), host(cidr, 3), host(cidr, 4)
    with namespaces(1) as (ns_a,):
        async with nodes(3, cidr) as (a, b, c):
            # c runs a router of the subnet too, but a's table does not list it
            a.router.add_routes({ip_a: a.peer, ip_b: b.peer})
            await a.router.attach(ip_a, netns=ns_path(ns_a))
            before = a.router.stats

            # a non-member's packets, even with a plausible source, never reach a device
            await c.transport.send(SUBNET, a.peer, [ipv4_packet(ip_c, ip_a, b"hello")] * 3)
            await wait_for(lambda: a.router.stats.dropped_not_member >= 3)

            # a member may only send from its own addresses, to ours, with sane headers
            spoofed = ipv4_packet(ip_c, ip_a, b"spoofed source")
            not_ours = ipv4_packet(ip_b, ip_c, b"not for a")
            bad_offload = b"\x07" + PLAIN_HEADER[1:] + ipv4_packet(ip_b, ip_a, b"x")[10:]
            await b.transport.send(SUBNET, a.peer, [spoofed, not_ours, bad_offload])
            await wait_for(lambda: a.router.stats.dropped_malformed >= 1)
            stats = a.router.stats
            assert stats.dropped_spoofed == 1
            assert stats.dropped_not_local == 1
            assert stats.received_packets == before.received_packets == 0

            # a stream for a subnet the node is not in is reset at once
            await c.transport.send("no-such-subnet", a.peer, [ipv4_packet(ip_c, ip_a, b"?")])
            await wait_for(lambda: a.transport.stats.streams_refused >= 1)

            # an allocation cannot send from an address that is not its own
            await probe(ns_a, "udp-spoof", ip_b, host(cidr, 50))
            await wait_for(lambda: a.router.stats.dropped_spoofed == 2)
            assert b.router.stats.received_batches == 0


async def test_local_forwarding_gateway_and_teardown_leave_no_link() -> None:
    cidr = random_cidr()
    gateway, ip_1, ip_2, ip_remote = (host(cidr, n) for n in (1, 2, 3, 9))
    with namespaces(3) as (ns_1, ns_2, ns_remote):
        async with nodes(2, cidr) as (a, b):
            routes = {ip_1: a.peer, ip_2: a.peer, ip_remote: b.peer}
            for node in (a, b):
                node.router.add_routes(routes)
            dev_1 = await a.router.attach(ip_1, netns=ns_path(ns_1))
            dev_2 = await a.router.attach(ip_2, netns=ns_path(ns_2))
            host_dev = await a.router.attach(gateway)
            assert await a.router.attach(host(cidr, 20)) == host_dev  # one host device
            await b.router.attach(ip_remote, netns=ns_path(ns_remote))
            assert host_dev in links(None)

            # two allocations on one provider: device to device, no transport involved
            assert len(rtts(await probe(ns_1, "ping", ip_2, "2"))) == 2
            assert a.router.stats.sent_packets == 0
            # the gateway is the host device on this provider
            assert len(rtts(await probe(ns_2, "ping", gateway, "2"))) == 2
            # and the remote allocation is reachable from both
            assert len(rtts(await probe(ns_1, "ping", ip_remote, "2"))) == 2

            # detach closes a device that holds nothing else
            await a.router.detach(ip_2)
            assert dev_2 not in links(ns_2)
            assert dev_1 in links(ns_1)
        # the routers are closed: no device left anywhere
        assert links(ns_1) == ["lo"]
        assert links(ns_remote) == ["lo"]
        assert host_dev not in links(None)


async def test_memory_network_carries_the_same_path() -> None:
    cidr = random_cidr()
    ip_a, ip_b = host(cidr, 2), host(cidr, 3)
    with namespaces(2) as (ns_a, ns_b):
        async with nodes(2, cidr, memory=True) as (a, b):
            for node in (a, b):
                node.router.add_routes({ip_a: a.peer, ip_b: b.peer})
            await a.router.attach(ip_a, netns=ns_path(ns_a))
            await b.router.attach(ip_b, netns=ns_path(ns_b))
            assert len(rtts(await probe(ns_a, "ping", ip_b, "3"))) == 3
            await tcp_transfer(ns_b, ns_a, ip_a, 2 << 20)


async def test_remove_stale_devices_deletes_left_over_tun_devices() -> None:
    # A persistent TUN outlives its descriptor, as a device left by another program would.
    name = f"nnzt{random.randint(0, 0xFFFFF):05x}"
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)
    try:
        assert name in links(None)
        assert await remove_stale_devices(prefix="nnzt") == [name]
        assert name not in links(None)
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


async def test_gateway_dns_queries_are_answered_by_the_router() -> None:
    cidr = random_cidr()
    gateway, ip_a = host(cidr, 1), host(cidr, 2)
    queries: list[bytes] = []

    async def resolver(query: bytes) -> bytes | None:
        queries.append(query)
        return b"answer:" + query[:8]

    with namespaces(1) as (ns_a,):
        async with nodes(1, cidr) as (a,):
            a.router.add_routes({ip_a: a.peer})
            a.router.set_gateway_dns(resolver)
            await a.router.attach(ip_a, netns=ns_path(ns_a))
            # no device holds the gateway: the router itself answers gateway:53
            assert len(rtts(await probe(ns_a, "udp-rtt", gateway, "53", "3"))) == 3
            assert queries == [bytes(64)] * 3
            assert a.router.stats.dns_queries == 3
            # other ports of the gateway are not answered (no host device: dropped)
            out = await probe(ns_a, "udp-rtt", gateway, "54", "1")
            assert "LOST" in out
