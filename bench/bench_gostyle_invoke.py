"""Invoke from a Go-style peer (a new stream per message, both ways) against a raw new-stream echo.

Run: ``.venv/bin/python bench/bench_gostyle_invoke.py`` (about 30 s). A helper process plays the
DMS node: one ``Libp2pNetwork`` (stream reuse on, as a daemon) with a ``dms.node.Node`` whose
capability context is set up as ``dms.devnet`` does, plus a raw echo protocol. The bench process
is the caller, with its own hosts and ``Actor`` signing with the user's context:

* raw libp2p echo, reused stream — the floor;
* raw libp2p echo, new stream per message — the baseline of the target;
* **Go-style peer -> node: invoke /public/hello** — the caller's host has stream reuse off
  (``reuse_streams=False``), so, like a Go DMS, it neither advertises nor uses our multi-frame
  protocol: the request goes on a new ``actor/root/messages/0.0.1`` stream and the node answers
  on a new stream to the caller's inbox;
* our peer -> node: the same invoke with stream reuse on both ways (for comparison).

Sequential round trips (p50/p99) and 16 in flight (round trips/s); CPU ms per round trip of the
bench process ("here") and of the node ("there") in the 16-way phase, from /proc.
Target (issue 10): Go-style invoke p50 <= 2x the new-stream echo p50 of the same run.
``--profile FILE`` writes a cProfile of the node process (sequential Go-style phase) to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import sys
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
from dms.crypto import Ed25519PrivateKey
from dms.network import Libp2pNetwork
from dms.node import Node

SEED = "gostyle"
SECONDS = 4.0
CONCURRENCY = 16
TARGET_RATIO = 2.0
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
RoundTrip = Callable[[], Awaitable[None]]


# -- the node process --------------------------------------------------------------------------


async def serve_node(profile: str | None) -> None:
    key = Ed25519PrivateKey.generate()
    network = Libp2pNetwork(key, LOOPBACK)
    network._host.set_stream_handler(ECHO, echo_handler)
    node = Node(
        network,
        SecurityContext(key, node_context(make_user_context(SEED), key)),
        Config(),
        hello_delay=(3600, 3600),
    )
    profiler = cProfile.Profile() if profile else None
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


async def bench(helper: Helper, profile: bool) -> list[Row]:
    address, did = helper.expect("NODE").split()
    user = make_user_context(SEED)
    go_like = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK, reuse_streams=False)
    ours = Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK)
    go_actor = Actor(go_like, SecurityContext(Ed25519PrivateKey.generate(), user), "gostyle")
    our_actor = Actor(ours, SecurityContext(Ed25519PrivateKey.generate(), user), "ours")
    target = parse_destination(did)

    async def order(what: str) -> None:
        helper.tell(what)
        await trio.to_thread.run_sync(helper.expect, f"ACK {what}")

    async def nothing(_: str) -> None:
        return None

    async def profiled(stage: str) -> None:
        await order("profile-on" if stage == "begin" else "profile-off")

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
        rows.append(
            await measure(
                "Go-style peer -> node: invoke /public/hello",
                [invoker(go_actor)] * CONCURRENCY,
                helper.pid,
                profiled if profile else nothing,
            )
        )
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


def report(rows: list[Row], load_before: str, load_after: str) -> None:
    print("\nGo-style invoke: bench process (callers) -> node process (Libp2pNetwork + Node)")
    print(f"on 127.0.0.1; {SECONDS:g} s per phase; loadavg {load_before} -> {load_after}\n")
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
    fresh = quantile(rows[1].seq, 0.5)
    go = quantile(rows[2].seq, 0.5)
    ratio = go / fresh
    verdict = "MET" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"\nGo-style invoke p50 / new-stream echo p50 = {go * 1e3:.2f} / {fresh * 1e3:.2f} ms"
        f" = {ratio:.2f}x  (target <= {TARGET_RATIO:g}x: {verdict})"
    )
    print(f"Go-style / reused-stream invoke p50 = {go / quantile(rows[3].seq, 0.5):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the node (Go-style phase)")
    args = parser.parse_args()
    if args.node:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(serve_node, args.profile)
        return
    extra = ["--profile", args.profile] if args.profile else []
    with Helper([__file__, "--node", *extra]) as helper:
        load_before = loadavg()
        rows = trio.run(bench, helper, bool(args.profile))
        report(rows, load_before, loadavg())
        helper.tell("stop")


if __name__ == "__main__":
    main()
