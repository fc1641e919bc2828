"""Port mappings through the userspace proxy, against real echo servers on loopback.

The "allocation" is an echo server on 127.0.0.41 (TCP) / 127.0.0.42 (UDP); the "provider"
address the mapping listens on is 127.0.0.40.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from functools import partial

import pytest
import trio

from dms.errors import DMSError
from dms.subnet._portmap import PortMapError, PortMapper, PortMapping

PROVIDER_IP = "127.0.0.40"
TCP_DEST_IP = "127.0.0.41"
UDP_DEST_IP = "127.0.0.42"
TRAILER = b"<eof seen>"


async def _tcp_echo(stream: trio.SocketStream) -> None:
    """Echo until the client half-closes, then send a trailer (the reverse way must still be
    open) and close."""
    async with stream:
        while data := await stream.receive_some(1 << 16):
            await stream.send_all(data)
        await stream.send_all(TRAILER)


@pytest.fixture
async def echo_port(nursery: trio.Nursery) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, _tcp_echo, 0, host=TCP_DEST_IP))
    return int(listeners[0].socket.getsockname()[1])


@pytest.fixture
async def udp_echo(nursery: trio.Nursery) -> int:
    """Replies to each datagram with ``<sender host:port>|<payload>``."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind((UDP_DEST_IP, 0))

    async def serve() -> None:
        with sock:
            while True:
                data, (host, port) = await sock.recvfrom(65535)
                await sock.sendto(f"{host}:{port}|".encode() + data, (host, port))

    nursery.start_soon(serve)
    return int(sock.getsockname()[1])


@pytest.fixture(params=[True, False], ids=["splice", "copy"])
async def mapper(nursery: trio.Nursery, request: pytest.FixtureRequest) -> PortMapper:
    """Both TCP paths: zero-copy ``splice(2)`` and the copy-loop fallback."""
    return PortMapper(nursery, udp_idle_timeout=0.3, zero_copy=request.param)


async def _receive_all(stream: trio.SocketStream) -> bytes:
    chunks = []
    while chunk := await stream.receive_some(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_tcp_moves_bytes_both_ways_and_passes_the_half_close(
    mapper: PortMapper, echo_port: int
) -> None:
    port = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
    assert port > 0
    assert mapper.mappings == [PortMapping("TCP", PROVIDER_IP, port, TCP_DEST_IP, echo_port)]
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(PROVIDER_IP, port)
        async with stream:
            await stream.send_all(b"ping")
            assert await stream.receive_some(100) == b"ping"
            await stream.send_eof()  # the echo server sees EOF only if the proxy passes it on
            assert await _receive_all(stream) == TRAILER


async def test_tcp_5_mb_transfer(mapper: PortMapper, echo_port: int) -> None:
    port = await mapper.map("tcp", "", 0, TCP_DEST_IP, echo_port)
    payload = os.urandom(5 * 1024 * 1024)
    received = bytearray()
    with trio.fail_after(30):
        stream = await trio.open_tcp_stream(PROVIDER_IP, port)
        async with stream:

            async def send() -> None:
                view = memoryview(payload)
                for i in range(0, len(payload), 100_000):
                    await stream.send_all(view[i : i + 100_000])
                await stream.send_eof()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                received += await _receive_all(stream)
    assert len(received) == len(payload) + len(TRAILER)
    assert hashlib.sha256(received[: len(payload)]).digest() == hashlib.sha256(payload).digest()
    assert bytes(received[len(payload) :]) == TRAILER


async def test_many_concurrent_tcp_connections(mapper: PortMapper, echo_port: int) -> None:
    port = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)

    async def one(i: int) -> None:
        stream = await trio.open_tcp_stream(PROVIDER_IP, port)
        async with stream:
            await stream.send_all(b"%d" % i)
            await stream.send_eof()
            assert await _receive_all(stream) == b"%d" % i + TRAILER

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(one, i)


async def test_unreachable_destination_resets_the_client(mapper: PortMapper) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind((TCP_DEST_IP, 0))
        dead_port = s.getsockname()[1]
    port = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, dead_port)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(PROVIDER_IP, port)
        async with stream:
            with pytest.raises(trio.BrokenResourceError):
                await _receive_all(stream)  # a reset, not a clean (misleading) EOF


async def _wait_for_no_flows(mapper: PortMapper) -> None:
    while mapper.udp_flows:
        await trio.sleep(0.02)


async def test_udp_mapping_keeps_one_flow_per_client_and_expires_it(
    mapper: PortMapper, udp_echo: int
) -> None:
    port = await mapper.map("UDP", PROVIDER_IP, 0, UDP_DEST_IP, udp_echo)
    with trio.fail_after(10):
        with (
            trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
            trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
        ):
            await a.connect((PROVIDER_IP, port))
            await b.connect((PROVIDER_IP, port))
            await a.send(b"one")
            seen_a, _, data = (await a.recv(65535)).partition(b"|")
            assert data == b"one"
            await b.send(b"two")
            seen_b, _, data = (await b.recv(65535)).partition(b"|")
            assert data == b"two"
            assert seen_a != seen_b  # each client has its own flow (so replies find it)
            await a.send(b"three")
            again, _, data = (await a.recv(65535)).partition(b"|")
            assert (again, data) == (seen_a, b"three")
            assert mapper.udp_flows == 2
            await _wait_for_no_flows(mapper)  # idle expiry (0.3 s here)
            await a.send(b"four")
            _, _, data = (await a.recv(65535)).partition(b"|")
            assert data == b"four" and mapper.udp_flows == 1  # a new flow


async def test_unmap_closes_the_listener_and_its_connections(
    mapper: PortMapper, echo_port: int
) -> None:
    port = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
    with trio.fail_after(10):
        live = await trio.open_tcp_stream(PROVIDER_IP, port)
        await live.send_all(b"x")
        assert await live.receive_some(10) == b"x"
        await mapper.unmap("TCP", PROVIDER_IP, port)
        assert mapper.mappings == []
        with pytest.raises(OSError):
            await trio.open_tcp_stream(PROVIDER_IP, port)
        with contextlib.suppress(trio.BrokenResourceError):  # a reset is as good as an EOF
            assert await live.receive_some(10) == b""
        await live.aclose()
    with pytest.raises(PortMapError, match="is not mapped"):
        await mapper.unmap("TCP", PROVIDER_IP, port)


async def test_a_taken_port_gives_a_clear_error(mapper: PortMapper, echo_port: int) -> None:
    with socket.socket() as taken:
        taken.bind((PROVIDER_IP, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(PortMapError) as info:
            await mapper.map("TCP", PROVIDER_IP, busy, TCP_DEST_IP, echo_port)
    assert str(info.value) == f"TCP port {PROVIDER_IP}:{busy} is already in use"
    port = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
    with pytest.raises(PortMapError, match="already mapped"):
        await mapper.map("TCP", PROVIDER_IP, port, TCP_DEST_IP, echo_port)
    assert len(mapper.mappings) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("SCTP", PROVIDER_IP, 0, TCP_DEST_IP, 80), "unknown port-mapping protocol 'SCTP'"),
        (("TCP", "not-an-ip", 0, TCP_DEST_IP, 80), "invalid source address 'not-an-ip'"),
        (("TCP", PROVIDER_IP, 0, "10.0.0", 80), "invalid destination address '10.0.0'"),
        (("TCP", PROVIDER_IP, 0, "::1", 80), "is not IPv4"),
        (("TCP", PROVIDER_IP, 70000, TCP_DEST_IP, 80), "invalid source port 70000"),
        (("UDP", PROVIDER_IP, 0, TCP_DEST_IP, 0), "invalid destination port 0"),
        (("TCP", "192.0.2.250", 0, TCP_DEST_IP, 80), "address 192.0.2.250 is not on this host"),
    ],
)
async def test_bad_input_is_a_one_line_error(
    mapper: PortMapper, args: tuple[str, str, int, str, int], message: str
) -> None:
    with pytest.raises(PortMapError, match=message) as info:
        await mapper.map(*args)
    assert isinstance(info.value, DMSError) and "\n" not in str(info.value)
    assert mapper.mappings == []


async def test_close_removes_everything(mapper: PortMapper, echo_port: int, udp_echo: int) -> None:
    tcp = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
    tcp2 = await mapper.map("TCP", "0.0.0.0", 0, TCP_DEST_IP, echo_port)
    udp = await mapper.map("UDP", PROVIDER_IP, 0, UDP_DEST_IP, udp_echo)
    assert len(mapper.mappings) == 3
    await mapper.close()
    assert mapper.mappings == []
    for port in (tcp, tcp2):
        with pytest.raises(OSError):
            await trio.open_tcp_stream(PROVIDER_IP, port)
    # The UDP port is free again: we can bind it ourselves.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((PROVIDER_IP, udp))
    with pytest.raises(PortMapError, match="closed"):
        await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
    await mapper.close()  # idempotent


async def test_unmap_destination_removes_an_allocations_ports(
    mapper: PortMapper, echo_port: int, udp_echo: int
) -> None:
    await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
    await mapper.map("UDP", PROVIDER_IP, 0, UDP_DEST_IP, udp_echo)
    gone = await mapper.unmap_destination(TCP_DEST_IP)
    assert [m.dest_ip for m in gone] == [TCP_DEST_IP]
    assert [m.dest_ip for m in mapper.mappings] == [UDP_DEST_IP]


async def test_cancelling_the_owner_nursery_ends_the_mappings(echo_port: int) -> None:
    async with trio.open_nursery() as nursery:
        mapper = PortMapper(nursery)
        port = await mapper.map("TCP", PROVIDER_IP, 0, TCP_DEST_IP, echo_port)
        nursery.cancel_scope.cancel()
    assert mapper.mappings == []
    with pytest.raises(OSError):
        await trio.open_tcp_stream(PROVIDER_IP, port)
