"""The node actor: the DMS's root actor (inbox ``root``) and the services its behaviours use.

A node's actor key *is* the DMS key, so its actor ID, its DID and its libp2p peer ID are the same
key, as in the Go DMS. Behaviour groups live in their own modules and are installed here; the
node also runs the hello exchange (:mod:`._hello`) next to its actor.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from dms.actor import ROOT_INBOX, Actor, Handle, SecurityContext
from dms.config import Config, GeneralConfig
from dms.executor import ExecutorAvailability, ExecutorRegistry
from dms.network import Network
from dms.node._behaviors import install_behaviors
from dms.node._deployment_control import Deployments
from dms.node._hello import (
    HELLO_DELAY,
    PEER_POLL_INTERVAL,
    ROOT_PROTOCOL,
    HelloExchange,
    root_handle,
)
from dms.node._subnet import install_subnet
from dms.resources import Location, ResourceManager, Resources, detect_machine
from dms.subnet import subnet_capability

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from dms.jobs import AllocationManager
    from dms.node._deployment import DeploymentBehaviors
else:
    from trio import TaskStatus


class Node:
    """The root actor of a DMS and what its behaviours need (config, network, start time).

    ``hello_delay`` (Go: 10–20 s) and ``peer_poll_interval`` tune the hello exchange; tests
    shorten them so the exchange happens in a fraction of a second. ``resources`` is the
    node's resource manager (onboarding, free/committed/allocated resources).
    """

    def __init__(
        self,
        network: Network,
        security: SecurityContext,
        config: Config,
        *,
        hello_delay: tuple[float, float] = HELLO_DELAY,
        peer_poll_interval: float = PEER_POLL_INTERVAL,
        resources: ResourceManager | None = None,
        executors: ExecutorRegistry | None = None,
    ) -> None:
        self.network = network
        #: The execution back-ends this node may run allocations on (probed on first use).
        self.executors = executors if executors is not None else ExecutorRegistry()
        #: Onboarding and resource books (None: the resource behaviours answer with an error).
        self.resources = resources
        self._machine: Resources | None = None  # detected on first use when there is no manager
        self.security = security
        self.config = config
        self.actor = Actor(network, security, ROOT_INBOX)
        self.started_at = 0.0
        #: Gossip topics the behaviours listen on (subscribed when the node runs).
        self.topics: set[str] = set()
        #: This node's allocations and their executors (None: the node cannot deploy; the
        #: daemon sets it, as does any test that deploys).
        self.allocations: AllocationManager | None = None
        #: The deployment behaviour group (set when the behaviours are installed).
        self.deployment: DeploymentBehaviors | None = None
        #: The orchestrators of the deployments this node's users asked for; the daemon gives
        #: it a store (``deployments.repo``) so deployments outlive the process.
        self.deployments = Deployments(self, None)
        self.hello = HelloExchange(
            self.actor, network, delay=hello_delay, poll_interval=peer_poll_interval
        )
        install_behaviors(self)
        #: The subnet behaviours; the daemon gives them a manager (``subnets.manager``) and
        #: the allocation manager its hooks, when this node can run subnets.
        self.subnets = install_subnet(self)

    @property
    def location(self) -> Location:
        """Where this node says it is (``general.host_*``), as it reports and bids it."""
        return location_from_config(self.config.general)

    async def machine(self) -> Resources:
        """The machine's resources, detected once and kept.

        The resource manager already holds what the daemon detected at start-up; re-running
        detection (GPU tool subprocesses included) on every /public/status would be waste.
        """
        if self.resources is not None:
            return self.resources.machine
        if self._machine is None:
            self._machine = await trio.to_thread.run_sync(
                detect_machine, self.config.general.work_dir
            )
        return self._machine

    async def executor_availability(self) -> list[ExecutorAvailability]:
        """Which executors run here and why the others do not.

        Probing talks to engines (a Docker ping) and imports their SDKs, so it runs in a thread
        and on the first question rather than at start-up; the registry keeps the answers.
        """
        return await trio.to_thread.run_sync(self.executors.probe_all)

    async def executor_refusal(self, name: str) -> str | None:
        """Why this node cannot run an allocation for executor ``name``; ``None`` if it can.

        A node only bids for allocations whose executor it has; the reason is what it records.
        """
        for found in await self.executor_availability():
            if found.name == name:
                return None if found.available else found.reason
        known = ", ".join(f.name for f in await self.executor_availability())
        return f"unknown executor {name!r} (this node has: {known})"

    def subnet_refusal(self) -> str | None:
        """Why this node cannot put allocations on a subnet; ``None`` if it can."""
        if self.subnets.manager is None:
            return "this node runs no subnets"
        capability = subnet_capability()
        return None if capability.available else f"no subnets here: {capability.reason}"

    def provider_candidates(self) -> list[str]:
        """Connected peers that may be DMS providers (they speak the root actor protocol, or
        their protocols are unknown), the ones we exchanged hello with first: whom an
        orchestrator asks for bids directly."""
        found = [
            p.peer_id
            for p in self.network.peers()
            if p.peer_id != self.network.host_id
            and (not p.protocols or ROOT_PROTOCOL in p.protocols)
        ]
        return sorted(found, key=lambda peer: not self.hello.exchanged(peer))

    @staticmethod
    def handle_of(peer_id: str) -> Handle:
        """The handle of ``peer_id``'s root actor (derived from the key in its peer ID)."""
        return root_handle(peer_id)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node actor and the hello exchange until cancelled."""
        self.started_at = time.time()
        for topic in sorted(self.topics):
            await self.actor.subscribe(topic)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.actor.run)
            await nursery.start(self.hello.run)
            await nursery.start(self.deployments.run)
            nursery.start_soon(self.subnets.run)
            task_status.started()


def location_from_config(general: GeneralConfig) -> Location:
    """The node's :class:`Location` from ``general.host_continent`` ... ``host_isp``.

    Surrounding blanks are dropped: a location is compared field by field, and a stray space
    typed into the config would make it match nothing.
    """
    return Location(
        continent=general.host_continent.strip(),
        country=general.host_country.strip(),
        city=general.host_city.strip(),
        asn=general.host_asn,
        isp=general.host_isp.strip(),
    )
