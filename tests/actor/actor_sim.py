"""Simulated DMS nodes for the actor tests: real keys, real capability contexts, memory network.

Trust is set up the way a user would: one user key is a root on every node, and the user grants
each node a delegate token (a provide anchor) for the capabilities it may present.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from dms.actor import Actor, SecurityContext
from dms.crypto import Ed25519PrivateKey, PrivateKey, peer_id_from_public_key
from dms.did import DID, KeyProvider
from dms.network import MemoryFabric, MemoryNetwork
from dms.ucan import CapabilityContext

HOUR_NS = 3600 * 10**9


class User:
    """The person owning the nodes: a DID that nodes trust as root and that grants tokens."""

    def __init__(self) -> None:
        self.ctx = CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()))

    @property
    def did(self) -> DID:
        return self.ctx.did

    def grant(
        self,
        node: Node,
        caps: Sequence[str] = ("/dms", "/public", "/broadcast"),
        topics: Sequence[str] = ("/nunet",),
    ) -> None:
        """``nunet cap grant`` to the node's context, anchored there as ``provide``."""
        tokens = self.ctx.grant(
            "delegate",
            node.ctx.did,
            caps=list(caps),
            topics=list(topics),
            expire_ns=self.ctx.clock() + HOUR_NS,
        )
        node.ctx.add_provide(tokens.tokens)


class Node:
    """One host: key (= peer ID = context DID), capability context, network, root actor."""

    def __init__(self, fabric: MemoryFabric, key: PrivateKey | None = None) -> None:
        self.key = key or Ed25519PrivateKey.generate()
        self.peer_id = str(peer_id_from_public_key(self.key.public_key))
        self.net = MemoryNetwork(fabric, self.peer_id)
        self.ctx = CapabilityContext(KeyProvider(self.key))
        self.actor = Actor(self.net, SecurityContext(self.key, self.ctx), "root")

    def trust(self, user: User) -> None:
        """``nunet cap anchor --root <user DID>``."""
        self.ctx.add_roots([user.did])

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.net.run)
        await nursery.start(self.actor.run)


async def make_nodes(
    nursery: trio.Nursery, fabric: MemoryFabric, user: User, n: int, *, grant: bool = True
) -> list[Node]:
    """``n`` running nodes that trust ``user`` (and, by default, hold its grant)."""
    nodes = [Node(fabric) for _ in range(n)]
    for node in nodes:
        node.trust(user)
        if grant:
            user.grant(node)
        await node.start(nursery)
    return nodes


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until it is true (fail after ``timeout`` seconds)."""
    assert callable(predicate)
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
