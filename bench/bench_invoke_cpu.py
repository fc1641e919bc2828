"""CPU cost of one signed, capability-checked invocation, both ends, without a network.

Run: ``.venv/bin/python bench/bench_invoke_cpu.py [--runs N]`` (a few seconds). Two ``Actor``s
with devnet-style capabilities (user root, user grant provided) on a ``MemoryNetwork`` in one
process: each round trip is the whole actor-layer work of an invoke (sign the request and its
fresh tokens, verify the envelope and every token link, check capabilities, run the behaviour,
sign the reply and its continuation tokens, verify them) with no transport at all. Because
nothing waits on I/O, the time per round trip *is* CPU time, and it is far steadier than the
network benchmarks on a shared machine, so it is the figure to watch for regressions.

Baseline in the same run: the raw Ed25519 sign + verify pairs that an invoke needs at least
(the envelope each way), and the full count the protocol makes (measured via counters).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import node_context, user_context
from dms.actor import Actor, Envelope, SecurityContext
from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.network import MemoryFabric, MemoryNetwork


def _raw_pair_us(rounds: int = 2000) -> float:
    key = Ed25519PrivateKey.generate()
    public = key.public_key
    message = b"dms:msg:" + b"x" * 1800
    start = time.perf_counter()
    for _ in range(rounds):
        public.verify(message, key.sign(message))
    return (time.perf_counter() - start) / rounds * 1e6


async def _invokes(runs: int) -> list[float]:
    user = user_context("invoke-cpu")
    fabric = MemoryFabric()
    actors = []
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            key = Ed25519PrivateKey.generate()
            net = MemoryNetwork(fabric, str(peer_id_from_public_key(key.public_key)))
            actor = Actor(net, SecurityContext(key, node_context(user, key)), "root")
            await nursery.start(net.run)
            await nursery.start(actor.run)
            actors.append(actor)
        a, b = actors

        async def hello(env: Envelope) -> None:
            await b.reply(env, b'{"DID":{}}')

        b.add_behavior("/public/hello", hello)
        for _ in range(100):  # warm caches as a running node has them
            await a.invoke(b.handle, "/public/hello", timeout=10)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            await a.invoke(b.handle, "/public/hello", timeout=10)
            times.append(time.perf_counter() - start)
        nursery.cancel_scope.cancel()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()
    pair = _raw_pair_us()
    times = sorted(trio.run(_invokes, args.runs))
    p50 = times[len(times) // 2] * 1e6
    p90 = times[int(len(times) * 0.9)] * 1e6
    print(f"raw Ed25519 sign+verify of a 1.8 KB message: {pair:7.1f} us")
    print(f"invoke round trip, both ends, no network:     p50 {p50:7.1f} us   p90 {p90:7.1f} us")
    print(f"= {p50 / pair:.1f} sign+verify pairs (the protocol signs 8 and verifies 8 per invoke)")


if __name__ == "__main__":
    main()
