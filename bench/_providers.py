"""Many onboarded DMS providers in one process, for the deployment benchmarks (not a benchmark).

A real provider is a ``nunet run`` daemon: about 100 MB and a second of CPU to start, so 100 of
them do not fit on a small machine. Each :class:`Provider` here is wired as
:class:`dms.daemon.Daemon` wires one (minus the REST API, which providers do not need to bid or
run allocations): its own Ed25519 key and ``Libp2pNetwork`` host (so its own peer ID and
connections), a :class:`~dms.actor.SecurityContext` set up as ``dms.devnet.create`` sets up a
node's ``dms`` context (the user is a root; the user grants ``/public``, ``/broadcast`` and
``/dms/deployment`` on ``/nunet``), a :class:`~dms.node.Node`, a :class:`~dms.resources.
ResourceManager` and :class:`~dms.jobs.AllocationManager` on its own SQLite file, onboarded
through the resource manager directly, as ``/dms/node/onboarding/onboard`` would.

Only the ``null`` executor is offered: the benchmark measures scheduling, not containers; a
``docker`` entry that always says "disabled" keeps 100 providers from each opening a Docker
client (the allocation manager opens Docker at start to reclaim leftovers).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from bench_common import node_context

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus
from dms.actor import SecurityContext
from dms.config import Config
from dms.crypto import Ed25519PrivateKey
from dms.db import DEFAULT_FILE_NAME, Database
from dms.devnet import default_onboarding
from dms.executor import BUILTIN_EXECUTORS, Executor, ExecutorRegistry, ExecutorSettings
from dms.jobs import AllocationManager
from dms.network import Libp2pNetwork
from dms.node import Node
from dms.resources import CPU, RAM, Disk, ResourceManager, Resources, parse_size
from dms.ucan import CapabilityContext

#: Providers greet their peers this long after connecting: out of the measurement's way.
QUIET_HELLO = (3600.0, 3600.0)


class _DisabledDocker(Executor):
    """A ``docker`` entry whose probe always fails, so no provider opens a Docker client."""

    name = "docker"

    @classmethod
    def probe(cls) -> str | None:
        return "docker: disabled for in-process benchmark providers"


def null_only_registry() -> ExecutorRegistry:
    """Executors of a benchmark provider: ``null`` only (``docker`` present but unavailable)."""
    registry = ExecutorRegistry({"null": BUILTIN_EXECUTORS["null"]})
    registry.register(_DisabledDocker)  # type: ignore[type-abstract]
    return registry


def onboard_offer(machine: Resources) -> Resources:
    """What each provider offers: what a devnet provider offers (1 core, ~12 % RAM, 2 GiB)."""
    cores, ram, disk = default_onboarding()
    return Resources(
        cpu=CPU(cores=cores),
        ram=RAM(size=parse_size(ram)),
        disk=Disk(size=parse_size(disk)),
    )


class Provider:
    """One onboarded provider: host, node actor, resource books and allocations of its own."""

    def __init__(
        self,
        user: CapabilityContext,
        work_dir: Path,
        machine: Resources,
        bootstrap: Sequence[str],
        stack: ExitStack,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.key = Ed25519PrivateKey.generate()
        self.network = Libp2pNetwork(self.key, ["/ip4/127.0.0.1/tcp/0"], list(bootstrap))
        config = Config.model_validate({"general": {"work_dir": str(work_dir)}})
        security = SecurityContext(self.key, node_context(user, self.key))
        self.store = stack.enter_context(Database.open(work_dir / DEFAULT_FILE_NAME))
        self.resources = ResourceManager(self.store, machine)
        self.node = Node(
            self.network,
            security,
            config,
            hello_delay=QUIET_HELLO,
            resources=self.resources,
            executors=null_only_registry(),
        )
        settings = ExecutorSettings(
            executor_id="bench-" + self.network.host_id[-12:], work_dir=work_dir
        )
        self.allocations = AllocationManager(
            self.node.actor, self.resources, self.store, self.node.executors, settings
        )
        self.node.allocations = self.allocations
        self.resources.onboard(onboard_offer(machine))

    @property
    def peer_id(self) -> str:
        return self.network.host_id

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run host, node and allocation manager until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.network.run)
            await nursery.start(self.node.run)
            await nursery.start(self.allocations.run)
            task_status.started()


class ProviderSet:
    """``count`` providers under ``base`` (one work dir each); their stores close on exit."""

    def __init__(
        self,
        count: int,
        user: CapabilityContext,
        base: Path,
        bootstrap: Sequence[str],
        machine: Resources,
    ) -> None:
        self._stack = ExitStack()
        try:
            self.providers = [
                Provider(user, base / f"p{i:03d}", machine, bootstrap, self._stack)
                for i in range(count)
            ]
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> ProviderSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every provider (each dials the bootstrap peers), then run until cancelled."""
        async with trio.open_nursery() as nursery:
            for provider in self.providers:
                await nursery.start(provider.run)
            task_status.started()
