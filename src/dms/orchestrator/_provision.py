"""Provisioning an ensemble's subnet (spec §8 "Provisioning"; Go's ``Provisioner``).

After the commit and before the allocations start, for the allocations just placed:

1. plan: a /24 in 10/8 (first time only), an address per member allocation (its own, kept
   when it moves), one for this DMS when the ensemble says ``subnet: {join: true}``; the
   manifest's ``priv_addr`` is filled;
2. ``/dms/ensemble/<id>/node/subnet/create`` on each provider newly in the subnet, with the
   whole routing table; providers already in it get the new routes by ``accept-peers`` on
   their allocations;
3. ``add-peer`` to each new allocation (its address), ``dns/add-records`` (every record) to
   each new allocation;
4. ``map-port`` for each published port of the new allocations;
5. ``join`` on this DMS's node, when asked.

The /24 avoids the networks this host routes (it is the one that joins; providers keep their
allocations' interfaces in the allocations' own namespaces, so any /24 suits them). Failures
raise :class:`DMSError` with the provider's reason; the caller fails or retries the deployment.
:meth:`SubnetProvisioner.destroy` undoes the subnet on every member at the end.

Timeouts: Go allows 2 minutes per step; a step here is a few local operations on the
provider, so :data:`STEP_TIMEOUT` is shorter and a dead provider fails the step sooner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import trio

from dms.actor import Actor, Handle
from dms.errors import DMSError
from dms.jobs import Ensemble, OkResponse
from dms.orchestrator._manifest import EnsembleManifest
from dms.subnet import (
    ORCHESTRATOR_NAME,
    SUBNET_ACCEPT_PEERS,
    SUBNET_ADD_PEER,
    SUBNET_CREATE,
    SUBNET_DESTROY,
    SUBNET_DNS_ADD,
    SUBNET_JOIN,
    SUBNET_MAP_PORT,
    SubnetAddPeer,
    SubnetCreate,
    SubnetDestroy,
    SubnetDNSAdd,
    SubnetJoin,
    SubnetPeers,
    SubnetPlan,
    SubnetPortMap,
    ensemble_behavior,
)

log = logging.getLogger(__name__)

#: Seconds one subnet step may take on one provider.
STEP_TIMEOUT = 30.0
#: Seconds a subnet destroy may take (Go's ``SubnetDestroyTimeout``).
DESTROY_TIMEOUT = 10.0


class SubnetProvisioner:
    """The subnet of one deployment, as its orchestrator drives it."""

    def __init__(
        self,
        actor: Actor,
        ensemble_id: str,
        ensemble: Ensemble,
        manifest: EnsembleManifest,
        *,
        handle_of: Callable[[str], Handle],
        progress: Callable[[str], None],
    ) -> None:
        self.actor = actor
        self.id = ensemble_id
        self.ensemble = ensemble
        self.manifest = manifest
        self._handle_of = handle_of
        self._progress = progress
        self.plan: SubnetPlan | None = None
        #: Providers (peer IDs) that have the subnet.
        self.members: set[str] = set()
        self.joined = False

    @property
    def wanted(self) -> bool:
        return self.ensemble.needs_subnet

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict() if self.plan else None,
            "members": sorted(self.members),
            "joined": self.joined,
        }

    def load(self, data: Mapping[str, Any] | None) -> None:
        if not data:
            return
        plan = data.get("plan")
        self.plan = SubnetPlan.from_dict(plan) if isinstance(plan, Mapping) else None
        self.members = {str(m) for m in data.get("members") or []}
        self.joined = bool(data.get("joined"))

    # -- provisioning --------------------------------------------------------------------------

    async def provision(self, names: list[str]) -> None:
        """Put allocations ``names`` (just placed, not started) on the subnet."""
        if not self.wanted:
            return
        wanted = set(self.ensemble.subnet_members())
        members = [n for n in names if n in wanted]
        if self.plan is None:
            self.plan = SubnetPlan.new()
            self.members = set()
        plan = self.plan
        self._assign(plan, members)
        await self._create(plan, members)
        await self._configure(plan, members)
        if self.ensemble.subnet_join:
            await self._join(plan)  # again after a move: the new routes
        self._progress(
            f"subnet {plan.cidr}: "
            + ", ".join(f"{n} {plan.index[n]}" for n in members if n in plan.index)
        )

    def _assign(self, plan: SubnetPlan, members: list[str]) -> None:
        for name in members:
            alloc = self.manifest.allocations[name]
            peer = self.manifest.nodes[alloc.node_id].peer
            dns_name = self.ensemble.allocations[name].dns_name or name
            alloc.priv_addr = plan.add(name, peer, dns_name)
        if self.ensemble.subnet_join and ORCHESTRATOR_NAME not in plan.index:
            plan.add(ORCHESTRATOR_NAME, self.actor.network.host_id)

    def _peer_of(self, name: str) -> str:
        return self.manifest.nodes[self.manifest.allocations[name].node_id].peer

    async def _create(self, plan: SubnetPlan, members: list[str]) -> None:
        """Create on the providers new to the subnet; tell the others the new routes."""
        request = SubnetCreate(
            self.id, dict(plan.routing_table), cidr=str(plan.cidr), gateway_ip=plan.gateway_ip
        )
        behavior = ensemble_behavior(self.id, SUBNET_CREATE)
        new_peers = sorted({self._peer_of(n) for n in members} - self.members)
        errors = await self._fan_out(
            {f"provider {p[-8:]}": (self._handle_of(p), behavior, request) for p in new_peers}
        )
        self.members |= {p for p in new_peers if f"provider {p[-8:]}" not in errors}
        _raise_if(errors, "subnet not created")
        # Routes of the newly placed allocations, for the allocations already running.
        routes = SubnetPeers(
            self.id, {plan.index[n]: self._peer_of(n) for n in members if n in plan.index}
        )
        others = [
            n
            for n in self.ensemble.subnet_members()
            if n not in members and not self.manifest.allocations[n].handle.empty()
        ]
        await self._each(others, SUBNET_ACCEPT_PEERS, lambda n: routes, "routes")

    async def _configure(self, plan: SubnetPlan, members: list[str]) -> None:
        records = SubnetDNSAdd(self.id, dict(plan.dns_records))
        await self._each(
            members,
            SUBNET_ADD_PEER,
            lambda n: SubnetAddPeer(self.id, self._peer_of(n), plan.index[n]),
            "address",
        )
        await self._each(members, SUBNET_DNS_ADD, lambda n: records, "dns")
        mappings = {
            f"{name} port {public}": (
                self.manifest.allocations[name].handle,
                SUBNET_MAP_PORT,
                SubnetPortMap(self.id, "TCP", "0.0.0.0", public, plan.index[name], private),
            )
            for name in members
            for public, private in sorted(self.manifest.allocations[name].ports.items())
        }
        _raise_if(await self._fan_out(mappings), "subnet port mapping failed")

    async def _each(
        self, names: list[str], behavior: str, payload: Callable[[str], Any], what: str
    ) -> None:
        """Invoke ``behavior`` on each allocation of ``names`` in parallel; raise on refusals."""
        calls = {n: (self.manifest.allocations[n].handle, behavior, payload(n)) for n in names}
        _raise_if(await self._fan_out(calls), f"subnet {what} step failed")

    async def _fan_out(
        self, calls: Mapping[str, tuple[Handle, str, Any]], timeout: float = STEP_TIMEOUT
    ) -> dict[str, str]:
        """Invoke every ``label: (handle, behavior, payload)`` in parallel; ``{label: why}`` of
        those that failed or refused."""
        errors: dict[str, str] = {}

        async def one(label: str, handle: Handle, behavior: str, payload: Any) -> None:
            why = await self._ask(handle, behavior, payload, timeout)
            if why is not None:
                errors[label] = why

        async with trio.open_nursery() as nursery:
            for label, (handle, behavior, payload) in calls.items():
                nursery.start_soon(one, label, handle, behavior, payload)
        return errors

    async def rejoin(self) -> None:
        """After a restart of this DMS: its joined device went with the old process; join again
        (best effort: the deployment runs on without the host's own address)."""
        if not (self.joined and self.plan is not None):
            return
        try:
            await self._join(self.plan)
        except DMSError as exc:
            self._progress(f"could not join subnet {self.plan.cidr} again: {exc}")

    async def _join(self, plan: SubnetPlan) -> None:
        node = self.actor.supervisor
        if node is None:
            raise DMSError("subnet join: this orchestrator has no node to join with")
        request = SubnetJoin(
            self.id,
            self.actor.network.host_id,
            plan.index[ORCHESTRATOR_NAME],
            dict(plan.dns_records),
            dict(plan.routing_table),
        )
        why = await self._ask(node, ensemble_behavior(self.id, SUBNET_JOIN), request)
        if why is not None:
            raise DMSError(f"subnet join: {why}")
        if not self.joined:
            self._progress(f"this DMS joined subnet {plan.cidr} as {plan.index[ORCHESTRATOR_NAME]}")
        self.joined = True

    async def _ask(
        self, handle: Handle, behavior: str, payload: Any, timeout: float = STEP_TIMEOUT
    ) -> str | None:
        """Invoke and read Go's ``{OK, Error}``; None, or why not."""
        try:
            reply = await self.actor.invoke(handle, behavior, payload, timeout=timeout)
            answer = OkResponse.from_json(reply.decode_payload())
        except DMSError as exc:
            return str(exc)
        return None if answer.ok else (answer.error or "refused")

    # -- the end -------------------------------------------------------------------------------

    async def destroy(self) -> None:
        """Remove the subnet from every provider that has it, and from this DMS (best effort:
        providers also remove it with their last allocation of the ensemble)."""
        targets = [self._handle_of(peer) for peer in sorted(self.members)]
        if self.joined and self.actor.supervisor is not None:
            targets.append(self.actor.supervisor)
        behavior = ensemble_behavior(self.id, SUBNET_DESTROY)
        calls = {h.address.host[-8:]: (h, behavior, SubnetDestroy(self.id)) for h in targets}
        for host, why in (await self._fan_out(calls, DESTROY_TIMEOUT)).items():
            log.info("subnet destroy on %s: %s", host, why)
        self.members.clear()
        self.joined = False


def _raise_if(errors: Mapping[str, str], what: str) -> None:
    if errors:
        raise DMSError(f"{what}: " + "; ".join(f"{k}: {e}" for k, e in sorted(errors.items())))
