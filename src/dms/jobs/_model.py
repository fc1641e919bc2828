"""The ensemble as typed, immutable values (Go's ``jobtypes.EnsembleConfigV1`` and its parts).

Names follow the v1 YAML (spec §7). Units are already converted: sizes in bytes, clocks in
Hz, health-check intervals in seconds, RTT in milliseconds, bandwidth in bits per second. An
:class:`Ensemble` built by :func:`dms.jobs.load_ensemble` or :meth:`Ensemble.from_json` has
passed every check, so placement code can rely on it (each allocation on exactly one node,
references resolved, ``depends_on`` acyclic and within a node).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dms.errors import NotFound
from dms.executor import SpecConfig
from dms.resources import Location, Resources

#: ``type:`` of an allocation: long-running (restarted) or run to completion.
ALLOCATION_TYPES = ("service", "task")
#: ``allocations.*.failure_recovery`` (Go's ``AllocationFailureRecovery``); "" = not given.
ALLOCATION_FAILURE_RECOVERY = ("stay_down", "one_for_one", "one_for_all", "rest_for_one")
#: ``nodes.*.failure_recovery`` (Go's ``NodeFailureRecovery``); "" = not given.
NODE_FAILURE_RECOVERY = ("stay_down", "restart", "redeploy")
#: ``supervisor.strategy`` (Go's ``SupervisorStrategy``).
SUPERVISOR_STRATEGIES = ("OneForOne", "AllForOne", "RestForOne")
#: ``escalation_strategy`` (Go's ``EscalationStrategy``); "" = not given.
ESCALATION_STRATEGIES = ("redeploy", "teardown")
#: ``healthcheck.type``.
HEALTHCHECK_TYPES = ("command", "http")


@dataclass(frozen=True)
class HealthCheck:
    """``healthcheck:`` (Go's ``types.HealthCheckManifest``); ``response`` flattened."""

    type: str
    exec: tuple[str, ...] = ()
    endpoint: str = ""
    response_type: str = ""
    response_value: str = ""
    interval_s: float | None = None


#: Executors whose allocations have a network stack of their own, so can join a subnet.
NETWORKED_EXECUTORS = frozenset({"docker", "vm", "firecracker"})


@dataclass(frozen=True)
class AllocationConfig:
    """One allocation: what runs (executor + execution), with what, and how it is looked after."""

    name: str
    executor: str
    type: str = "service"
    resources: Resources = field(default_factory=Resources)
    execution: SpecConfig = field(default_factory=lambda: SpecConfig("null"))
    dns_name: str = ""
    keys: tuple[str, ...] = ()
    provision: tuple[str, ...] = ()
    healthcheck: HealthCheck | None = None
    failure_recovery: str = ""
    depends_on: tuple[str, ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.dns_name:
            object.__setattr__(self, "dns_name", self.name)


@dataclass(frozen=True)
class PortConfig:
    """Publish the allocation's ``private`` port on the node's ``public`` one (0 = any free)."""

    public: int
    private: int
    allocation: str


@dataclass(frozen=True)
class LocationConstraints:
    """Where a node may be placed: a non-empty ``accept`` wins, else ``reject`` excludes."""

    accept: tuple[Location, ...] = ()
    reject: tuple[Location, ...] = ()

    def allows(self, location: Location) -> bool:
        return location.satisfies(self.accept, self.reject)


@dataclass(frozen=True)
class NodeConfig:
    """A logical node: the allocations placed together on one provider, and its constraints."""

    name: str
    allocations: tuple[str, ...] = ()
    ports: tuple[PortConfig, ...] = ()
    location: LocationConstraints = field(default_factory=LocationConstraints)
    peer: str = ""
    redundancy: int = 0
    failure_recovery: str = ""


@dataclass(frozen=True)
class EdgeConstraint:
    """Between nodes ``s`` and ``t``: round trip at most ``rtt`` ms, at least ``bw`` bit/s
    (0 = no constraint)."""

    s: str
    t: str
    rtt: int = 0
    bw: int = 0


@dataclass(frozen=True)
class SupervisorConfig:
    """A supervision tree node (Go's ``SupervisorConfig``)."""

    strategy: str = ""
    allocations: tuple[str, ...] = ()
    children: tuple[SupervisorConfig, ...] = ()


@dataclass(frozen=True)
class Ensemble:
    """A checked v1 ensemble. Mapping order is the YAML order (it is what "stable" means in
    :meth:`start_order`)."""

    allocations: Mapping[str, AllocationConfig]
    nodes: Mapping[str, NodeConfig]
    edges: tuple[EdgeConstraint, ...] = ()
    supervisor: SupervisorConfig | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    scripts: Mapping[str, bytes] = field(default_factory=dict)
    subnet_join: bool = False
    exclude_peers: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    contracts: Mapping[str, Any] = field(default_factory=dict)
    escalation_strategy: str = ""

    # -- placement helpers -------------------------------------------------------------------

    def _node(self, node: str) -> NodeConfig:
        try:
            return self.nodes[node]
        except KeyError:
            raise NotFound(f"no node {node!r} in the ensemble") from None

    def node_resources(self, node: str) -> Resources:
        """What the node's allocations need together: what a provider must have free."""
        total = Resources()
        for name in self._node(node).allocations:
            total = total.add(self.allocations[name].resources)
        return total

    def node_executors(self, node: str) -> frozenset[str]:
        """The executors a provider needs to host ``node``."""
        return frozenset(self.allocations[a].executor for a in self._node(node).allocations)

    def subnet_members(self) -> list[str]:
        """The allocations that get an address on the ensemble's private network.

        Those whose executor gives them a network stack of their own (see
        :data:`NETWORKED_EXECUTORS`); WASM and null allocations have none.
        """
        return [n for n, a in self.allocations.items() if a.executor in NETWORKED_EXECUTORS]

    @property
    def needs_subnet(self) -> bool:
        """Whether deploying this ensemble builds a private network (issue 14).

        The Go DMS builds one for every ensemble. We build one when it can matter: when at least
        two allocations can talk to each other over it, or the deployer joins it
        (``subnet: {join: true}``). A single-container ensemble then needs no TUN device, so a
        provider without ``CAP_NET_ADMIN`` can still run it.
        """
        members = len(self.subnet_members())
        return members >= 2 or (self.subnet_join and members > 0)

    def node_of(self, allocation: str) -> str:
        """The node that holds ``allocation``."""
        for name, node in self.nodes.items():
            if allocation in node.allocations:
                return name
        raise NotFound(f"allocation {allocation!r} is on no node of the ensemble")

    def start_order(self, node: str | None = None) -> list[str]:
        """Allocations (of ``node``, or all) so that each comes after what it ``depends_on``.

        Stable: among allocations free to start, the one listed first (in the node's
        ``allocations``, or in ``allocations:``) goes first. Dependencies outside the selection
        are ignored: with ``node``, only the order within that node (the orchestrator orders
        across nodes with the whole-ensemble order).
        """
        names = list(self._node(node).allocations) if node is not None else list(self.allocations)
        return topological(
            names, {n: [d for d in self.allocations[n].depends_on if d in names] for n in names}
        )

    # -- Go JSON -----------------------------------------------------------------------------

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` of ``EnsembleConfig`` (``{"v1": {...}}``)."""
        from dms.jobs._json import marshal_ensemble

        return marshal_ensemble(self)

    @classmethod
    def from_json(cls, data: Any) -> Ensemble:
        """Lenient decode of Go's ``EnsembleConfig`` JSON (bytes, str or parsed), then every
        check :func:`dms.jobs.load_ensemble` makes. Raises :class:`EnsembleInvalid`."""
        from dms.jobs._json import unmarshal_ensemble

        return unmarshal_ensemble(data)


def topological(names: list[str], deps: Mapping[str, list[str]]) -> list[str]:
    """Kahn's order of ``names`` (stable by position); raises ``ValueError`` on a cycle."""
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: len(set(deps.get(n, ()))) for n in names}
    dependents: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for d in set(deps.get(n, ())):
            dependents[d].append(n)
    ready = [position[n] for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for nxt in dependents[name]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, position[nxt])
    if len(order) != len(names):
        raise ValueError("dependency cycle")
    return order
