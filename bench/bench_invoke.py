"""Invoke round trip to a real ``nunet run`` daemon, next to a plain libp2p echo across processes.

Run: ``.venv/bin/python bench/bench_invoke.py`` (about 60 s). Starts a 2-node devnet
(``dms.devnet``: two real daemons on loopback) and an echo helper process (this script with
``--echo-server``: one ``Libp2pNetwork`` host). The benchmark process is a third libp2p peer with
its own ``Libp2pNetwork`` and an ``Actor`` signing with the devnet user's capability context, so
every measurement crosses a process boundary the same way:

* raw libp2p echo, reused stream — 1 KiB frames on one long-lived stream (the floor);
* raw libp2p echo, new stream per message — what one stream per envelope costs;
* ``Libp2pNetwork.send`` request + ``send`` reply to the echo helper (our network layer, no actor);
* peer → daemon: ``Actor.invoke('/public/hello')`` on node1 — sign, token chain, send, the
  daemon verifies signature and capabilities, runs the behaviour, signs and sends the reply, we
  verify it.

Each runs sequentially (latency p50/p99) and with 16 in flight (round trips/s). The CPU columns
are CPU seconds per round trip of the bench process and of the far end (echo helper or daemon),
read from /proc; they show where the time goes on this 2-core machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from libp2p.peer.id import ID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Helper, cpu_of, loadavg, quantile
from bench_libp2p_echo import (
    ECHO,
    PAYLOAD,
    echo_handler,
    echo_round_trips,
    run_for,
)
from dms import devnet
from dms.actor import Actor, SecurityContext
from dms.client import parse_destination
from dms.crypto import Ed25519PrivateKey
from dms.did import KeyProvider, keystore_for
from dms.network import Libp2pNetwork
from dms.ucan import load_context

SECONDS = 4.0
CONCURRENCY = 16
RoundTrip = Callable[[], Awaitable[None]]


# -- the echo helper process -------------------------------------------------------------------


async def echo_server() -> None:
    net = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    net._host.set_stream_handler(ECHO, echo_handler)

    async def echo(data: bytes, remote: str) -> None:
        await net.send(remote, "reply", data, timeout=10)

    net.register_inbox("echo", echo)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        print(f"LISTEN {net.listen_addresses()[0]}/p2p/{net.host_id}", flush=True)
        await trio.sleep_forever()


# -- measurement -------------------------------------------------------------------------------


class Row:
    def __init__(self, label: str) -> None:
        self.label = label
        self.seq: list[float] = []
        self.conc: list[float] = []
        self.seq_rate = self.conc_rate = 0.0
        self.cpu_here = self.cpu_there = 0.0  # CPU s per round trip, 16-way phase


async def measure(label: str, make_rt: Callable[[], Awaitable[RoundTrip]], far_pid: int) -> Row:
    row = Row(label)
    rts = [await make_rt() for _ in range(CONCURRENCY)]
    for _ in range(20):  # warm up (first stream opening, identify, caches)
        await rts[0]()
    row.seq, row.seq_rate = await run_for(rts[:1], SECONDS)
    me = cpu_of(os.getpid())
    there = cpu_of(far_pid)
    row.conc, row.conc_rate = await run_for(rts, SECONDS)
    n = len(row.conc)
    row.cpu_here = (cpu_of(os.getpid()) - me) / n
    row.cpu_there = (cpu_of(far_pid) - there) / n
    return row


async def bench(net: devnet.Devnet, echo_address: str, echo_pid: int) -> list[Row]:
    target = net.nodes[1]
    key = keystore_for(net.user_dir).load("user", devnet.DEVNET_PASSPHRASE)
    user = load_context(net.user_dir, "user", KeyProvider(key))
    network = Libp2pNetwork(Ed25519PrivateKey.generate(), ["/ip4/127.0.0.1/tcp/0"])
    rows: list[Row] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        echo_peer = await network.connect(echo_address)
        await network.connect(target.address)
        actor = Actor(network, SecurityContext(Ed25519PrivateKey.generate(), user), "bench")
        await nursery.start(actor.run)
        await trio.sleep(1.0)  # identify done both ways: reuse protocol and inboxes known

        reused, fresh = echo_round_trips(network._host, ID.from_base58(echo_peer))

        waiting: dict[int, trio.Event] = {}
        ids = itertools.count()

        async def reply(data: bytes, remote: str) -> None:
            event = waiting.pop(int.from_bytes(data[:8], "big"), None)
            if event is not None:
                event.set()

        network.register_inbox("reply", reply)
        await trio.sleep(0.5)  # identify push announces the new inbox

        async def via_network() -> RoundTrip:
            async def rt() -> None:
                n = next(ids)
                done = waiting[n] = trio.Event()
                await network.send(echo_peer, "echo", n.to_bytes(8, "big") + PAYLOAD, timeout=10)
                await done.wait()

            return rt

        handle = parse_destination(target.did)

        async def invoke() -> RoundTrip:
            async def rt() -> None:
                await actor.invoke(handle, "/public/hello", timeout=10)

            return rt

        reply_env = await actor.invoke(handle, "/public/hello", timeout=10)
        request_env = actor.security.provide(
            actor.message(handle, "/public/hello", timeout=10, reply_to="/private/x"),
            ["/public/hello"],
            ["/private/x"],
        )
        sizes = (len(request_env.to_json()), len(reply_env.to_json()))

        rows.append(await measure("raw libp2p echo, reused stream (floor)", reused, echo_pid))
        rows.append(await measure("raw libp2p echo, new stream per message", fresh, echo_pid))
        rows.append(await measure("Libp2pNetwork.send request + reply", via_network, echo_pid))
        rows.append(await measure("peer -> daemon: invoke /public/hello", invoke, target.pid))
        nursery.cancel_scope.cancel()
    rows[-1].sizes = sizes  # type: ignore[attr-defined]
    return rows


def report(rows: list[Row], load_before: str, load_after: str) -> None:
    print(
        "\nInvoke benchmark: 3 processes on 127.0.0.1 (bench peer, echo helper, 2 devnet daemons),"
    )
    print(
        f"{SECONDS:g} s per measurement, 1 KiB echo payload; loadavg {load_before} -> {load_after}"
    )
    sizes = getattr(rows[-1], "sizes", (0, 0))
    print(f"invoke envelope: request {sizes[0]} B, reply {sizes[1]} B (JSON, tokens included)\n")
    header = (
        f"{'variant':<42} {'p50 ms':>7} {'p99 ms':>7} {'seq/s':>6} {'16-way/s':>9}"
        f" {'16-way p50':>10} {'CPU ms/rt here':>14} {'there':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.label:<42} {quantile(r.seq, 0.5) * 1e3:>7.2f} {quantile(r.seq, 0.99) * 1e3:>7.2f}"
            f" {r.seq_rate:>6.0f} {r.conc_rate:>9.0f} {quantile(r.conc, 0.5) * 1e3:>10.1f}"
            f" {r.cpu_here * 1e3:>14.2f} {r.cpu_there * 1e3:>6.2f}"
        )
    floor = quantile(rows[0].seq, 0.5)
    inv = quantile(rows[-1].seq, 0.5)
    ratio = inv / floor
    verdict = "MET" if ratio <= 2 else "MISSED"
    print(
        f"\ninvoke p50 / reused-stream echo p50 = {inv * 1e3:.2f} / {floor * 1e3:.2f} ms"
        f" = {ratio:.1f}x  (target <= 2x: {verdict})"
    )
    print(
        f"invoke p50 / new-stream echo p50 = {ratio * floor / quantile(rows[1].seq, 0.5):.1f}x;"
        f" invoke p50 / Libp2pNetwork request+reply p50 ="
        f" {inv / quantile(rows[2].seq, 0.5):.1f}x"
    )


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-invoke-"))
    net = None
    try:
        with Helper([__file__, "--echo-server"]) as echo:
            echo_address = echo.expect("LISTEN", timeout=60)
            net = devnet.create(base / "net", 2, log_level="WARNING")
            devnet.start(net)
            load_before = loadavg()
            rows = trio.run(bench, net, echo_address, echo.pid)
            report(rows, load_before, loadavg())
    finally:
        if net is not None:
            devnet.stop(net)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if "--echo-server" in sys.argv:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(echo_server)
    else:
        main()
