"""The dispatch pipeline refuses what it must, and counts why (spec §2.3)."""

from __future__ import annotations

import dataclasses
import time

import pytest
import trio
from tests.actor.actor_sim import Node, User, make_nodes, wait_for

from dms.actor import (
    Address,
    DropReason,
    Envelope,
    EnvelopeOptions,
    Handle,
    InvokeTimeout,
)
from dms.did import did_from_id
from dms.network import MemoryFabric


class Recorder:
    """A behaviour handler that records what it got and replies ``"done"``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.calls: list[Envelope] = []

    async def __call__(self, env: Envelope) -> None:
        self.calls.append(env)
        await self.node.actor.reply(env, "done")


async def test_unknown_behaviour_is_dropped(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/dms/node/nothing-here", timeout=0.3)
    assert b.actor.stats == {DropReason.UNKNOWN_BEHAVIOR.value: 1}
    # exact names only: a prefix of a registered behaviour is not it
    b.actor.add_behavior("/dms/node/peers/list", Recorder(b))
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/dms/node/peers", timeout=0.3)
    assert b.actor.stats[DropReason.UNKNOWN_BEHAVIOR] == 2


async def test_capability_needed_then_granted(nursery: trio.Nursery) -> None:
    user, fabric = User(), MemoryFabric()
    a, b = await make_nodes(nursery, fabric, user, 2, grant=False)
    handler = Recorder(b)
    b.actor.add_behavior("/dms/node/onboarding/onboard", handler)
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/dms/node/onboarding/onboard", timeout=0.3)
    assert handler.calls == []
    assert b.actor.stats[DropReason.UNAUTHORIZED] == 1
    assert b.actor.dispatcher.recent_drops[-1][:2] == (
        DropReason.UNAUTHORIZED,
        "/dms/node/onboarding/onboard",
    )
    # the refused sender's tokens were discarded again: nothing changed on b
    assert b.ctx.consumed(did_from_id(a.actor.handle.id)) == []
    assert b.ctx.consumed(b.ctx.did) == []
    user.grant(a, caps=["/dms/node/onboarding"])
    reply = await a.actor.invoke(b.actor.handle, "/dms/node/onboarding/onboard", timeout=5)
    assert reply.decode_payload() == "done"
    assert len(handler.calls) == 1


async def test_hierarchical_capabilities(nursery: trio.Nursery) -> None:
    user, fabric = User(), MemoryFabric()
    a, b = await make_nodes(nursery, fabric, user, 2, grant=False)
    user.grant(a, caps=["/dms/node"])
    b.actor.add_behavior("/dms/node/peers/list", Recorder(b))
    b.actor.add_behavior("/dms/deployment/bid", Recorder(b))
    reply = await a.actor.invoke(b.actor.handle, "/dms/node/peers/list", timeout=5)
    assert reply.decode_payload() == "done"
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/dms/deployment/bid", timeout=0.3)
    assert b.actor.stats[DropReason.UNAUTHORIZED] == 1


async def test_explicit_behaviour_capabilities(nursery: trio.Nursery) -> None:
    # Senders present tokens for the behaviour name, so explicit capabilities can only make a
    # behaviour stricter (every listed capability must be covered), as in Go.
    user, fabric = User(), MemoryFabric()
    a, b = await make_nodes(nursery, fabric, user, 2, grant=False)
    user.grant(a, caps=["/public"])
    b.actor.add_behavior("/public/hello", Recorder(b))
    assert (await a.actor.invoke(b.actor.handle, "/public/hello", timeout=5)).message
    b.actor.add_behavior("/public/admin", Recorder(b), capabilities=["/public/admin", "/dms"])
    with pytest.raises(InvokeTimeout):
        await a.actor.invoke(b.actor.handle, "/public/admin", timeout=0.3)
    assert b.actor.stats[DropReason.UNAUTHORIZED] == 1


async def test_forged_signature_is_dropped(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    handler = Recorder(b)
    b.actor.add_behavior("/dms/node/peers/list", handler)
    sent = await a.actor.send(a.actor.message(b.actor.handle, "/dms/node/peers/list", {"n": 1}))
    await wait_for(lambda: len(handler.calls) == 1)
    forged = dataclasses.replace(sent, message=b'{"n":2}', nonce=sent.nonce + 1)
    await a.net.send(b.peer_id, "root", forged.to_json(), timeout=1)
    unsigned = dataclasses.replace(sent, signature=b"")
    await a.net.send(b.peer_id, "root", unsigned.to_json(), timeout=1)
    await wait_for(lambda: b.actor.stats.get(DropReason.BAD_SIGNATURE) == 2)
    assert len(handler.calls) == 1


async def test_expired_envelope_is_dropped(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    handler = Recorder(b)
    b.actor.add_behavior("/dms/node/peers/list", handler)
    env = a.actor.message(b.actor.handle, "/dms/node/peers/list")
    env = dataclasses.replace(env, options=EnvelopeOptions(time.time_ns() - 10**9))
    await a.net.send(b.peer_id, "root", a.actor.security.sign(env).to_json(), timeout=1)
    await wait_for(lambda: b.actor.stats.get(DropReason.EXPIRED) == 1)
    assert handler.calls == []


async def test_replayed_reply_is_dropped(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    b.actor.add_behavior("/dms/node/peers/list", Recorder(b))
    reply = await a.actor.invoke(b.actor.handle, "/dms/node/peers/list", timeout=5)
    assert a.actor.stats.get("handled") == 1
    await b.net.send(a.peer_id, "root", reply.to_json(), timeout=1)  # the very same bytes
    await wait_for(lambda: a.actor.stats.get(DropReason.UNKNOWN_BEHAVIOR) == 1)
    assert a.actor.stats.get("handled") == 1


async def test_replayed_request_is_refused_after_expiry(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    handler = Recorder(b)
    b.actor.add_behavior("/dms/node/peers/list", handler)
    sent = await a.actor.send(a.actor.message(b.actor.handle, "/dms/node/peers/list", timeout=0.2))
    await wait_for(lambda: len(handler.calls) == 1)
    await trio.sleep(0.3)
    await a.net.send(b.peer_id, "root", sent.to_json(), timeout=1)
    await wait_for(lambda: b.actor.stats.get(DropReason.EXPIRED) == 1)
    assert len(handler.calls) == 1


async def test_spoofed_sender_host_and_wrong_recipient(nursery: trio.Nursery) -> None:
    a, b, c = await make_nodes(nursery, MemoryFabric(), User(), 3)
    handler = Recorder(b)
    b.actor.add_behavior("/dms/node/peers/list", handler)
    # a claims to live on c's host: validly signed, but delivered by a
    spoofed_from = dataclasses.replace(
        a.actor.handle, address=Address(c.peer_id, a.actor.handle.address.inbox)
    )
    env = dataclasses.replace(
        a.actor.message(b.actor.handle, "/dms/node/peers/list"), from_=spoofed_from
    )
    env = a.actor.security.provide(env, ["/dms/node/peers/list"])
    await a.net.send(b.peer_id, "root", env.to_json(), timeout=1)
    await wait_for(lambda: b.actor.stats.get(DropReason.SPOOFED) == 1)
    # an envelope for c's actor pushed into b's inbox
    env = a.actor.security.provide(
        a.actor.message(c.actor.handle, "/dms/node/peers/list"), ["/dms/node/peers/list"]
    )
    await a.net.send(b.peer_id, "root", env.to_json(), timeout=1)
    await wait_for(lambda: b.actor.stats.get(DropReason.WRONG_RECIPIENT) == 1)
    await a.net.send(b.peer_id, "root", b"not json", timeout=1)
    await wait_for(lambda: b.actor.stats.get(DropReason.MALFORMED) == 1)
    assert handler.calls == []


async def test_message_to_the_empty_handle_is_refused(nursery: trio.Nursery) -> None:
    (a,) = await make_nodes(nursery, MemoryFabric(), User(), 1)
    from dms.actor import SendError
    from dms.errors import CapabilityError

    with pytest.raises((SendError, CapabilityError)):
        await a.actor.send(a.actor.message(Handle(), "/dms/node/x"))
