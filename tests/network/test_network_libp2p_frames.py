"""The receive path under every message: TCP read-ahead and Yamux's plain-frame fast path.

Both replace per-message work inside py-libp2p (two ``recv`` per Noise message; the library's
per-frame branches), so these tests push real traffic through real hosts and check that every
byte arrives in order, that flow control still works (a transfer far above the 256 KiB window
needs the WINDOW_UPDATE frames the fast path applies), and that frames the fast path leaves to
the library (stream open, FIN, RST) still behave.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.network.stream.exceptions import StreamError

from dms.crypto import Ed25519PrivateKey
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_streams import read_exactly
from dms.network._libp2p_tcp_reads import buffered_read
from dms.network._libp2p_yamux import _apply_plain_frame

SINK = TProtocol("/test/sink/1.0.0")
ECHO = TProtocol("/test/echo/1.0.0")


class Pair:
    def __init__(self, a: Libp2pNetwork, b: Libp2pNetwork) -> None:
        self.a, self.b = a, b

    async def open(self, protocol: TProtocol) -> Any:
        return await self.a._host.new_stream(self.b._host.get_id(), [protocol])


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    a = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    b = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        await a.connect(f"{b.listen_addresses()[0]}/p2p/{b.host_id}")
        yield Pair(a, b)
        nursery.cancel_scope.cancel()


def test_the_receive_path_is_ours() -> None:
    Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    assert TrioTCPStream.read is buffered_read


async def test_a_transfer_far_above_the_window_arrives_whole_and_in_order(pair: Pair) -> None:
    """8 MiB one way (32 windows: the sender stalls unless WINDOW_UPDATEs arrive), digest
    checked at the far end and echoed back."""
    payload = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)

    async def sink(stream: Any) -> None:
        digest = hashlib.sha256()
        got = 0
        while got < len(payload):
            chunk = await stream.read(65536)
            digest.update(chunk)
            got += len(chunk)
        await stream.write(digest.digest())
        await stream.close()

    pair.b._host.set_stream_handler(SINK, sink)
    stream = await pair.open(SINK)
    with trio.fail_after(60):
        for start in range(0, len(payload), 100_000):
            await stream.write(payload[start : start + 100_000])
        assert await read_exactly(stream, 32) == hashlib.sha256(payload).digest()


async def test_many_small_messages_and_stream_lifecycles(pair: Pair) -> None:
    """200 short-lived streams (SYN, ACK, FIN each way: library frames) carrying 3 messages
    each (plain DATA frames: fast path), concurrently, all echoed byte for byte."""

    async def echo(stream: Any) -> None:
        for _ in range(3):
            await stream.write(await read_exactly(stream, 64))
        await stream.close()

    pair.b._host.set_stream_handler(ECHO, echo)

    async def one(i: int) -> None:
        stream = await pair.open(ECHO)
        for j in range(3):
            message = hashlib.sha256(f"{i}/{j}".encode()).digest() * 2
            await stream.write(message)
            assert await read_exactly(stream, 64) == message
        await stream.close()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)


async def test_a_reset_still_reaches_the_reader(pair: Pair) -> None:
    """RST is a library frame: the reader blocked on the far end must wake with an error."""
    woke: list[BaseException] = []
    done = trio.Event()

    async def reader(stream: Any) -> None:
        try:
            await read_exactly(stream, 10)
        except BaseException as exc:  # whatever woke it, recorded
            woke.append(exc)
        finally:
            done.set()

    pair.b._host.set_stream_handler(SINK, reader)
    stream = await pair.open(SINK)
    await stream.write(b"abc")
    await trio.sleep(0.05)
    await stream.reset()
    with trio.fail_after(10):
        await done.wait()
    assert woke and isinstance(woke[0], EOFError | StreamError), woke


async def test_frames_with_flags_or_unknown_streams_go_to_the_library() -> None:
    class Muxer:
        def __init__(self) -> None:
            self.streams: dict[int, object] = {3: object()}

    def header(typ: int, flags: int, stream_id: int, length: int) -> bytes:
        return (
            bytes([0, typ])
            + flags.to_bytes(2, "big")
            + stream_id.to_bytes(4, "big")
            + (length.to_bytes(4, "big"))
        )

    muxer = Muxer()
    assert not await _apply_plain_frame(muxer, header(0, 1, 3, 10))  # SYN
    assert not await _apply_plain_frame(muxer, header(0, 4, 3, 10))  # FIN
    assert not await _apply_plain_frame(muxer, header(1, 8, 3, 0))  # RST on a window update
    assert not await _apply_plain_frame(muxer, header(0, 0, 5, 10))  # unknown stream
    assert not await _apply_plain_frame(muxer, header(2, 0, 3, 0))  # ping
    assert not await _apply_plain_frame(muxer, header(3, 0, 0, 0))  # go away
    assert not await _apply_plain_frame(muxer, header(0, 0, 3, 0))  # empty DATA
