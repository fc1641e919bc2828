"""The in-memory network keeps the Network contract the actor layer relies on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from dms.errors import NetworkError, NetworkTimeout
from dms.network import MAX_MESSAGE_SIZE, MemoryFabric, MemoryNetwork, Validation


async def _start(nursery: trio.Nursery, fabric: MemoryFabric, *names: str) -> list[MemoryNetwork]:
    nets = [MemoryNetwork(fabric, name) for name in names]
    for net in nets:
        await nursery.start(net.run)
    return nets


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def test_direct_messages_carry_the_authenticated_sender() -> None:
    fabric = MemoryFabric()
    got: list[tuple[bytes, str]] = []
    async with trio.open_nursery() as nursery:
        a, b = await _start(nursery, fabric, "peerA", "peerB")

        async def handler(data: bytes, sender: str) -> None:
            got.append((data, sender))

        b.register_inbox("root", handler)
        await a.send("peerB", "root", b"hello", timeout=1)
        await b.send("peerB", "root", b"self", timeout=1)  # local delivery
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(got) == [(b"hello", "peerA"), (b"self", "peerB")]
        assert [p.peer_id for p in a.peers()] == ["peerB"]
        assert a.is_connected("peerB") and not a.is_connected("peerC")
        nursery.cancel_scope.cancel()


async def test_limits_and_failures_are_clear_errors() -> None:
    fabric = MemoryFabric()
    async with trio.open_nursery() as nursery:
        a, b = await _start(nursery, fabric, "peerA", "peerB")

        async def slow(data: bytes, sender: str) -> None:
            await trio.sleep_forever()

        b.register_inbox("root", slow)
        with pytest.raises(NetworkError, match="limit"):
            await a.send("peerB", "root", b"x" * (MAX_MESSAGE_SIZE + 1), timeout=1)
        with pytest.raises(NetworkError, match="no inbox"):
            await a.send("peerB", "nope", b"x", timeout=1)
        with pytest.raises(NetworkError, match="not reachable"):
            await a.send("peerC", "root", b"x", timeout=1)
        fabric.partition("peerA", "peerB")
        with pytest.raises(NetworkError, match="not reachable"):
            await a.send("peerB", "root", b"x", timeout=1)
        with pytest.raises(NetworkTimeout):
            await a.ping("peerB", timeout=0.05)
        fabric.heal("peerA", "peerB")
        assert await a.ping("peerB") >= 0
        nursery.cancel_scope.cancel()


async def test_a_blocked_handler_does_not_hold_up_later_messages() -> None:
    fabric = MemoryFabric()
    async with trio.open_nursery() as nursery:
        a, b = await _start(nursery, fabric, "peerA", "peerB")
        gate = trio.Event()
        seen: list[bytes] = []

        async def blocked(data: bytes, sender: str) -> None:
            seen.append(data)
            await gate.wait()

        b.register_inbox("root", blocked)
        for i in range(5):
            await a.send("peerB", "root", str(i).encode(), timeout=1)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(seen) == [b"0", b"1", b"2", b"3", b"4"]
        gate.set()
        nursery.cancel_scope.cancel()


async def test_pubsub_validates_and_skips_the_publisher() -> None:
    fabric = MemoryFabric()
    got: dict[str, list[bytes]] = {"peerA": [], "peerB": [], "peerC": []}
    async with trio.open_nursery() as nursery:
        nets = await _start(nursery, fabric, "peerA", "peerB", "peerC")
        for net in nets:

            async def handler(data: bytes, source: str, name: str = net.host_id) -> None:
                got[name].append(data)

            def validator(data: bytes, source: str) -> Validation:
                return Validation.REJECT if data.startswith(b"bad") else Validation.ACCEPT

            await net.subscribe("/nunet/hello", handler, validator)
        await nets[0].publish("/nunet/hello", b"good")
        await nets[0].publish("/nunet/hello", b"bad one")
        await _until(lambda: len(got["peerB"]) + len(got["peerC"]) >= 2)
        await nets[1].unsubscribe("/nunet/hello")
        await nets[0].publish("/nunet/hello", b"after")
        await _until(lambda: len(got["peerC"]) >= 2)
        await trio.sleep(0.05)  # time for anything that should not arrive
        assert got == {"peerA": [], "peerB": [b"good"], "peerC": [b"good", b"after"]}
        nursery.cancel_scope.cancel()


async def test_size_limit_counts_the_frame_header_like_libp2p() -> None:
    """Memory refuses exactly what libp2p refuses: 8-byte prefix + data over 1 MiB."""
    fabric = MemoryFabric()
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        a, b = await _start(nursery, fabric, "peerA", "peerB")

        async def handler(data: bytes, sender: str) -> None:
            got.append(data)

        b.register_inbox("root", handler)
        biggest = b"y" * (MAX_MESSAGE_SIZE - 8)
        await a.send("peerB", "root", biggest, timeout=1)
        for peer in ("peerB", "peerA"):  # remote and local delivery alike
            with pytest.raises(NetworkError, match="too large"):
                await a.send(peer, "root", biggest + b"y", timeout=1)
        await _until(lambda: len(got) == 1)
        assert got == [biggest]
        nursery.cancel_scope.cancel()
