"""Simulated DMS nodes (:class:`dms.node.Node`) on a memory network with real keys and trust.

Trust is set up as a user would: the user's DID is a root of every node's capability context,
and the user grants each node a delegate token (``nunet cap grant``) for the capabilities it may
present. The hello exchange is sped up (``hello_delay``) so tests see it in a fraction of a second.

A node can be *equipped* (:meth:`SimNode.equip`) with what the daemon gives a real one to deploy:
a SQLite store, a resource manager with its port allocator, an allocation manager on the
node's executors (null and WASM run anywhere) and a deployment repository; then it can
orchestrate and, once onboarded, provide.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import trio
from tests.actor.actor_sim import User

from dms.actor import Actor, SecurityContext
from dms.config import Config
from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.db import Database, DeploymentRepo
from dms.did import KeyProvider
from dms.executor import ExecutorSettings
from dms.jobs import AllocationManager
from dms.network import MemoryFabric, MemoryNetwork
from dms.node import Node
from dms.resources import CPU, RAM, Disk, PortAllocator, ResourceManager, Resources, detect_machine
from dms.ucan import CapabilityContext

ALL_CAPS = ("/dms", "/public", "/broadcast")
FAST_HELLO = (0.02, 0.05)
#: The public port range of an equipped node (each node has its own store, so they may overlap).
SIM_PORTS = (41000, 41050)
GIB = 1024**3


class SimNode:
    """One host running a real :class:`Node`."""

    def __init__(
        self,
        fabric: MemoryFabric,
        work_dir: Path,
        *,
        hello_delay: tuple[float, float] = FAST_HELLO,
        general: dict[str, Any] | None = None,
    ) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.peer_id = str(peer_id_from_public_key(self.key.public_key))
        self.net = MemoryNetwork(fabric, self.peer_id)
        self.ctx = CapabilityContext(KeyProvider(self.key))
        self.work_dir = work_dir
        config = Config.model_validate({"general": {"work_dir": str(work_dir), **(general or {})}})
        self.node = Node(
            self.net,
            SecurityContext(self.key, self.ctx),
            config,
            hello_delay=hello_delay,
            peer_poll_interval=0.02,
        )
        self.address = fabric.address_of(self.peer_id)
        self.store: Database | None = None
        self.resources: ResourceManager | None = None
        self.manager: AllocationManager | None = None

    @property
    def actor(self) -> Actor:
        return self.node.actor

    def equip(self, stack: ExitStack, *, ports: tuple[int, int] = SIM_PORTS) -> None:
        """Wire what the daemon wires for deployments (see the module docstring); the store
        is closed by ``stack``. Call before :meth:`start`."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.store = store = stack.enter_context(Database.open(self.work_dir / "dms.sqlite3"))
        machine = detect_machine(self.work_dir, gpus=False)
        self.resources = ResourceManager(store, machine, ports=PortAllocator(store, *ports))
        self.node.resources = self.resources
        settings = ExecutorSettings(
            executor_id=f"dms-sim-{self.peer_id[-8:]}", work_dir=self.work_dir
        )
        self.manager = AllocationManager(
            self.node.actor, self.resources, store, self.node.executors, settings
        )
        self.node.allocations = self.manager
        self.node.deployments.repo = DeploymentRepo(store)

    def onboard(self, cores: float = 1.0, disk: int = GIB) -> Resources:
        """Onboard an equipped node (a fifth of the machine's RAM; blocking, before start)."""
        assert self.resources is not None, "equip() the node first"
        ram = RAM(size=int(self.resources.machine.ram.size * 0.2))
        wanted = Resources(cpu=CPU(cores=cores), ram=ram, disk=Disk(size=disk))
        return self.resources.onboard(wanted)

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.net.run)
        await nursery.start(self.node.run)
        if self.manager is not None:
            await nursery.start(self.manager.run)


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


async def make_deploy_nodes(
    nursery: trio.Nursery,
    fabric: MemoryFabric,
    user: User,
    work_dir: Path,
    stack: ExitStack,
    *,
    cores: Sequence[float | None],
    general: Sequence[dict[str, Any] | None] | None = None,
    caps: Sequence[str] = ALL_CAPS,
    hello_delay: tuple[float, float] = FAST_HELLO,
) -> list[SimNode]:
    """Equipped, running nodes trusting ``user``, each in its own work dir; node ``i`` is
    onboarded with ``cores[i]`` cores (None: not onboarded, e.g. an orchestrator)."""
    nodes: list[SimNode] = []
    for i, wanted in enumerate(cores):
        extra = general[i] if general is not None else None
        sim = SimNode(fabric, work_dir / f"node{i}", hello_delay=hello_delay, general=extra)
        sim.equip(stack)
        if wanted is not None:
            sim.onboard(wanted)
        sim.ctx.add_roots([user.did])
        user.grant(sim, caps=list(caps))  # type: ignore[arg-type]
        nodes.append(sim)
    for sim in nodes:
        await sim.start(nursery)
    return nodes
