"""The pubsub read loop's framer: varint-delimited RPCs cut from chunked stream reads.

The framer replaces py-libp2p's byte-at-a-time prefix reads on every gossip RPC, so it must
cut exactly the same frames from any split of the bytes and refuse what the library refuses
(an overlong prefix, a frame above the limit, a stream that ends mid-frame).
"""

from __future__ import annotations

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import MessageTooLarge
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.pubsub.pubsub import Pubsub
from libp2p.utils import encode_varint_prefixed

from dms.crypto import Ed25519PrivateKey
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_gossip_reader import InlinePubsub, VarintFramer

FRAMES = [b"", b"a", b"x" * 127, b"y" * 128, b"z" * 300, bytes(range(256)) * 70]
WIRE = b"".join(encode_varint_prefixed(f) for f in FRAMES)


class Chunks:
    """A stream that returns the given chunks, then EOF (b"", as a closed Yamux stream can)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


async def frames_of(stream: Chunks, limit: int = 1 << 20) -> list[bytes]:
    framer = VarintFramer(stream, limit)
    out = []
    with pytest.raises(StreamEOF):
        while True:
            out.append(await framer.next_frame())
    return out


async def test_every_split_of_the_bytes_gives_the_same_frames() -> None:
    for cut in [*range(1, 12), 130, 131, 260, len(WIRE) - 1]:
        assert await frames_of(Chunks([WIRE[:cut], WIRE[cut:]])) == FRAMES, cut
    assert await frames_of(Chunks([WIRE[i : i + 1] for i in range(len(WIRE))])) == FRAMES


async def test_frames_that_arrived_together_cost_one_read() -> None:
    stream = Chunks([WIRE])
    assert await frames_of(stream) == FRAMES
    assert stream.reads == 2  # the data, then the end


async def test_a_frame_above_the_limit_is_refused_before_its_body_arrives() -> None:
    framer = VarintFramer(Chunks([encode_varint_prefixed(b"q" * 1001)[:2]]), 1000)
    with pytest.raises(MessageTooLarge):
        await framer.next_frame()


async def test_an_overlong_or_overflowing_prefix_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        await VarintFramer(Chunks([b"\x80" * 10 + b"\x01"]), 1 << 70).next_frame()
    with pytest.raises(ParseError):  # 10 bytes, but above 2**64 - 1
        await VarintFramer(Chunks([b"\xff" * 9 + b"\x7f"]), 1 << 70).next_frame()


async def test_a_stream_that_ends_mid_frame_is_an_eof() -> None:
    assert await frames_of(Chunks([WIRE[:-5]])) == FRAMES[:-1]


async def test_frames_from_a_real_libp2p_stream_written_in_odd_pieces() -> None:
    """Real hosts, Noise and Yamux between the writes and the framer."""
    protocol = TProtocol("/test/framer/1.0.0")
    a = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    b = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    received: list[bytes] = []
    done = trio.Event()

    async def handler(stream: object) -> None:
        framer = VarintFramer(stream, 1 << 20)
        while len(received) < len(FRAMES):
            received.append(await framer.next_frame())
        done.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        b._host.set_stream_handler(protocol, handler)
        await a.connect(f"{b.listen_addresses()[0]}/p2p/{b.host_id}")
        stream = await a._host.new_stream(b._host.get_id(), [protocol])
        for start in range(0, len(WIRE), 997):
            await stream.write(WIRE[start : start + 997])
            await trio.sleep(0)
        with trio.fail_after(10):
            await done.wait()
        nursery.cancel_scope.cancel()
    assert received == FRAMES


def test_our_hosts_run_the_inline_reader() -> None:
    network = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    assert isinstance(network._pubsub, InlinePubsub)
    assert InlinePubsub.continuously_read_stream is not Pubsub.continuously_read_stream
