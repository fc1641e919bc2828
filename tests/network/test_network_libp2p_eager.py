"""Eager locks: a free lock is taken without a scheduling point, so a message sent among many
concurrent sends is framed and written in the step that sent it (issue 16, fan-out)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from tests.network.test_network_libp2p_direct import collector, new_net, running, wait_for

from dms.network._libp2p import Libp2pNetwork
from dms.network._libp2p_eager import eager_lock, make_eager


async def test_free_lock_is_taken_without_letting_another_task_run() -> None:
    lock = eager_lock()
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        async with lock:  # a plain trio.Lock would yield here and let `other` run first
            ran.append("locked")
    assert ran == ["locked", "other"]


async def test_held_lock_still_excludes_and_hands_over_in_fifo_order() -> None:
    lock = make_eager(trio.Semaphore(1))
    order: list[int] = []
    inside = 0

    async def worker(i: int) -> None:
        nonlocal inside
        async with lock:
            inside += 1
            assert inside == 1
            order.append(i)
            await trio.sleep(0.001)
            inside -= 1

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(worker, i)
            await trio.testing.wait_all_tasks_blocked()  # i is queued before i + 1
    assert order == list(range(5))


async def test_cancelled_scope_still_raises_at_acquire() -> None:
    lock = eager_lock()
    with trio.CancelScope() as scope:
        scope.cancel()
        await lock.acquire()
        pytest.fail("acquire went through a cancelled scope")  # pragma: no cover
    assert scope.cancelled_caught
    assert not lock.locked()


async def test_make_eager_is_idempotent() -> None:
    lock = trio.Lock()
    assert make_eager(make_eager(lock)) is lock
    async with lock:
        assert lock.locked()
    assert not lock.locked()


def _bytes_framed(net: Libp2pNetwork, peers: list[str]) -> list[int]:
    """Per peer, the bytes our reuse stream has framed so far (its Yamux send window used)."""
    used = []
    for peer in net._sender._links:
        if str(peer) in peers:
            muxed = net._sender._links[peer].stream.muxed_stream
            used.append(muxed._dms_test_window - muxed.send_window)
    return used


async def test_concurrent_sends_are_written_before_any_other_task_runs() -> None:
    """N sends started together: each frame is written in the sender's first step.

    Before, every send yielded at each of the six locks on the way (ours, NetStream's, Yamux's
    and the TCP stream's) and trio ran all N senders one step at a time, so no frame was
    written before all N had done their first steps: a fan-out signed everything first.
    """
    sender = new_net()
    receivers = [new_net() for _ in range(3)]
    inboxes = [collector() for _ in receivers]
    for net, (_, handler) in zip(receivers, inboxes, strict=True):
        net.register_inbox("root", handler)
    peers = [net.host_id for net in receivers]
    async with running(sender, *receivers):
        for net in receivers:
            await sender.connect(net.listen_addresses()[0])
        # open the reuse streams (one message each), then note their send windows
        for net, (got, _) in zip(receivers, inboxes, strict=True):
            await wait_for(
                lambda net=net: any(
                    p.peer_id == net.host_id and p.protocols for p in sender.peers()
                )
            )
            await sender.send(net.host_id, "root", b"warm-up", timeout=5)
            await wait_for(lambda got=got: len(got) == 1)
        for link in sender._sender._links.values():
            link.stream.muxed_stream._dms_test_window = link.stream.muxed_stream.send_window
        seen: list[list[int]] = []

        async def probe() -> None:
            await trio.lowlevel.checkpoint()  # run after the senders' first step
            seen.append(_bytes_framed(sender, peers))

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(lambda p=peer: sender.send(p, "root", b"x" * 1000, timeout=5))
            nursery.start_soon(probe)
        assert len(seen) == 1 and len(seen[0]) == 3
        assert all(used > 1000 for used in seen[0]), seen
        for got, _ in inboxes:
            await wait_for(lambda got=got: len(got) == 2)
        assert all(got[1][0] == b"x" * 1000 for got, _ in inboxes)
