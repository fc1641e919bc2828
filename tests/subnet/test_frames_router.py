"""A VM's frame socket on the subnet router, driven by the test (no QEMU): the test plays the
VM's network card with a plain unix datagram socket where QEMU would bind its own, and talks to
an allocation's TUN device in a namespace made here, on the same provider and across two.

Checked: ARP for a subnet address is answered with the router's MAC; ICMP echo reaches the
namespace's kernel and its reply comes back as a frame to the VM's MAC with correct checksums;
a UDP datagram from the namespace arrives; ``.internal`` names resolve at the gateway over
frames (the real resolver); a spoofed source is dropped; detach removes the socket.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from dnslib import QTYPE, DNSRecord  # type: ignore[import-untyped]

from dms.subnet import SubnetDNS
from dms.subnet._frames import GUEST_SOCKET, HOST_SOCKET, ROUTER_MAC, guest_mac
from dms.subnet._packets import checksum, ipv4_packet, key, udp_packet
from tests.subnet.netns_support import can_make_namespaces, namespaces, ns_path, probe
from tests.subnet.test_packet_path import host, nodes, random_cidr, wait_for

pytestmark = pytest.mark.skipif(
    not can_make_namespaces(), reason="needs root, /dev/net/tun and the ip tool"
)


class FakeCard:
    """The VM side: bound where QEMU binds, sending to the DMS's socket."""

    def __init__(self, directory: Path, ip: str) -> None:
        self.ip = ip
        self.mac = guest_mac(ip)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(directory / GUEST_SOCKET))
        self.sock.connect(str(directory / HOST_SOCKET))
        self.sock.setblocking(False)

    def send_ip(self, ip_packet: bytes) -> None:
        self.sock.send(ROUTER_MAC + self.mac + b"\x08\x00" + ip_packet)

    async def receive(self, timeout: float = 10.0) -> bytes:
        with trio.fail_after(timeout):
            await trio.lowlevel.wait_readable(self.sock.fileno())
            return self.sock.recv(65536)

    async def receive_ip(self, protocol: int, timeout: float = 10.0) -> bytes:
        """The next IPv4 packet of ``protocol`` for this card (others are skipped)."""
        with trio.fail_after(timeout):
            while True:
                frame = await self.receive()
                assert frame[:6] == self.mac and frame[6:12] == ROUTER_MAC
                if frame[12:14] == b"\x08\x00" and frame[14 + 9] == protocol:
                    return frame[14:]


@contextmanager
def card(directory: Path, ip: str) -> Iterator[FakeCard]:
    fake = FakeCard(directory, ip)
    try:
        yield fake
    finally:
        fake.sock.close()


def echo_request(src: str, dst: str, ident: int, seq: int) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"frame-ping" * 4
    body = body[:2] + checksum(body).to_bytes(2, "big") + body[4:]
    return ipv4_packet(src, dst, body, protocol=1)[10:]


def valid(block: bytes) -> bool:
    """A block with its checksum filled in: its Internet checksum is all ones."""
    return checksum(block) == 0xFFFF


async def ping_over_frames(fake: FakeCard, target: str) -> None:
    fake.send_ip(echo_request(fake.ip, target, 0x4242, 1))
    reply = await fake.receive_ip(1)
    assert reply[12:16] == key(target) and reply[16:20] == key(fake.ip)
    assert reply[20] == 0 and reply[24:28] == struct.pack("!HH", 0x4242, 1)  # echo reply
    assert reply.endswith(b"frame-ping" * 4)
    assert int.from_bytes(reply[2:4], "big") == len(reply)
    assert valid(reply[:20]) and valid(reply[20:])  # IPv4 header, ICMP


async def test_frames_exchange_arp_icmp_udp_and_dns_with_a_tun_namespace(tmp_path: Path) -> None:
    cidr = random_cidr()
    gateway, ip_tun, ip_vm = host(cidr, 1), host(cidr, 2), host(cidr, 3)
    with namespaces(1) as (ns,):
        async with nodes(1, cidr, memory=True) as (a,):
            a.router.add_routes({ip_tun: a.peer, ip_vm: a.peer})
            dns = SubnetDNS(gateway, upstream=[])
            dns.add_records({"web": ip_tun, "vm": ip_vm})
            a.router.set_gateway_dns(dns.handle)
            await a.router.attach(ip_tun, netns=ns_path(ns))
            frames = await a.router.attach_frames(ip_vm, tmp_path)
            assert frames.host_path == tmp_path / HOST_SOCKET
            assert frames.guest_path == tmp_path / GUEST_SOCKET
            assert a.router.devices[ip_vm] == frames.name
            assert (os.stat(frames.host_path).st_mode & 0o777) == 0o600

            with card(tmp_path, ip_vm) as fake:
                # ARP: the VM learns where the other allocation and the gateway are
                for target in (ip_tun, gateway):
                    fake.sock.send(arp_frame(fake.mac, ip_vm, target))
                    reply = await fake.receive()
                    assert reply[12:14] == b"\x08\x06" and reply[20:22] == b"\x00\x02"
                    assert reply[22:28] == ROUTER_MAC and reply[28:32] == key(target)
                assert a.router.stats.arp_replies == 2

                # ICMP echo to the namespace's kernel, and its reply back as a frame
                await ping_over_frames(fake, ip_tun)

                # UDP from the namespace's kernel to the VM (checksum completed for the VM)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(probe, ns, "udp-rtt", ip_vm, "7777", "1")
                    udp = await fake.receive_ip(17)
                    nursery.cancel_scope.cancel()
                assert udp[12:16] == key(ip_tun) and udp[22:24] == (7777).to_bytes(2, "big")
                udp_len = int.from_bytes(udp[24:26], "big")
                pseudo = udp[12:20] + b"\x00\x11" + udp_len.to_bytes(2, "big")
                assert udp[26:28] != b"\0\0" and valid(pseudo + udp[20 : 20 + udp_len])

                # DNS at the gateway, over frames
                query = DNSRecord.question("web.internal", "A")
                fake.send_ip(udp_packet(key(ip_vm), key(gateway), 4053, 53, query.pack())[10:])
                answer_ip = await fake.receive_ip(17)
                assert answer_ip[12:16] == key(gateway)
                assert answer_ip[20:24] == struct.pack("!HH", 53, 4053)
                answer = DNSRecord.parse(answer_ip[28:])
                assert answer.header.id == query.header.id
                assert [(r.rtype, str(r.rdata)) for r in answer.rr] == [(QTYPE.A, ip_tun)]

                # a frame whose source is not the VM's address goes nowhere
                before = a.router.stats.dropped_spoofed
                fake.send_ip(echo_request(host(cidr, 77), ip_tun, 1, 1))
                await wait_for(lambda: a.router.stats.dropped_spoofed == before + 1)

                # IPv6 and other ethertypes are dropped and counted
                fake.sock.send(ROUTER_MAC + fake.mac + b"\x86\xdd" + bytes(40))
                await wait_for(lambda: a.router.stats.dropped_frames == 1)

            await a.router.detach(ip_vm)
            assert not frames.host_path.exists()
            assert ip_vm not in a.router.devices


async def test_frames_reach_a_tun_namespace_on_another_provider(tmp_path: Path) -> None:
    cidr = random_cidr()
    ip_tun, ip_vm = host(cidr, 2), host(cidr, 3)
    with namespaces(1) as (ns,):
        async with nodes(2, cidr, memory=True) as (a, b):
            for node in (a, b):
                node.router.add_routes({ip_tun: a.peer, ip_vm: b.peer})
            await a.router.attach(ip_tun, netns=ns_path(ns))
            await b.router.attach_frames(ip_vm, tmp_path)
            with card(tmp_path, ip_vm) as fake:
                await ping_over_frames(fake, ip_tun)
                # and many at once: the queue towards the VM keeps them all, in order
                for seq in range(1, 41):
                    fake.send_ip(echo_request(ip_vm, ip_tun, 7, seq))
                seqs = []
                for _ in range(40):
                    reply = await fake.receive_ip(1)
                    seqs.append(struct.unpack("!H", reply[26:28])[0])
                assert seqs == list(range(1, 41))
            assert a.router.stats.received_packets >= 41
            assert b.router.stats.received_packets >= 41


def arp_frame(mac: bytes, sender: str, target: str) -> bytes:
    arp = bytes.fromhex("0001080006040001") + mac + key(sender) + bytes(6) + key(target)
    return b"\xff" * 6 + mac + b"\x08\x06" + arp


def test_the_paths_are_the_executors_to_name() -> None:
    # QEMU binds GUEST_SOCKET and sends to HOST_SOCKET, both in the execution directory.
    assert {HOST_SOCKET, GUEST_SOCKET} == {"subnet.sock", "subnet-vm.sock"}
    assert ipaddress.IPv4Address(".".join(str(b) for b in guest_mac("10.1.2.3")[2:])) == (
        ipaddress.IPv4Address("10.1.2.3")
    )
