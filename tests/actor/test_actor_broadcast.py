"""Broadcasts over the memory network's pubsub: capability checks, validation, replies."""

from __future__ import annotations

import dataclasses

import pytest
import trio
from tests.actor.actor_sim import Node, User, make_nodes, wait_for

from dms.actor import Actor, DropReason, Envelope, Handle, Handler
from dms.actor._dispatch import _VerifiedBroadcasts
from dms.network import MemoryFabric, Validation

TOPIC = "/nunet/hello"
HELLO = "/broadcast/hello"


def hello(node: Node, seen: list[str]) -> Handler:
    async def handler(env: Envelope) -> None:
        seen.append(node.peer_id)
        await node.actor.reply(env, {"DID": node.ctx.did.uri})

    return handler


async def _listen(nodes: list[Node], seen: list[str]) -> None:
    for node in nodes:
        node.actor.add_behavior(HELLO, hello(node, seen), topic=TOPIC)
        await node.actor.subscribe(TOPIC)


async def test_broadcast_reaches_everyone_else_and_replies_come_back(
    nursery: trio.Nursery,
) -> None:
    nodes = await make_nodes(nursery, MemoryFabric(), User(), 5)
    seen: list[str] = []
    await _listen(nodes, seen)
    origin = nodes[0]
    replies: list[Envelope] = []

    async def collect(env: Envelope) -> None:
        replies.append(env)

    origin.actor.add_behavior("/public/user/1", collect)
    sent = await origin.actor.publish(TOPIC, HELLO, timeout=5, reply_to="/public/user/1")
    assert sent.is_broadcast() and sent.to == Handle()
    await wait_for(lambda: len(replies) == 4)
    assert sorted(seen) == sorted(n.peer_id for n in nodes[1:])  # not delivered to itself
    assert {r.from_.address.host for r in replies} == {n.peer_id for n in nodes[1:]}
    assert {r.decode_payload()["DID"] for r in replies} == {n.ctx.did.uri for n in nodes[1:]}
    assert origin.actor.stats.get(DropReason.UNAUTHORIZED) is None


async def test_broadcast_without_capability_is_refused(nursery: trio.Nursery) -> None:
    user, fabric = User(), MemoryFabric()
    nodes = await make_nodes(nursery, fabric, user, 3)
    seen: list[str] = []
    await _listen(nodes, seen)
    outsider = Node(fabric)
    outsider.trust(user)
    user.grant(outsider, caps=["/dms"])  # no /broadcast
    await outsider.start(nursery)
    await outsider.actor.publish(TOPIC, HELLO, timeout=5)
    await wait_for(lambda: all(n.actor.stats.get(DropReason.UNAUTHORIZED) == 1 for n in nodes))
    assert seen == []


async def test_topic_validator(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    validate = b.actor.dispatcher.validator(TOPIC)
    good = a.actor.security.provide_broadcast(
        a.actor.message(Handle(), HELLO, topic=TOPIC), TOPIC, [HELLO]
    )
    assert validate(good.to_json(), a.peer_id) is Validation.ACCEPT
    assert validate(b"{not json", a.peer_id) is Validation.REJECT
    direct = a.actor.security.sign(a.actor.message(b.actor.handle, HELLO, topic=TOPIC))
    assert validate(direct.to_json(), a.peer_id) is Validation.REJECT
    other_topic = a.actor.security.sign(a.actor.message(Handle(), HELLO, topic="/nunet/other"))
    assert validate(other_topic.to_json(), a.peer_id) is Validation.REJECT
    forged = dataclasses.replace(good, message=b'"x"')
    assert validate(forged.to_json(), a.peer_id) is Validation.REJECT
    stale = a.actor.security.sign(a.actor.message(Handle(), HELLO, topic=TOPIC, timeout=-1))
    assert validate(stale.to_json(), a.peer_id) is Validation.IGNORE
    own = b.actor.security.sign(b.actor.message(Handle(), HELLO, topic=TOPIC))
    assert validate(own.to_json(), b.peer_id) is Validation.IGNORE
    stats = b.actor.stats
    assert stats[DropReason.MALFORMED] == 1
    assert stats[DropReason.NOT_BROADCAST] == 1
    assert stats[DropReason.TOPIC_MISMATCH] == 1
    assert stats[DropReason.BAD_SIGNATURE] == 1
    assert stats[DropReason.EXPIRED] == 1
    assert stats[DropReason.OWN_BROADCAST] == 1


async def test_broadcast_to_a_behaviour_on_another_topic_is_dropped(
    nursery: trio.Nursery,
) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    seen: list[str] = []
    b.actor.add_behavior(HELLO, hello(b, seen), topic="/nunet/status")
    await b.actor.subscribe(TOPIC)
    await a.actor.publish(TOPIC, HELLO, timeout=5)
    await wait_for(lambda: b.actor.stats.get(DropReason.TOPIC_MISMATCH) == 1)
    assert seen == []


async def test_subscription_made_before_run_applies_at_start(nursery: trio.Nursery) -> None:
    user, fabric = User(), MemoryFabric()
    (a,) = await make_nodes(nursery, fabric, user, 1)
    late = Node(fabric)
    late.trust(user)
    user.grant(late)
    seen: list[str] = []
    late.actor.add_behavior(HELLO, hello(late, seen), topic=TOPIC)
    await late.actor.subscribe(TOPIC)  # not running yet
    await late.start(nursery)
    await a.actor.publish(TOPIC, HELLO, timeout=5)
    await wait_for(lambda: seen == [late.peer_id])
    await late.actor.unsubscribe(TOPIC)
    await a.actor.publish(TOPIC, HELLO, timeout=5)
    await trio.sleep(0.1)
    assert seen == [late.peer_id]
    assert isinstance(late.actor, Actor)


def _signed_hello(node: Node, timeout: float = 5.0) -> Envelope:
    return node.actor.security.provide_broadcast(
        node.actor.message(Handle(), HELLO, topic=TOPIC, timeout=timeout), TOPIC, [HELLO]
    )


async def test_a_broadcast_signature_is_verified_once(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    seen: list[str] = []
    await _listen([b], seen)
    calls: list[str] = []
    real_verify = Envelope.verify

    def counting_verify(self: Envelope, now_ns: int | None = None) -> None:
        calls.append(self.behavior)
        real_verify(self, now_ns)

    monkeypatch.setattr(Envelope, "verify", counting_verify)
    await a.actor.publish(TOPIC, HELLO, timeout=5)
    await wait_for(lambda: seen == [b.peer_id])
    assert calls.count(HELLO) == 1  # by the validator; delivery reuses the verified envelope
    assert len(b.actor.dispatcher._verified) == 0  # taken on delivery


async def test_a_verified_broadcast_that_expires_before_delivery_is_dropped(
    nursery: trio.Nursery,
) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    seen: list[str] = []
    await _listen([b], seen)
    data = _signed_hello(a, timeout=0.2).to_json()
    assert b.actor.dispatcher.validator(TOPIC)(data, a.peer_id) is Validation.ACCEPT
    await trio.sleep(0.3)
    await b.actor.dispatcher.receive_broadcast(data, a.peer_id)
    assert b.actor.stats[DropReason.EXPIRED] == 1
    assert b.actor.stats.get(DropReason.BAD_SIGNATURE) is None
    assert seen == []


async def test_an_unvalidated_broadcast_takes_the_full_path(nursery: trio.Nursery) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)
    seen: list[str] = []
    await _listen([b], seen)
    dispatcher = b.actor.dispatcher
    forged = dataclasses.replace(_signed_hello(a), message=b'"x"').to_json()
    await dispatcher.receive_broadcast(forged, a.peer_id)
    assert b.actor.stats[DropReason.BAD_SIGNATURE] == 1
    await dispatcher.receive_broadcast(b"{not json", a.peer_id)
    assert b.actor.stats[DropReason.MALFORMED] == 1
    good = _signed_hello(a).to_json()
    await dispatcher.receive_broadcast(good, a.peer_id)  # not cached: parsed and verified
    await wait_for(lambda: seen == [b.peer_id])


def test_verified_broadcasts_are_bounded() -> None:
    env = Envelope()
    cache = _VerifiedBroadcasts(max_entries=3, max_bytes=10)
    for i in range(5):
        cache.put(b"m%d" % i, env)
    assert len(cache) == 3 and cache.take(b"m0") is None and cache.take(b"m1") is None
    assert cache.take(b"m4") is env and cache.take(b"m4") is None  # popped on use
    cache.put(b"x" * 8, env)  # 2 + 2 + 8 > 10 bytes: the oldest goes
    assert len(cache) == 2 and cache.take(b"m2") is None
    cache.put(b"y" * 11, env)  # larger than the whole budget: never cached
    assert cache.take(b"y" * 11) is None
    assert cache.take(b"m3") is env and cache.take(b"x" * 8) is env and len(cache) == 0
