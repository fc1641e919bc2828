"""Rate limiter thresholds and back-pressure (spec §2.5); behaviour registry rules (§2.3)."""

from __future__ import annotations

import time

import pytest
import trio
from tests.actor.actor_sim import User, make_nodes, wait_for

from dms.actor import (
    Address,
    BehaviorRegistry,
    DropReason,
    Envelope,
    EnvelopeOptions,
    Handle,
    RateLimiter,
    RateLimiterConfig,
)
from dms.crypto import ID, Ed25519PrivateKey
from dms.errors import InvalidInput
from dms.network import MemoryFabric

EXP = time.time_ns() + 3600 * 10**9
SOMEONE = Handle(ID.from_public_key(Ed25519PrivateKey.generate().public_key), address=Address("h"))


def env(behavior: str, topic: str = "") -> Envelope:
    to = Handle() if topic else SOMEONE
    return Envelope(to=to, behavior=behavior, options=EnvelopeOptions(EXP, topic=topic))


def test_default_limits_match_go() -> None:
    c = RateLimiterConfig()
    assert (c.public_allow, c.public_acquire) == (4096, 4112)
    assert (c.broadcast_allow, c.broadcast_acquire) == (1024, 1040)
    assert c.topic_default == 128


def test_public_allow_and_acquire_thresholds() -> None:
    limiter = RateLimiter(RateLimiterConfig(public_allow=2, public_acquire=3))
    public = env("/public/hello")
    for _ in range(2):
        assert limiter.allow(public)
        assert limiter.try_acquire(public)
    assert not limiter.allow(public)  # allow is the lower bar
    assert limiter.try_acquire(public)  # acquire has a little headroom
    assert not limiter.try_acquire(public)
    private = env("/dms/node/peers/list")
    for _ in range(100):  # other direct messages are not limited
        assert limiter.allow(private) and limiter.try_acquire(private)
    limiter.release(public)
    assert limiter.try_acquire(public)


def test_broadcast_and_topic_limits() -> None:
    limiter = RateLimiter(
        RateLimiterConfig(broadcast_allow=10, broadcast_acquire=10, topic_limits={"/a": 1})
    )
    a, b = env("/broadcast/x", "/a"), env("/broadcast/x", "/b")
    assert limiter.try_acquire(a)
    assert not limiter.allow(a) and not limiter.try_acquire(a)  # /a is full
    assert limiter.allow(b) and limiter.try_acquire(b)  # /b has the default limit
    assert limiter.in_flight() == {"public": 0, "broadcast": 2, "/a": 1, "/b": 1}
    limiter.release(a)
    assert limiter.allow(a)


async def test_acquire_waits_for_a_slot_until_the_deadline() -> None:
    limiter = RateLimiter(RateLimiterConfig(public_allow=1, public_acquire=1))
    public = env("/public/hello")
    assert await limiter.acquire(public)
    assert not await limiter.acquire(public, trio.current_time() + 0.05)  # nobody released
    got: list[bool] = []
    async with trio.open_nursery() as nursery:

        async def waiter() -> None:
            got.append(await limiter.acquire(public, trio.current_time() + 5))

        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        assert got == []  # back-pressure: waiting, not dropped
        limiter.release(public)
    assert got == [True]


async def test_public_flood_is_slowed_not_lost(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    b.actor.limiter.config = RateLimiterConfig(public_allow=100, public_acquire=2)
    running, peak, done = 0, 0, 0

    async def slow(env: Envelope) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await trio.sleep(0.02)
        running -= 1
        done += 1

    b.actor.add_behavior("/public/slow", slow)
    for _ in range(10):
        await a.actor.send(a.actor.message(b.actor.handle, "/public/slow", timeout=5))
    await wait_for(lambda: done == 10)
    assert peak == 2
    assert DropReason.RATE_LIMITED.value not in b.actor.stats


async def _noop(env: Envelope) -> None:
    pass


def test_registry_defaults_and_one_shot() -> None:
    registry = BehaviorRegistry()
    b = registry.add("/dms/node/peers/list", _noop)
    assert b.capabilities == ("/dms/node/peers/list",)
    assert registry.get("/dms/node/peers/list") is b
    assert registry.get("/dms/node/peers") is None
    once = registry.add("/dms/actor/replyto/1", _noop, one_shot=True)
    assert registry.take(once)
    assert not registry.take(once)
    assert "/dms/actor/replyto/1" not in registry
    with pytest.raises(InvalidInput):
        registry.add("", _noop)
    with pytest.raises(InvalidInput):
        registry.add("/x", _noop, capabilities=[])
    assert registry.add("/t", _noop, topic="/nunet/hello").topic == "/nunet/hello"


def test_registry_expiry_and_gc() -> None:
    registry = BehaviorRegistry()
    now = time.time_ns()
    registry.add("/old", _noop, expiry_ns=now - 1)
    registry.add("/older", _noop, expiry_ns=now - 2)
    registry.add("/new", _noop, expiry_ns=now + 10**12)
    registry.add("/forever", _noop)
    assert len(registry) == 4
    assert registry.get("/old") is None  # expired: invisible and removed
    assert registry.gc() == 1
    assert registry.names() == ["/forever", "/new"]
    assert registry.gc(now + 2 * 10**12) == 1
    assert [b.name for b in registry] == ["/forever"]
