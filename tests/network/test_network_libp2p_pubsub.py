"""GossipSub between real py-libp2p hosts: validators, delivery rate, shutdown under load."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import trio

from dms.crypto import Ed25519PrivateKey
from dms.network import Validation
from dms.network._libp2p import Libp2pNetwork

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
TOPIC = "/nunet/hello"


def verdict(data: bytes, source: str) -> Validation:
    if data.startswith(b"bad"):
        return Validation.REJECT
    if data.startswith(b"old"):
        return Validation.IGNORE
    return Validation.ACCEPT


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.05)


async def connect_mesh(nets: list[Libp2pNetwork]) -> None:
    """Each host dials the next two (a ring with chords), so every host has >= 4 links."""
    n = len(nets)
    for i, net in enumerate(nets):
        for step in (1, 2):
            other = nets[(i + step) % n]
            await net.connect(other.listen_addresses()[0])


async def test_pubsub_validators_and_full_delivery() -> None:
    nets = [Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK) for _ in range(5)]
    received: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
    async with trio.open_nursery() as nursery:
        for net in nets:
            await nursery.start(net.run)
        await connect_mesh(nets)
        for net in nets:

            async def handler(data: bytes, source: str, me: str = net.host_id) -> None:
                received[me].append((data, source))

            await net.subscribe(TOPIC, handler, verdict)
        await trio.sleep(2.5)  # a few 1 s heartbeats: meshes form

        async def publisher(net: Libp2pNetwork) -> None:
            for i in range(20):  # 5 msg/s for 4 s
                await net.publish(TOPIC, f"ok {net.host_id} {i}".encode())
                if i % 5 == 0:
                    await net.publish(TOPIC, f"bad {net.host_id} {i}".encode())
                    await net.publish(TOPIC, f"old {net.host_id} {i}".encode())
                await trio.sleep(0.2)

        async with trio.open_nursery() as pubs:
            for net in nets:
                pubs.start_soon(publisher, net)
        expected = 20 * (len(nets) - 1)
        await wait_for(lambda: all(len(received[n.host_id]) >= expected for n in nets), 15)
        await trio.sleep(0.5)
        for net in nets:
            got = received[net.host_id]
            assert len(got) == expected  # 100 %, no duplicates
            assert all(d.startswith(b"ok") for d, _ in got)
            assert all(src != net.host_id for _, src in got)  # never our own
            assert all(d.split()[1].decode() == src for d, src in got)  # source = signer
        # unsubscribe stops delivery
        await nets[0].unsubscribe(TOPIC)
        before = len(received[nets[0].host_id])
        await nets[1].publish(TOPIC, b"ok after")
        await wait_for(lambda: len(received[nets[2].host_id]) == expected + 1)
        await trio.sleep(0.3)
        assert len(received[nets[0].host_id]) == before
        nursery.cancel_scope.cancel()


async def test_shutdown_during_pubsub_traffic() -> None:
    for _ in range(5):
        nets = [Libp2pNetwork(Ed25519PrivateKey.generate(), LOOPBACK) for _ in range(3)]
        seen: list[bytes] = []

        async def handler(data: bytes, source: str, seen: list[bytes] = seen) -> None:
            seen.append(data)

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for net in nets:
                    await nursery.start(net.run)
                await connect_mesh(nets)
                for net in nets:
                    await net.subscribe("/nunet/status", handler)
                await trio.sleep(1.2)

                async def flood(net: Libp2pNetwork) -> None:
                    i = 0
                    while True:
                        await net.publish("/nunet/status", b"s%d" % i)
                        i += 1
                        await trio.sleep(0.01)

                for net in nets:
                    nursery.start_soon(flood, net)
                await wait_for(lambda seen=seen: len(seen) > 20)
                nursery.cancel_scope.cancel()  # mid-traffic
        assert len(seen) > 20
