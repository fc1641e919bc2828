"""Invoke from a Go-style peer (a new stream per message, both ways) against a raw new-stream echo.

Run: ``.venv/bin/python bench/bench_gostyle_invoke.py`` (about 30 s). A helper process plays the
DMS node: one ``Libp2pNetwork`` (stream reuse on, as a daemon) with a ``dms.node.Node`` whose
capability context is set up as ``dms.devnet`` does, plus a raw echo protocol. The bench process
is the caller, with its own hosts and ``Actor`` signing with the user's context:

* raw libp2p echo, reused stream — the floor;
* raw libp2p echo, new stream per message — the baseline of the target;
* two new streams, no actor — ``Libp2pNetwork.send`` of the same-size request to an inbox of
  the node whose handler sends it back to an inbox of ours, each on a new stream (the
  transport floor of a Go-style exchange);
* **Go-style peer -> node: invoke /public/hello** — the caller's host has stream reuse off
  (``reuse_streams=False``), so, like a Go DMS, it neither advertises nor uses our multi-frame
  protocol: the request goes on a new ``actor/root/messages/0.0.1`` stream and the node answers
  on a new stream to the caller's inbox;
* our peer -> node: the same invoke with stream reuse on both ways (for comparison).

The callers are node-like, as a Go DMS's root actor is: one key for the host, the actor and
its ``dms`` capability context (granted by the user, as ``dms.devnet`` sets nodes up), so the
DID that greets the node is a connected peer. ``--caller user`` signs as the user instead (a
DID that is no peer: the node's hello bookkeeping then looks it up among all its connections on
every invoke), which is what this bench did before 2026-12-03.

Sequential round trips (p50/p99) and 16 in flight (round trips/s); CPU ms per round trip of the
bench process ("here") and of the node ("there") in the 16-way phase, from /proc. The Ed25519
signatures and verifications of one Go-style invoke are counted at both ends and timed raw in
this process, for the floor: two new streams plus that crypto.
Target (issue 10): Go-style invoke p50 <= 2x the new-stream echo p50 of the same run.
``--profile FILE`` writes a cProfile of the node process (sequential Go-style phase) to FILE and
one of the bench process to FILE.caller. They count CPU time, not wall time: on loopback a
``send()`` that wakes the other process may be preempted by it, and a wall-clock profile charges
the other process's work to that ``send()``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from libp2p.peer.id import ID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Helper, cpu_of, loadavg, node_context, quantile, read_stdin_line
from bench_common import user_context as make_user_context
from bench_libp2p_echo import ECHO, echo_handler, echo_round_trips, run_for
from dms.actor import Actor, SecurityContext
from dms.client import parse_destination
from dms.config import Config
from dms.crypto import Ed25519PrivateKey, Ed25519PublicKey
from dms.network import Libp2pNetwork
from dms.node import Node
from dms.ucan import CapabilityContext

SEED = "gostyle"
SECONDS = 4.0
CONCURRENCY = 16
TARGET_RATIO = 2.0
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
RoundTrip = Callable[[], Awaitable[None]]
#: The node's inbox for the two-stream row, and the caller's inbox its answer goes to.
BOUNCE, BOUNCED = "bench-bounce", "bench-bounced"
#: Size of the two-stream row's message (about a signed /public/hello request).
BOUNCE_SIZE = 2000


class CryptoCount:
    """Counts Ed25519 signatures and verifications made in this process (see the module doc)."""

    signs = 0
    verifies = 0

    @classmethod
    def install(cls) -> None:
        sign, verify = Ed25519PrivateKey.sign, Ed25519PublicKey.verify

        def counted_sign(self: Ed25519PrivateKey, data: bytes) -> bytes:
            cls.signs += 1
            return sign(self, data)

        def counted_verify(self: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
            cls.verifies += 1
            return verify(self, data, signature)

        Ed25519PrivateKey.sign = counted_sign  # type: ignore[method-assign]
        Ed25519PublicKey.verify = counted_verify  # type: ignore[method-assign]

    @classmethod
    def now(cls) -> tuple[int, int]:
        return cls.signs, cls.verifies


def raw_ed25519_ms(size: int = BOUNCE_SIZE, n: int = 400) -> tuple[float, float]:
    """Median ms of one raw Ed25519 sign and one verify of ``size`` bytes, in this process."""
    key = Ed25519PrivateKey.generate()
    data = os.urandom(size)
    signature = key.sign(data)
    signs, verifies = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        key.sign(data)
        t1 = time.perf_counter()
        key.public_key.verify(data, signature)
        signs.append(t1 - t0)
        verifies.append(time.perf_counter() - t1)
    return quantile(signs, 0.5) * 1e3, quantile(verifies, 0.5) * 1e3


def cpu_profiler() -> cProfile.Profile:
    """A profiler that counts this process's CPU time (see ``--profile`` in the module doc)."""
    return cProfile.Profile(time.process_time)


# -- the node process --------------------------------------------------------------------------


async def serve_node(profile: str | None) -> None:
    CryptoCount.install()
    key = Ed25519PrivateKey.generate()
    network = Libp2pNetwork(key, LOOPBACK)
    network._host.set_stream_handler(ECHO, echo_handler)

    async def bounce(data: bytes, remote: str) -> None:
        await network.send(remote, BOUNCED, data, timeout=10)

    network.register_inbox(BOUNCE, bounce)  # before run: identify lists it
    node = Node(
        network,
        SecurityContext(key, node_context(make_user_context(SEED), key)),
        Config(),
        hello_delay=(3600, 3600),
    )
    profiler = cpu_profiler() if profile else None
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        await nursery.start(node.run)
        print(f"NODE {network.listen_addresses()[0]} {node.security.did.uri}", flush=True)
        while (order := (await read_stdin_line()).strip()) not in ("", "stop"):
            if profiler is not None and order == "profile-on":
                profiler.enable()
            elif profiler is not None and order == "profile-off":
                profiler.disable()
                profiler.dump_stats(str(profile))
            elif order == "crypto":
                print("CRYPTO {} {}".format(*CryptoCount.now()), flush=True)
            print(f"ACK {order}", flush=True)
        nursery.cancel_scope.cancel()


# -- measurement -------------------------------------------------------------------------------


class Row:
    def __init__(self, label: str) -> None:
        self.label = label
        self.seq: list[float] = []
        self.conc: list[float] = []
        self.seq_rate = self.conc_rate = 0.0
        self.cpu_here = self.cpu_there = 0.0
        self.seq_crypto: tuple[int, int, int, int] | None = None  # signs, verifies here / there


async def measure(
    label: str, rts: list[RoundTrip], far_pid: int, around_seq: Callable[[str], Awaitable[None]]
) -> Row:
    row = Row(label)
    for _ in range(20):  # warm up: first streams, identify, caches
        await rts[0]()
    await around_seq("begin")
    row.seq, row.seq_rate = await run_for(rts[:1], SECONDS)
    await around_seq("end")
    here, there = cpu_of(os.getpid()), cpu_of(far_pid)
    row.conc, row.conc_rate = await run_for(rts, SECONDS)
    n = len(row.conc)
    row.cpu_here = (cpu_of(os.getpid()) - here) / n
    row.cpu_there = (cpu_of(far_pid) - there) / n
    return row


def caller_security(
    key: Ed25519PrivateKey, user: CapabilityContext, caller: str
) -> SecurityContext:
    """The caller's security: node-like (its host's key and a ``dms`` context) or the user."""
    if caller == "user":
        return SecurityContext(Ed25519PrivateKey.generate(), user)
    return SecurityContext(key, node_context(user, key))


async def bench(helper: Helper, profile: str | None, caller: str) -> list[Row]:
    address, did = helper.expect("NODE").split()
    user = make_user_context(SEED)
    go_key, our_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    go_like = Libp2pNetwork(go_key, LOOPBACK, reuse_streams=False)
    ours = Libp2pNetwork(our_key, LOOPBACK)
    go_actor = Actor(go_like, caller_security(go_key, user, caller), "gostyle")
    our_actor = Actor(ours, caller_security(our_key, user, caller), "ours")
    target = parse_destination(did)
    bounced: list[trio.Event] = [trio.Event()]

    async def on_bounced(data: bytes, remote: str) -> None:
        bounced[0].set()

    go_like.register_inbox(BOUNCED, on_bounced)  # before connecting: identify lists it

    async def order(what: str) -> None:
        helper.tell(what)
        await trio.to_thread.run_sync(helper.expect, f"ACK {what}")

    async def node_crypto() -> tuple[int, int]:
        helper.tell("crypto")
        signs, verifies = (await trio.to_thread.run_sync(helper.expect, "CRYPTO")).split()
        await trio.to_thread.run_sync(helper.expect, "ACK crypto")
        return int(signs), int(verifies)

    async def nothing(_: str) -> None:
        return None

    caller_profiler = cpu_profiler()
    counted: dict[str, tuple[int, int, int, int]] = {}

    async def counting(stage: str) -> None:
        here = CryptoCount.now()
        there = await node_crypto()
        counted[stage] = (*here, *there)

    async def profiled(stage: str) -> None:
        if stage == "begin":
            await counting(stage)
            await order("profile-on")
            caller_profiler.enable()
        else:
            caller_profiler.disable()
            caller_profiler.dump_stats(f"{profile}.caller")
            await order("profile-off")
            await counting(stage)

    rows: list[Row] = []
    async with trio.open_nursery() as nursery:
        for net in (go_like, ours):
            await nursery.start(net.run)
        for actor in (go_actor, our_actor):
            await nursery.start(actor.run)
        node_peer = await go_like.connect(address)
        await ours.connect(address)

        def invoker(actor: Actor) -> RoundTrip:
            async def rt() -> None:
                await actor.invoke(target, "/public/hello", timeout=10)

            return rt

        # Identify both ways before measuring (protocol lists decide reuse or not).
        with trio.fail_after(10):
            while not all(p.protocols for net in (go_like, ours) for p in net.peers()):
                await trio.sleep(0.05)
        reused, fresh = echo_round_trips(go_like._host, ID.from_base58(node_peer))
        rows.append(
            await measure(
                "raw libp2p echo, reused stream (floor)",
                [await reused() for _ in range(CONCURRENCY)],
                helper.pid,
                nothing,
            )
        )
        rows.append(
            await measure(
                "raw libp2p echo, new stream per message",
                [await fresh() for _ in range(CONCURRENCY)],
                helper.pid,
                nothing,
            )
        )

        async def two_streams() -> None:
            bounced[0] = trio.Event()
            await go_like.send(node_peer, BOUNCE, payload, timeout=10)
            await bounced[0].wait()

        payload = b"x" * BOUNCE_SIZE
        rows.append(
            await measure(
                "two new streams, no actor (transport floor)",
                [two_streams],  # one at a time: the answer is not matched to its request
                helper.pid,
                nothing,
            )
        )
        go_row = await measure(
            "Go-style peer -> node: invoke /public/hello",
            [invoker(go_actor)] * CONCURRENCY,
            helper.pid,
            profiled if profile else counting,
        )
        n = len(go_row.seq)
        go_row.seq_crypto = tuple(  # type: ignore[assignment]
            round((b - a) / n) for a, b in zip(counted["begin"], counted["end"], strict=True)
        )
        rows.append(go_row)
        rows.append(
            await measure(
                "our peer -> node: invoke (reused streams)",
                [invoker(our_actor)] * CONCURRENCY,
                helper.pid,
                nothing,
            )
        )
        nursery.cancel_scope.cancel()
    return rows


def report(rows: list[Row], load_before: str, load_after: str, caller: str) -> None:
    print("\nGo-style invoke: bench process (callers) -> node process (Libp2pNetwork + Node)")
    print(f"on 127.0.0.1; {SECONDS:g} s per phase; loadavg {load_before} -> {load_after};")
    print(f"callers sign as: {'the user' if caller == 'user' else 'node-like peers'}\n")
    header = (
        f"{'variant':<46} {'p50 ms':>7} {'p99 ms':>7} {'seq/s':>6} {'16-way/s':>9}"
        f" {'CPU ms/rt here':>14} {'there':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.label:<46} {quantile(r.seq, 0.5) * 1e3:>7.2f} {quantile(r.seq, 0.99) * 1e3:>7.2f}"
            f" {r.seq_rate:>6.0f} {r.conc_rate:>9.0f}"
            f" {r.cpu_here * 1e3:>14.2f} {r.cpu_there * 1e3:>6.2f}"
        )
    print("(the two-stream row runs one at a time in both phases)")
    fresh = quantile(rows[1].seq, 0.5)
    streams = quantile(rows[2].seq, 0.5)
    go_row = rows[3]
    go = quantile(go_row.seq, 0.5)
    ratio = go / fresh
    verdict = "MET" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"\nGo-style invoke p50 / new-stream echo p50 = {go * 1e3:.2f} / {fresh * 1e3:.2f} ms"
        f" = {ratio:.2f}x  (target <= {TARGET_RATIO:g}x: {verdict})"
    )
    print(f"Go-style / reused-stream invoke p50 = {go / quantile(rows[4].seq, 0.5):.2f}x")
    if go_row.seq_crypto is not None:
        sign_ms, verify_ms = raw_ed25519_ms()
        s_here, v_here, s_there, v_there = go_row.seq_crypto
        crypto = (s_here + s_there) * sign_ms + (v_here + v_there) * verify_ms
        floor = streams + crypto * 1e-3
        print(
            f"Ed25519 per Go-style invoke: {s_here} signs + {v_here} verifies here,"
            f" {s_there} + {v_there} there = {crypto:.2f} ms raw"
            f" (sign {sign_ms * 1e3:.0f} us, verify {verify_ms * 1e3:.0f} us)"
        )
        print(
            f"floor = two new streams + that crypto = {streams * 1e3:.2f} + {crypto:.2f}"
            f" = {floor * 1e3:.2f} ms = {floor / fresh:.2f}x the echo;"
            f" the invoke's actor/capability Python on top: {(go - floor) * 1e3:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", metavar="FILE", help="CPU cProfile of both processes (Go-style phase)"
    )
    parser.add_argument(
        "--caller",
        choices=("node", "user"),
        default="node",
        help="callers sign as node-like peers (default) or as the user",
    )
    args = parser.parse_args()
    if args.node:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(serve_node, args.profile)
        return
    CryptoCount.install()
    extra = ["--profile", args.profile] if args.profile else []
    with Helper([__file__, "--node", *extra]) as helper:
        load_before = loadavg()
        rows = trio.run(bench, helper, args.profile, args.caller)
        report(rows, load_before, loadavg(), args.caller)
        helper.tell("stop")


if __name__ == "__main__":
    main()
