"""Simulated DMS nodes (:class:`dms.node.Node`) on a memory network with real keys and trust.

Trust is set up as a user would: the user's DID is a root of every node's capability context,
and the user grants each node a delegate token (``nunet cap grant``) for the capabilities it may
present. The hello exchange is sped up (``hello_delay``) so tests see it in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio
from tests.actor.actor_sim import User

from dms.actor import Actor, SecurityContext
from dms.config import Config
from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.did import KeyProvider
from dms.network import MemoryFabric, MemoryNetwork
from dms.node import Node
from dms.ucan import CapabilityContext

ALL_CAPS = ("/dms", "/public", "/broadcast")
FAST_HELLO = (0.02, 0.05)


class SimNode:
    """One host running a real :class:`Node`."""

    def __init__(
        self,
        fabric: MemoryFabric,
        work_dir: Path,
        *,
        hello_delay: tuple[float, float] = FAST_HELLO,
    ) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.peer_id = str(peer_id_from_public_key(self.key.public_key))
        self.net = MemoryNetwork(fabric, self.peer_id)
        self.ctx = CapabilityContext(KeyProvider(self.key))
        config = Config.model_validate({"general": {"work_dir": str(work_dir)}})
        self.node = Node(
            self.net,
            SecurityContext(self.key, self.ctx),
            config,
            hello_delay=hello_delay,
            peer_poll_interval=0.02,
        )
        self.address = fabric.address_of(self.peer_id)

    @property
    def actor(self) -> Actor:
        return self.node.actor

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.net.run)
        await nursery.start(self.node.run)


async def make_sim_nodes(
    nursery: trio.Nursery,
    fabric: MemoryFabric,
    user: User,
    work_dir: Path,
    n: int,
    *,
    caps: Sequence[str] | None = ALL_CAPS,
    hello_delay: tuple[float, float] = FAST_HELLO,
) -> list[SimNode]:
    """``n`` running nodes trusting ``user``; each holds a grant for ``caps`` (None: no grant)."""
    nodes = [SimNode(fabric, work_dir, hello_delay=hello_delay) for _ in range(n)]
    for sim in nodes:
        sim.ctx.add_roots([user.did])
        if caps is not None:
            user.grant(sim, caps=list(caps))  # type: ignore[arg-type]
        await sim.start(nursery)
    return nodes
