"""CPU cost of one signed, capability-checked invocation, both ends, without a network.

Run: ``.venv/bin/python bench/bench_invoke_cpu.py [--runs N]`` (a few seconds). Two ``Actor``s
with devnet-style capabilities (user root, user grant provided) on a ``MemoryNetwork`` in one
process: each round trip is the whole actor-layer work of an invoke (sign the request and its
fresh tokens, verify the envelope and every token link, check capabilities, run the behaviour,
sign the reply and its continuation tokens, verify them) with no transport at all. Because
nothing waits on I/O, the time per round trip *is* CPU time, and it is far steadier than the
network benchmarks on a shared machine, so it is the figure to watch for regressions.

Baselines in the same run: the raw Ed25519 sign + verify of a 1.8 KB message, and the
invoke's own floor: every signature and verification one invoke makes is recorded (the
``dms.crypto`` Ed25519 calls, wrapped for one round trip) and replayed raw, on the same keys
and bytes, so "invoke / own crypto" is the overhead above the protocol's cryptography
(issue 16 target: <= 2x). Invokes and floor replays alternate in blocks so that load from
other jobs hits both alike.
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
from dms.crypto import _keys as keys_module
from dms.network import MemoryFabric, MemoryNetwork


def _raw_pair_us(rounds: int = 2000) -> float:
    key = Ed25519PrivateKey.generate()
    public = key.public_key
    message = b"dms:msg:" + b"x" * 1800
    start = time.perf_counter()
    for _ in range(rounds):
        public.verify(message, key.sign(message))
    return (time.perf_counter() - start) / rounds * 1e6


class _Recorder:
    """Records the Ed25519 signs and verifies made while active (the invoke's own crypto)."""

    def __init__(self) -> None:
        self.signs: list[tuple[Ed25519PrivateKey, bytes]] = []
        self.verifies: list[tuple[keys_module.Ed25519PublicKey, bytes, bytes]] = []
        self._sign = keys_module.Ed25519PrivateKey.sign
        self._verify = keys_module.Ed25519PublicKey.verify

    def __enter__(self) -> _Recorder:
        rec, sign, verify = self, self._sign, self._verify

        def recording_sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
            rec.signs.append((key, bytes(data)))
            return sign(key, data)

        def recording_verify(key: keys_module.Ed25519PublicKey, data: bytes, sig: bytes) -> bool:
            rec.verifies.append((key, bytes(data), bytes(sig)))
            return verify(key, data, sig)

        keys_module.Ed25519PrivateKey.sign = recording_sign  # type: ignore[method-assign,assignment]
        keys_module.Ed25519PublicKey.verify = recording_verify  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        keys_module.Ed25519PrivateKey.sign = self._sign  # type: ignore[method-assign]
        keys_module.Ed25519PublicKey.verify = self._verify  # type: ignore[method-assign]

    def replay_us(self, rounds: int) -> float:
        """Time of the recorded operations, done raw (the cryptography calls only), in us."""
        signs = [(k._key, d) for k, d in self.signs]
        verifies = [(k._key, d, s) for k, d, s in self.verifies]
        start = time.perf_counter()
        for _ in range(rounds):
            for key, data in signs:
                key.sign(data)
            for pub, data, sig in verifies:
                pub.verify(sig, data)
        return (time.perf_counter() - start) / rounds * 1e6


async def _invokes(runs: int, blocks: int) -> tuple[list[float], list[float], _Recorder]:
    user = user_context("invoke-cpu")
    fabric = MemoryFabric()
    actors = []
    floors: list[float] = []
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
        with _Recorder() as recorder:
            await a.invoke(b.handle, "/public/hello", timeout=10)
        times = []
        per_block = max(1, runs // blocks)
        for _ in range(blocks):
            for _ in range(per_block):
                start = time.perf_counter()
                await a.invoke(b.handle, "/public/hello", timeout=10)
                times.append(time.perf_counter() - start)
            floors.append(recorder.replay_us(max(1, per_block // 4)))
        nursery.cancel_scope.cancel()
    return times, floors, recorder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--blocks", type=int, default=10)
    args = parser.parse_args()
    pair = _raw_pair_us()
    raw_times, floors, recorder = trio.run(_invokes, args.runs, args.blocks)
    times = sorted(raw_times)
    p50 = times[len(times) // 2] * 1e6
    p90 = times[int(len(times) * 0.9)] * 1e6
    floor = sorted(floors)[len(floors) // 2]
    print(f"raw Ed25519 sign+verify of a 1.8 KB message: {pair:7.1f} us")
    print(
        f"the invoke's own crypto, replayed raw:        {floor:7.1f} us"
        f" ({len(recorder.signs)} signs + {len(recorder.verifies)} verifies)"
    )
    print(f"invoke round trip, both ends, no network:     p50 {p50:7.1f} us   p90 {p90:7.1f} us")
    print(
        f"= {p50 / pair:.1f} sign+verify pairs of 1.8 KB; {p50 / floor:.2f}x its own crypto"
        " (target <= 2x)"
    )


if __name__ == "__main__":
    main()
