"""Request/response cost on Libp2pNetwork next to a plain py-libp2p echo of the same run.

Run: ``python bench/bench_libp2p_echo.py`` (about 30 s). Both hosts live in ONE process and
share one core (the GIL), so every figure is the CPU cost of both ends together; a real pair of
daemons splits it. Four ways to do a 1 KiB round trip between two hosts on 127.0.0.1:

* raw echo, reused stream — one libp2p stream, 8-byte length frames both ways (the floor);
* raw echo, new stream per message — what the Go DMS protocol costs per message (baseline);
* ``Libp2pNetwork.send`` request + ``send`` reply, stream reuse on (our peers);
* the same with reuse off (how we talk to a Go DMS: one stream per envelope).

Each runs sequentially (one request in flight: latency) and with 16 in flight (throughput).
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.custom_types import TProtocol

from bench_common import quantile
from dms.crypto import Ed25519PrivateKey
from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_streams import read_exactly

ECHO = TProtocol("/bench/echo/1.0.0")
PAYLOAD = b"x" * 1024
SECONDS = 2.5
CONCURRENCY = 16
SCENARIOS = (("raw", True), ("net reuse on", True), ("net reuse off", False))
RoundTrip = Callable[[], Awaitable[None]]


async def read_frame(stream: Any) -> bytes:
    (n,) = struct.unpack("<Q", await read_exactly(stream, 8))
    return await read_exactly(stream, n)


def frame(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


async def echo_handler(stream: Any) -> None:
    """Echo frames until EOF (serves both raw variants)."""
    try:
        while True:
            try:
                data = await read_frame(stream)
            except EOFError:
                break
            await stream.write(frame(data))
        await stream.close()
    except Exception:
        await stream.reset()


async def run_for(rts: list[RoundTrip], seconds: float) -> tuple[list[float], float]:
    """Run every round trip in ``rts`` back to back, concurrently, for ``seconds``: the
    latency of each round trip and round trips per second."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(rt: RoundTrip) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await rt()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for rt in rts:
            nursery.start_soon(worker, rt)
    return latencies, len(latencies) / (time.perf_counter() - start)


async def measure(
    make_rt: Callable[[], Awaitable[RoundTrip]], concurrency: int
) -> tuple[list[float], float]:
    """Latencies of every round trip and round trips per second over ``SECONDS``."""
    rts = [await make_rt() for _ in range(concurrency)]
    await rts[0]()  # warm up
    return await run_for(rts, SECONDS)


def echo_round_trips(
    host: Any, peer: Any
) -> tuple[Callable[[], Awaitable[RoundTrip]], Callable[[], Awaitable[RoundTrip]]]:
    """Makers of raw echo round trips to ``peer``: on one reused stream, and on a new stream
    per message."""

    async def reused() -> RoundTrip:
        stream = await host.new_stream(peer, [ECHO])

        async def rt() -> None:
            await stream.write(frame(PAYLOAD))
            await read_frame(stream)

        return rt

    async def fresh() -> RoundTrip:
        async def rt() -> None:
            stream = await host.new_stream(peer, [ECHO])
            await stream.write(frame(PAYLOAD))
            await read_frame(stream)
            await stream.close()

        return rt

    return reused, fresh


async def pair(reuse: bool) -> tuple[Libp2pNetwork, Libp2pNetwork]:
    a = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"], reuse_streams=reuse)
    b = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"], reuse_streams=reuse)
    return a, b


Row = tuple[str, list[float], float, float]


async def raw_rows(a: Libp2pNetwork, b: Libp2pNetwork) -> list[Row]:
    """The plain libp2p echo, on a reused stream and on a new stream per message."""
    b._host.set_stream_handler(ECHO, echo_handler)
    reused, fresh = echo_round_trips(a._host, b._host.get_id())

    rows: list[Row] = []
    for label, make in (
        ("raw libp2p echo, reused stream", reused),
        ("raw libp2p echo, new stream/msg (baseline)", fresh),
    ):
        lat, _ = await measure(make, 1)
        _, rate = await measure(make, CONCURRENCY)
        rows.append((label, lat, len(lat) / SECONDS, rate))
    return rows


async def network_rows(a: Libp2pNetwork, b: Libp2pNetwork, label: str) -> list[Row]:
    """A request to b's ``echo`` inbox, answered by a send to a's ``reply`` inbox."""
    waiting: dict[int, trio.Event] = {}
    ids = itertools.count()

    async def echo(data: bytes, remote: str) -> None:
        await b.send(remote, "reply", data, timeout=10)

    async def reply(data: bytes, remote: str) -> None:
        waiting.pop(int.from_bytes(data[:8], "big")).set()

    b.register_inbox("echo", echo)
    a.register_inbox("reply", reply)
    await trio.sleep(0.5)  # identify push announces the new inboxes

    async def via_network() -> RoundTrip:
        async def rt() -> None:
            n = next(ids)
            done = waiting[n] = trio.Event()
            await a.send(b.host_id, "echo", n.to_bytes(8, "big") + PAYLOAD, timeout=10)
            await done.wait()

        return rt

    lat, _ = await measure(via_network, 1)
    _, rate = await measure(via_network, CONCURRENCY)
    return [(f"Libp2pNetwork.send request+reply, {label}", lat, len(lat) / SECONDS, rate)]


async def main() -> None:
    rows: list[Row] = []
    for name, reuse in SCENARIOS:
        a, b = await pair(reuse)
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            await a.connect(b.listen_addresses()[0])
            await trio.sleep(0.5)  # identify finished: protocols known
            if name == "raw":
                rows += await raw_rows(a, b)
            else:
                rows += await network_rows(a, b, name[4:])
            nursery.cancel_scope.cancel()

    print("Libp2pNetwork echo benchmark: 2 hosts in ONE process (one core, both ends counted),")
    print(f"127.0.0.1, {len(PAYLOAD)} B payload, {SECONDS:g} s per measurement\n")
    header = f"{'variant':<46} {'p50 ms':>8} {'p99 ms':>8} {'seq rt/s':>9} {'16-way rt/s':>12}"
    print(header)
    print("-" * len(header))
    for label, lat, seq_rate, conc_rate in rows:
        print(
            f"{label:<46} {quantile(lat, 0.5) * 1e3:>8.2f} {quantile(lat, 0.99) * 1e3:>8.2f}"
            f" {seq_rate:>9.0f} {conc_rate:>12.0f}"
        )


if __name__ == "__main__":
    trio.run(main)
