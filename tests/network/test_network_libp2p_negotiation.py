"""Per-stream costs of Go-style messages (issue 10): listener-side negotiation, the sender's echo
check, one socket write per message, stream notifications and peer-ID parsing, on real
py-libp2p hosts where it matters."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.io.trio import TrioTCPStream
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.protocol_muxer.multiselect import MULTISELECT_PROTOCOL_ID
from libp2p.utils import encode_delim
from tests.network.test_network_libp2p_direct import collector, new_net, running, wait_for

from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.errors import NetworkError
from dms.network._libp2p_cork import corked, patch_corkable_writes, tcp_stream_of
from dms.network._libp2p_multiselect import protocol_line
from dms.network._libp2p_notify import is_trivial_callback
from dms.network._libp2p_streams import CORK_LIMIT, go_frame, go_protocol, send_lazily

HEADER = encode_delim(MULTISELECT_PROTOCOL_ID.encode())


# -- listener-side negotiation ----------------------------------------------------------------


def test_a_whole_protocol_line_is_recognised_and_anything_else_is_not() -> None:
    line = encode_delim(b"actor/root/messages/0.0.1")
    assert protocol_line(line + b"frame bytes") == ("actor/root/messages/0.0.1", len(line))
    long_name = "actor/" + "x" * 200 + "/messages/0.0.1"  # a two-byte varint
    long_line = encode_delim(long_name.encode())
    assert protocol_line(long_line) == (long_name, len(long_line))
    assert protocol_line(line[:-3]) is None  # not all here yet
    assert protocol_line(b"") is None
    assert protocol_line(b"\x80" * 11) is None  # unterminated varint
    assert protocol_line(encode_delim(b"")) is None  # empty line
    assert protocol_line(b"\x04ab\nX") is None  # not newline-terminated where it says
    assert protocol_line(encode_delim(b"\xff\xfe")) is None  # not UTF-8


async def raw_stream(a: Any, b: Any) -> Any:
    """A new Yamux stream from ``a`` to ``b`` with no negotiation at all (we speak it by hand)."""
    return await a._host.get_network().new_stream(b._host.get_id())


async def test_the_listener_sends_nothing_before_the_dialers_header() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        stream = await raw_stream(a, b)
        with trio.move_on_after(0.3) as idle:
            await stream.read(1)
        assert idle.cancelled_caught  # a bare SYN got no header back
        # The header, then (later) the protocol and a frame, as two separate writes.
        await stream.write(HEADER)
        with trio.fail_after(5):
            assert await stream.read(len(HEADER)) == HEADER
        await stream.write(encode_delim(go_protocol("root").encode()) + go_frame(b"late"))
        await stream.close_write()
        with trio.fail_after(5):
            assert await stream.read(100) == encode_delim(go_protocol("root").encode())
        await wait_for(lambda: got == [(b"late", a.host_id)])


async def test_a_lazy_dialer_gets_header_and_echo_in_one_frame() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        stream = await raw_stream(a, b)
        protocol = encode_delim(go_protocol("root").encode())
        await stream.write(HEADER + protocol + go_frame(b"lazy"))
        await stream.close_write()
        with trio.fail_after(5):
            # one read returns both: they left in one Yamux frame
            assert await stream.muxed_stream.read(1000) == HEADER + protocol
        await wait_for(lambda: got == [(b"lazy", a.host_id)])


async def test_a_lazy_dialer_for_a_protocol_we_lack_gets_na() -> None:
    a, b = new_net(), new_net()
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        stream = await raw_stream(a, b)
        await stream.write(HEADER + encode_delim(b"/no/such/1.0.0") + b"data")
        with trio.fail_after(5):
            answer = b""
            while len(answer) < len(HEADER + encode_delim(b"na")):
                answer += await stream.read(100)
        assert answer == HEADER + encode_delim(b"na")


async def test_the_lazy_sender_reports_a_refusal_as_before() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        with trio.fail_after(5), pytest.raises(NetworkError, match="does not accept"):
            await send_lazily(a._host, b._host.get_id(), go_protocol("gone"), go_frame(b"x"))
        with trio.fail_after(5):
            await send_lazily(a._host, b._host.get_id(), go_protocol("root"), go_frame(b"ok"))
        await wait_for(lambda: got == [(b"ok", a.host_id)])


async def test_non_lazy_dialers_and_the_librarys_protocols_still_negotiate() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        # py-libp2p's own client waits for our header before it sends the protocol
        stream = await a._host.new_stream(b._host.get_id(), [go_protocol("root")])
        await stream.write(go_frame(b"plain"))
        await stream.close()
        await wait_for(lambda: got == [(b"plain", a.host_id)])
        assert await a.ping(b.host_id, timeout=5) >= 0  # ping: the library's own protocol


# -- stream notifications -------------------------------------------------------------------


async def _empty(self: Any, network: Any, stream: Any) -> None:
    """Nothing."""


async def _returns_none(self: Any, network: Any, stream: Any) -> None:
    return None


async def _checkpoint(self: Any, network: Any, stream: Any) -> None:
    await trio.lowlevel.checkpoint()


async def _works(self: Any, network: Any, stream: Any) -> None:
    self.seen.append(stream)


async def _returns_a_value(self: Any, network: Any, stream: Any) -> int:
    return 1


def test_only_callbacks_that_do_nothing_are_trivial() -> None:
    assert is_trivial_callback(_empty)
    assert is_trivial_callback(_returns_none)
    assert is_trivial_callback(_checkpoint)
    assert not is_trivial_callback(_works)
    assert not is_trivial_callback(_returns_a_value)
    assert not is_trivial_callback(print)  # no Python code to look at


async def test_a_notifee_that_handles_stream_events_still_gets_them() -> None:
    a, b = new_net(), new_net()
    got, handler = collector()
    b.register_inbox("root", handler)

    class Recording:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def opened_stream(self, network: Any, stream: Any) -> None:
            self.seen.append("opened")

        async def closed_stream(self, network: Any, stream: Any) -> None:
            self.seen.append("closed")

        async def connected(self, network: Any, conn: Any) -> None:
            return None

        async def disconnected(self, network: Any, conn: Any) -> None:
            return None

        async def listen(self, network: Any, multiaddr: Any) -> None:
            return None

        async def listen_close(self, network: Any, multiaddr: Any) -> None:
            return None

    recording = Recording()
    async with running(a, b):
        swarm: Swarm = b._host.get_network()
        swarm.register_notifee(recording)  # type: ignore[arg-type]
        await a.connect(b.listen_addresses()[0])
        await a.send(b.host_id, "root", b"x", timeout=5)
        await wait_for(lambda: len(got) == 1 and "closed" in recording.seen)
        assert recording.seen[0] == "opened"


# -- peer IDs -------------------------------------------------------------------------------


def test_a_peer_id_text_is_parsed_once_and_bad_text_still_fails() -> None:
    new_net()  # installs the cache
    text = str(peer_id_from_public_key(Ed25519PrivateKey.generate().public_key))
    first = ID.from_base58(text)
    assert ID.from_base58(text) is first
    assert first.to_base58() == text and first == ID(first.to_bytes())
    with pytest.raises(ValueError):
        ID.from_base58("0OIl")  # not base58

    class Other(ID):
        pass

    via_subclass = Other.from_base58(text)  # a subclass goes to the library's own parser
    assert via_subclass is not first and via_subclass == first


# -- one socket write per Go-style message ----------------------------------------------------


@pytest.mark.parametrize("security", ["noise", "tls"])
async def test_a_go_style_message_leaves_in_one_socket_write(security: str) -> None:
    a = new_net(reuse_streams=False, security=[security])
    b = new_net(reuse_streams=False, security=[security])
    got, handler = collector()
    b.register_inbox("root", handler)
    async with running(a, b):
        await a.connect(b.listen_addresses()[0])
        await wait_for(lambda: all(p.protocols for p in a.peers()))  # lazy: identify done
        (connection,) = a._host.get_network().get_connections(b._host.get_id())
        tcp = tcp_stream_of(connection)
        assert tcp is not None
        sent: list[int] = []
        send_all = tcp.stream.send_all

        async def counting(data: bytes) -> None:
            sent.append(len(data))
            await send_all(data)

        tcp.stream.send_all = counting  # type: ignore[method-assign]
        await a.send(b.host_id, "root", b"m" * 2000, timeout=5)
        await wait_for(lambda: len(got) == 1)
        assert len(sent) == 1 and sent[0] > 2000  # SYN, data and FIN together
        sent.clear()
        await a.send(b.host_id, "root", b"b" * (CORK_LIMIT + 1), timeout=5)  # too big to cork
        await wait_for(lambda: len(got) == 2)
        assert len(sent) > 1
        assert [d for d, _ in got] == [b"m" * 2000, b"b" * (CORK_LIMIT + 1)]


async def test_writes_held_by_a_cork_leave_in_order_and_even_on_cancellation() -> None:
    class FakeSocket:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        async def send_all(self, data: bytes) -> None:
            self.sent.append(data)

    patch_corkable_writes()
    fake = FakeSocket()
    tcp = TrioTCPStream(fake)  # type: ignore[arg-type]
    await tcp.write(b"before ")
    with trio.move_on_after(0.05):
        async with corked([tcp]):
            await tcp.write(b"one ")
            async with corked([tcp]):  # nested: the outer cork keeps holding
                await tcp.write(b"two ")
            assert fake.sent == [b"before "]
            await trio.sleep_forever()  # cancelled: what was held still goes
    await tcp.write(b"after")
    assert fake.sent == [b"before ", b"one two ", b"after"]
