"""Component test: 50 actors on 50 memory hosts exchange 10,000 invocations, none lost.

Every invocation is a full round trip with real work on both sides: capability tokens
(chained from the user's grant, plus the reply's delegate token), Ed25519 signatures over Go
JSON, verification, capability checks and the one-shot reply continuation.
"""

from __future__ import annotations

import random
import time

import pytest
import trio
from tests.actor.actor_sim import Node, User, make_nodes

from dms.actor import Envelope, Handler
from dms.network import MemoryFabric

ACTORS = 50
INVOCATIONS = 10_000
IN_FLIGHT_PER_ACTOR = 25


@pytest.mark.slow
async def test_fifty_actors_ten_thousand_invocations(nursery: trio.Nursery) -> None:
    nodes = await make_nodes(nursery, MemoryFabric(), User(), ACTORS)
    served = [0] * ACTORS

    def serve(i: int, node: Node) -> Handler:
        async def handler(env: Envelope) -> None:
            served[i] += 1
            await node.actor.reply(env, {"n": env.decode_payload()["n"], "by": i})

        return handler

    for i, node in enumerate(nodes):
        node.actor.add_behavior("/dms/node/peers/ping", serve(i, node))

    rng = random.Random(7)
    plan = [[] for _ in range(ACTORS)]  # type: list[list[tuple[int, int]]]
    for n in range(INVOCATIONS):
        src = n % ACTORS
        dst = rng.choice([j for j in range(ACTORS) if j != src])
        plan[src].append((n, dst))
    replies: dict[int, int] = {}

    async def worker(src: int, jobs: list[tuple[int, int]]) -> None:
        node = nodes[src]
        for n, dst in jobs:
            reply = await node.actor.invoke(
                nodes[dst].actor.handle, "/dms/node/peers/ping", {"n": n}, timeout=120
            )
            payload = reply.decode_payload()
            assert payload == {"n": n, "by": dst}
            replies[n] = dst

    start = time.monotonic()
    with trio.fail_after(170):
        async with trio.open_nursery() as inner:
            for src in range(ACTORS):
                for k in range(IN_FLIGHT_PER_ACTOR):
                    inner.start_soon(worker, src, plan[src][k::IN_FLIGHT_PER_ACTOR])
    elapsed = time.monotonic() - start
    print(
        f"\n{INVOCATIONS} invocations across {ACTORS} actors in {elapsed:.1f}s "
        f"({INVOCATIONS / elapsed:.0f}/s)"
    )
    assert len(replies) == INVOCATIONS
    assert sum(served) == INVOCATIONS
    for node in nodes:
        stats = node.actor.stats
        assert {k for k in stats if k not in {"accepted", "handled"}} == set(), stats
