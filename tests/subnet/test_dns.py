"""The subnet resolver, queried by dnspython over real loopback sockets.

Every server binds an ephemeral port on its own 127.0.0.x address; the "internet" is a second
``SubnetDNS`` (authoritative for ``example``) started by the test, since no upstream is reachable
here.
"""

from __future__ import annotations

import random
import socket

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio

from dms.errors import DMSError
from dms.subnet._dns import (
    InvalidDNSRecord,
    SubnetDNS,
    SubnetDNSError,
    nameservers_from_resolv_conf,
    normalize_name,
    parse_upstream,
)

SERVER_IP = "127.0.0.31"
UPSTREAM_IP = "127.0.0.32"
SILENT_IP = "127.0.0.33"


async def _query(
    address: tuple[str, int], name: str, rdtype: str = "A", *, tcp: bool = False
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    ip, port = address
    if tcp:
        return await dns.asyncquery.tcp(q, ip, port=port, timeout=5)
    return await dns.asyncquery.udp(q, ip, port=port, timeout=5)


def _a_records(reply: dns.message.Message) -> list[tuple[str, str, int]]:
    return [
        (rrset.name.to_text(), rd.address, rrset.ttl)
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.A
        for rd in rrset
    ]


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> SubnetDNS:
    stub = SubnetDNS(UPSTREAM_IP, port=0, upstream=[], domain="example")
    stub.add_records({"host": "192.0.2.7"})
    await nursery.start(stub.run)
    return stub


@pytest.fixture
async def server(nursery: trio.Nursery, upstream: SubnetDNS) -> SubnetDNS:
    ip, port = upstream.address
    dns_server = SubnetDNS(SERVER_IP, port=0, upstream=[f"{ip}:{port}"], timeout=2.0)
    dns_server.add_records({"web": "10.1.2.3", "db.internal": "10.1.2.4"})
    await nursery.start(dns_server.run)
    return dns_server


async def test_known_names_in_both_spellings(server: SubnetDNS) -> None:
    for name, ip in (("web.internal", "10.1.2.3"), ("db.internal.", "10.1.2.4")):
        reply = await _query(server.address, name)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        assert _a_records(reply) == [(name.rstrip(".") + ".", ip, 5)]
    assert server.records == {"web.internal": "10.1.2.3", "db.internal": "10.1.2.4"}


async def test_names_are_case_insensitive_and_the_answer_keeps_the_question_case(
    server: SubnetDNS,
) -> None:
    reply = await _query(server.address, "WeB.InTeRnAl")
    assert _a_records(reply) == [("WeB.InTeRnAl.", "10.1.2.3", 5)]
    server.add_records({"API.Internal": "10.1.2.9"})
    assert _a_records(await _query(server.address, "api.internal")) == [
        ("api.internal.", "10.1.2.9", 5)
    ]


async def test_over_tcp_too(server: SubnetDNS) -> None:
    reply = await _query(server.address, "web.internal", tcp=True)
    assert _a_records(reply) == [("web.internal.", "10.1.2.3", 5)]


async def test_unknown_internal_name_is_nxdomain_with_a_short_negative_ttl(
    server: SubnetDNS,
) -> None:
    reply = await _query(server.address, "nope.internal")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    (soa,) = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa[0].minimum == 5 and soa.ttl == 5


async def test_aaaa_and_any_for_a_known_name(server: SubnetDNS) -> None:
    reply = await _query(server.address, "web.internal", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer == []
    reply = await _query(server.address, "web.internal", "ANY")
    assert _a_records(reply) == [("web.internal.", "10.1.2.3", 5)]


async def test_removed_records_become_nxdomain(server: SubnetDNS) -> None:
    assert _a_records(await _query(server.address, "web.internal"))
    server.remove_records(["web", "DB.internal.", "never-there"])
    for name in ("web.internal", "db.internal"):
        assert (await _query(server.address, name)).rcode() == dns.rcode.NXDOMAIN
    assert server.records == {}
    server.add_records({"web": "10.1.2.5"})  # an allocation that moved
    assert _a_records(await _query(server.address, "web.internal")) == [
        ("web.internal.", "10.1.2.5", 5)
    ]


async def test_other_names_are_forwarded_upstream(server: SubnetDNS) -> None:
    for tcp in (False, True):
        reply = await _query(server.address, "host.example", tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR
        assert _a_records(reply) == [("host.example.", "192.0.2.7", 5)]
        # The upstream's own answer is relayed: its NXDOMAIN stays an NXDOMAIN.
        reply = await _query(server.address, "missing.example", tcp=tcp)
        assert reply.rcode() == dns.rcode.NXDOMAIN


async def test_silent_upstream_gives_servfail_within_the_timeout(nursery: trio.Nursery) -> None:
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        await silent.bind((SILENT_IP, 0))  # bound, never read: queries vanish
        port = silent.getsockname()[1]
        server = SubnetDNS(SERVER_IP, port=0, upstream=[f"{SILENT_IP}:{port}"], timeout=0.3)
        await nursery.start(server.run)
        started = trio.current_time()
        reply = await _query(server.address, "host.example")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert trio.current_time() - started < 2.0
        # Local names still answer while a forward is pending or failed.
        server.add_records({"web": "10.1.2.3"})
        assert _a_records(await _query(server.address, "web.internal"))


async def test_no_upstream_gives_servfail(nursery: trio.Nursery) -> None:
    server = SubnetDNS(SERVER_IP, port=0, upstream=[])
    await nursery.start(server.run)
    assert (await _query(server.address, "host.example")).rcode() == dns.rcode.SERVFAIL


async def test_garbage_is_dropped_and_the_server_still_answers(server: SubnetDNS) -> None:
    rng = random.Random(14)
    junk = [b"", b"\x00", b"\x12\x34garbage", bytes(12), b"\xff" * 40]
    junk += [rng.randbytes(rng.randint(1, 600)) for _ in range(200)]
    # A well-formed *response* must not be answered either (no reflection loops).
    junk.append(dns.message.make_response(dns.message.make_query("web.internal", "A")).to_wire())
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.connect(server.address)
        for packet in junk:
            await sock.send(packet)
        # Only well-formed queries get an answer: check by sending a real one last.
        query = dns.message.make_query("web.internal", "A")
        await sock.send(query.to_wire())
        with trio.fail_after(5):
            while True:
                reply = dns.message.from_wire(await sock.recv(65535))
                if reply.id == query.id:
                    break
        assert _a_records(reply) == [("web.internal.", "10.1.2.3", 5)]
    # Garbage over TCP closes that connection only.
    stream = await trio.open_tcp_stream(*server.address)
    async with stream:
        await stream.send_all(b"\x00\x05hello")
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""
    assert _a_records(await _query(server.address, "web.internal", tcp=True))


async def test_bad_records_are_rejected_whole() -> None:
    server = SubnetDNS(SERVER_IP, port=0, upstream=[])
    with pytest.raises(InvalidDNSRecord, match="invalid IPv4 address"):
        server.add_records({"ok": "10.0.0.2", "bad": "10.0.0.300"})
    with pytest.raises(InvalidDNSRecord, match="invalid DNS name"):
        server.add_records({"a..b": "10.0.0.2"})
    with pytest.raises(InvalidDNSRecord):
        server.add_records({"x" * 64: "10.0.0.2"})
    assert server.records == {}


async def test_port_taken_is_a_one_line_error(nursery: trio.Nursery, server: SubnetDNS) -> None:
    clash = SubnetDNS(SERVER_IP, port=server.address[1], upstream=[])
    with pytest.raises(SubnetDNSError, match=r"cannot serve DNS on 127\.0\.0\.31:\d+") as info:
        await nursery.start(clash.run)
    assert isinstance(info.value, DMSError) and "\n" not in str(info.value)


def test_name_and_upstream_parsing() -> None:
    assert normalize_name("web") == "web.internal."
    assert normalize_name("Web.Internal.") == "web.internal."
    assert normalize_name("a.b") == "a.b.internal."
    assert normalize_name("internal") == "internal."
    assert parse_upstream("1.2.3.4") == ("1.2.3.4", 53)
    assert parse_upstream("1.2.3.4:5353") == ("1.2.3.4", 5353)
    assert parse_upstream("::1") == ("::1", 53)
    assert parse_upstream("[::1]:5353") == ("::1", 5353)
    for bad in ("example.com", "1.2.3.4:0", "1.2.3.4:x", "[::1]x"):
        with pytest.raises(DMSError):
            parse_upstream(bad)
    text = (
        "# generated\nsearch lan\nnameserver 127.0.0.53\nnameserver  192.0.2.1 # isp\n"
        "nameserver bogus\noptions edns0\nnameserver fe80::1%eth0\n"
    )
    assert nameservers_from_resolv_conf(text) == ["127.0.0.53", "192.0.2.1", "fe80::1%eth0"]


async def test_the_server_never_forwards_to_itself() -> None:
    # Listed as its own upstream (a resolv.conf pointing at the gateway): no loop, SERVFAIL.
    async with trio.open_nursery() as nursery:
        probe = SubnetDNS(SERVER_IP, port=0, upstream=[])
        ip, port = await nursery.start(probe.run)
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        server = SubnetDNS(ip, port=port, upstream=[f"{ip}:{port}"], timeout=0.5)
        await nursery.start(server.run)
        assert (await _query(server.address, "host.example")).rcode() == dns.rcode.SERVFAIL
        nursery.cancel_scope.cancel()
