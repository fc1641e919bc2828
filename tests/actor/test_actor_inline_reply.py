"""An invoke's reply continuation runs in the delivering task (issue 16: a task and a cancel
scope less per invoke), and stays one-shot, counted and failure-proof like any behaviour."""

from __future__ import annotations

import trio
from tests.actor.actor_sim import User, make_nodes, wait_for

from dms.actor import Envelope
from dms.network import MemoryFabric


async def test_inline_behaviour_has_run_when_dispatch_returns(nursery: trio.Nursery) -> None:
    (a,) = await make_nodes(nursery, MemoryFabric(), User(), 1)
    seen: list[str] = []

    async def record(env: Envelope) -> None:
        seen.append(env.behavior)

    a.actor.behaviors.add("/inline", record, inline=True)
    a.actor.behaviors.add("/tasked", record)
    me = a.actor.handle
    inline = a.actor.security.sign(a.actor.message(me, "/inline"))
    tasked = a.actor.security.sign(a.actor.message(me, "/tasked"))
    assert await a.actor.dispatcher.dispatch(inline)
    assert seen == ["/inline"]  # already ran, in this task
    assert await a.actor.dispatcher.dispatch(tasked)
    assert seen == ["/inline"]  # started in a task of its own, not run yet
    await wait_for(lambda: seen == ["/inline", "/tasked"])
    assert a.actor.stats.get("handled") == 2


async def test_failing_inline_behaviour_is_counted_not_raised(nursery: trio.Nursery) -> None:
    (a,) = await make_nodes(nursery, MemoryFabric(), User(), 1)

    async def broken(env: Envelope) -> None:
        raise RuntimeError("boom")

    a.actor.behaviors.add("/public/broken", broken, inline=True)
    env = a.actor.security.sign(a.actor.message(a.actor.handle, "/public/broken"))
    assert await a.actor.dispatcher.dispatch(env)
    assert a.actor.stats.get("handler_failed") == 1
    assert a.actor.limiter.in_flight()["public"] == 0  # its slot was given back


async def test_invoke_reply_is_inline_and_leaves_nothing_registered(
    nursery: trio.Nursery,
) -> None:
    a, b = await make_nodes(nursery, MemoryFabric(), User(), 2)

    async def echo(env: Envelope) -> None:
        await b.actor.reply(env, env.decode_payload())

    b.actor.add_behavior("/public/echo", echo)
    before = len(a.actor.behaviors)
    replies = []
    async with trio.open_nursery() as calls:
        for i in range(20):

            async def call(i: int = i) -> None:
                reply = await a.actor.invoke(b.actor.handle, "/public/echo", {"i": i}, timeout=5)
                replies.append(reply.decode_payload()["i"])

            calls.start_soon(call)
    assert sorted(replies) == list(range(20))
    assert len(a.actor.behaviors) == before  # every continuation fired once and was removed
    assert a.actor.stats.get("handled") == 20
