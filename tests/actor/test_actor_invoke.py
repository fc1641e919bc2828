"""Invoke/reply between actors on a memory network, timeouts, self-invocation, children."""

from __future__ import annotations

import time

import pytest
import trio
from tests.actor.actor_sim import Node, User, make_nodes, wait_for

from dms.actor import (
    HEALTHCHECK_BEHAVIOR,
    REPLY_PREFIX,
    Actor,
    ActorError,
    ActorNotRunning,
    DropReason,
    Envelope,
    Handler,
    InvokeTimeout,
    SecurityContext,
)
from dms.crypto import Secp256k1PrivateKey
from dms.did import did_from_id
from dms.errors import NetworkError, NetworkTimeout
from dms.network import MemoryFabric


def echo(actor: Actor) -> Handler:
    async def handler(env: Envelope) -> None:
        await actor.reply(env, {"echo": env.decode_payload(), "by": actor.inbox})

    return handler


async def test_invoke_reply_round_trip(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    b.actor.add_behavior("/dms/node/peers/self", echo(b.actor))
    reply = await a.actor.invoke(b.actor.handle, "/dms/node/peers/self", {"q": 1}, timeout=5)
    assert reply.decode_payload() == {"echo": {"q": 1}, "by": "root"}
    assert reply.from_ == b.actor.handle
    assert reply.to == a.actor.handle
    assert reply.behavior.startswith(REPLY_PREFIX)
    assert b.actor.stats.get("handled") == 1
    assert a.actor.stats.get("handled") == 1
    # the continuation was one-shot: nothing left behind
    assert not [n for n in a.actor.behaviors.names() if n.startswith(REPLY_PREFIX)]


async def test_secp256k1_actor_round_trip(nursery: trio.Nursery) -> None:
    user, fabric = User(), MemoryFabric()
    (b,) = await make_nodes(nursery, fabric, user, 1)
    a = Node(fabric, Secp256k1PrivateKey.generate())
    a.trust(user)
    user.grant(a)
    await a.start(nursery)
    b.actor.add_behavior("/dms/node/peers/self", echo(b.actor))
    reply = await a.actor.invoke(b.actor.handle, "/dms/node/peers/self", "hi", timeout=5)
    assert reply.decode_payload()["echo"] == "hi"


async def test_invoke_timeout_raises_in_time_and_cleans_up(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)

    async def silent(env: Envelope) -> None:
        await trio.sleep(60)

    b.actor.add_behavior("/dms/node/slow", silent)
    start = time.monotonic()
    with pytest.raises(InvokeTimeout, match="no reply to /dms/node/slow") as info:
        await a.actor.invoke(b.actor.handle, "/dms/node/slow", timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 1.5
    assert isinstance(info.value, NetworkTimeout)
    assert "\n" not in str(info.value)
    assert not [n for n in a.actor.behaviors.names() if n.startswith(REPLY_PREFIX)]
    # the slow handler was cancelled at the message expiry, not left running
    await wait_for(lambda: b.actor.stats.get("handler_timeout") == 1)


async def test_unreachable_peer_is_a_network_error(nursery: trio.Nursery) -> None:
    fabric = MemoryFabric()
    a, b = await make_nodes(nursery, fabric, User(), 2)
    fabric.partition(a.peer_id, b.peer_id)
    with pytest.raises(NetworkError):
        await a.actor.invoke(b.actor.handle, "/dms/node/peers/self", timeout=2)
    assert not [n for n in a.actor.behaviors.names() if n.startswith(REPLY_PREFIX)]


async def test_invoke_needs_a_running_actor() -> None:
    node = Node(MemoryFabric())
    with pytest.raises(ActorNotRunning):
        await node.actor.invoke(node.actor.handle, "/x", timeout=1)


async def test_self_invocation_skips_capability_checks(nursery: trio.Nursery) -> None:
    (a,) = await make_nodes(nursery, MemoryFabric(), User(), 1, grant=False)
    a.actor.add_behavior("/dms/node/private", echo(a.actor))
    reply = await a.actor.invoke(a.actor.handle, "/dms/node/private", [1, 2], timeout=5)
    assert reply.decode_payload()["echo"] == [1, 2]
    assert not reply.capability  # never left the actor: no tokens needed


async def test_handler_errors_do_not_stop_the_actor(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)

    async def broken(env: Envelope) -> None:
        raise RuntimeError("boom")

    b.actor.add_behavior("/dms/node/broken", broken)
    b.actor.add_behavior("/dms/node/ok", echo(b.actor))
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/dms/node/broken", timeout=0.3)
    assert b.actor.stats.get("handler_failed") == 1
    reply = await a.actor.invoke(b.actor.handle, "/dms/node/ok", 7, timeout=5)
    assert reply.decode_payload()["echo"] == 7


async def test_reply_needs_a_continuation(nursery: trio.Nursery) -> None:
    (a,) = await make_nodes(nursery, MemoryFabric(), User(), 1)
    with pytest.raises(ActorError, match="no continuation"):
        await a.actor.reply(a.actor.message(a.actor.handle, "/x"), None)


async def test_behavior_expiry_and_gc(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    b.actor.add_behavior("/dms/node/temp", echo(b.actor), expiry_ns=time.time_ns() + 200_000_000)
    assert (await a.actor.invoke(b.actor.handle, "/dms/node/temp", timeout=5)).message
    await trio.sleep(0.25)
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/dms/node/temp", timeout=0.3)
    assert b.actor.stats.get(DropReason.UNKNOWN_BEHAVIOR) == 1
    assert "/dms/node/temp" not in b.actor.behaviors


async def test_child_actor_shares_context_and_accepts_supervisor(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    child = b.actor.create_child("alloc-1")
    assert child.supervisor == b.actor.handle
    assert child.handle.address.host == b.peer_id
    assert child.handle.address.inbox == "alloc-1"
    assert child.handle.did == b.ctx.did  # same capability context
    assert child.handle.id != b.actor.handle.id  # fresh key
    assert child.security.capabilities is b.ctx
    # the child granted its supervisor the healthcheck capability as a require anchor
    [grant] = [t for t in b.ctx.list().require.tokens if HEALTHCHECK_BEHAVIOR in t.dms.caps]
    assert grant.dms.subject == b.ctx.did
    assert grant.dms.audience == did_from_id(child.handle.id)
    await nursery.start(child.run)

    async def healthcheck(env: Envelope) -> None:
        await child.reply(env, {"OK": True, "Error": ""})

    child.add_behavior(HEALTHCHECK_BEHAVIOR, healthcheck)
    reply = await b.actor.invoke(child.handle, HEALTHCHECK_BEHAVIOR, "alloc-1", timeout=5)
    assert reply.decode_payload() == {"OK": True, "Error": ""}
    # a remote node holding the user's grant reaches the child too, and the child can call out
    child.add_behavior("/dms/allocation/start", echo(child))
    reply = await a.actor.invoke(child.handle, "/dms/allocation/start", timeout=5)
    assert reply.decode_payload()["by"] == "alloc-1"
    a.actor.add_behavior("/dms/node/peers/self", echo(a.actor))
    reply = await child.invoke(a.actor.handle, "/dms/node/peers/self", timeout=5)
    assert reply.decode_payload()["by"] == "root"


async def test_actor_stops_cleanly_on_cancel() -> None:
    fabric = MemoryFabric()
    node = Node(fabric)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.net.run)
        async with trio.open_nursery() as inner:
            await inner.start(node.actor.run)
            assert node.actor.running
            inner.cancel_scope.cancel()
        assert not node.actor.running
        nursery.cancel_scope.cancel()


def test_security_context_refuses_disallowed_keys() -> None:
    from dms.crypto import EthPrivateKey
    from dms.errors import CryptoError

    node = Node(MemoryFabric())
    with pytest.raises(CryptoError):
        SecurityContext(EthPrivateKey.generate(), node.ctx)
