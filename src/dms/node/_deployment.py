"""The provider side of deployments (Go ``behaviors_bid.go`` / ``behaviors_deployment.go``).

* ``/dms/deployment/request`` (direct, and broadcast on ``/nunet/deployment``; our own broadcasts
  are ignored): for each node of the ensemble, can this node host it? Onboarded, not excluded,
  location accepted, executors available, privileged Docker allowed, resources fit what is
  *free*, static ports free and enough dynamic ones. Like Go, a provider answers with one signed
  :class:`Bid`, for the first node it can host (in random order, so providers spread over the
  nodes), and stays silent otherwise. Ours also explain: when the request came directly or asks
  to ``Explain``, every node it cannot host gets a :class:`BidDecline` saying why (with
  ``Explain``, every node it can host gets a bid). Bids are remembered for 5 minutes, one record
  per ensemble (:class:`dms.db.BidRepo`), with the orchestrator that asked.
* ``/dms/deployment/commit``: only with a live bid for that node of the ensemble, and only from
  the orchestrator that asked for it; reserves the resources under a TTL and leases the public
  ports (released again if the commit fails). ``/dms/deployment/revert`` releases (idempotent);
  ``/dms/deployment/allocate`` turns commitments into allocation actors and answers their
  handles and the public ports leased for them (ours, so the orchestrator's manifest names a
  dynamic port's real number), undoing everything on any failure.

The orchestrator invokes the allocations afterwards; each allocation grants it its behaviours
(see :mod:`dms.jobs._allocation`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from dms import failpoints, gojson
from dms.actor import Envelope, Handle
from dms.db import BidRepo, ConflictError
from dms.errors import DMSError
from dms.jobs import (
    BID_REQUEST_TOPIC,
    DEPLOYMENT_ALLOCATE,
    DEPLOYMENT_COMMIT,
    DEPLOYMENT_REQUEST,
    DEPLOYMENT_REVERT,
    AllocateRequest,
    AllocateResponse,
    Allocation,
    AllocationManager,
    Bid,
    BidDecline,
    BidRequest,
    CommitRequest,
    EnsembleBidRequest,
    OkResponse,
    RevertRequest,
    allocation_id,
)
from dms.node._reply import send_reply
from dms.resources import Location, ResourceManager, Resources, shortfall

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)

#: How long a bid is remembered (Go's ``bidStateTimeout``), ns.
BID_TTL_NS = 5 * 60 * 10**9
#: How long committed resources wait for ``/dms/deployment/allocate`` before they lapse (s).
COMMIT_TTL = 60.0

_T = TypeVar("_T")


def describe(location: Location) -> str:
    """A location for people: ``EU/DE/Berlin`` (``an unknown location`` when unset)."""
    parts = [location.continent, location.country, location.city]
    if location.asn:
        parts.append(f"AS{location.asn}")
    if location.isp:
        parts.append(location.isp)
    text = "/".join(p for p in parts if p)
    return text or "an unknown location"


class DeploymentBehaviors:
    """The deployment behaviour group of one node."""

    def __init__(self, node: Node, *, commit_ttl: float = COMMIT_TTL) -> None:
        self.node = node
        self.commit_ttl = commit_ttl
        self._lock = trio.Lock()  # commit/revert/allocate change the books step by step
        self._rng = random.Random()

    # -- helpers ------------------------------------------------------------------------------

    def _parts(self) -> tuple[ResourceManager, AllocationManager] | None:
        node = self.node
        if node.resources is None or node.allocations is None:
            return None
        return node.resources, node.allocations

    @staticmethod
    async def _blocking(fn: Callable[[], _T]) -> _T:
        return await trio.to_thread.run_sync(fn)

    def _bids(self, manager: AllocationManager) -> BidRepo:
        return BidRepo(manager.store)

    async def _bid_state(self, manager: AllocationManager, ensemble: str) -> dict[str, Any] | None:
        record = await self._blocking(lambda: self._bids(manager).get(ensemble))
        return None if record is None else dict(json.loads(record.bid))

    async def _orchestrator_refusal(
        self, manager: AllocationManager, env: Envelope, ensemble: str, node_id: str | None
    ) -> str | None:
        """Why ``env``'s sender may not commit/allocate/revert for ``ensemble`` (None: may)."""
        state = await self._bid_state(manager, ensemble)
        if state is None:
            return f"no live bid for ensemble {ensemble}"
        asker = Handle.from_value(state.get("Orchestrator"))
        if asker.id != env.from_.id:
            return f"ensemble {ensemble} was not requested by this orchestrator"
        if node_id is not None and node_id not in state.get("Nodes", []):
            return f"no bid for node {node_id!r} of ensemble {ensemble}"
        return None

    # -- bid requests -------------------------------------------------------------------------

    async def on_request(self, env: Envelope) -> None:
        node = self.node
        broadcast = env.is_broadcast()
        if broadcast and env.from_.address.host == node.network.host_id:
            return  # our own broadcast (Go ignores it too)
        try:
            request = EnsembleBidRequest.from_json(env.decode_payload())
        except DMSError as exc:
            log.info("ignoring a bad bid request from %s: %s", env.from_.address.host, exc)
            return
        explain = request.explain or not broadcast
        parts = self._parts()
        onboarded = parts is not None and await self._blocking(parts[0].is_onboarded)
        if parts is None or not onboarded:
            if explain:
                await self._decline_all(env, request, "not_onboarded", "this node is not onboarded")
            return
        resources, manager = parts
        free = await self._blocking(resources.free)
        nodes = list(request.requests)
        if not request.explain:
            self._rng.shuffle(nodes)  # Go shuffles so providers spread over the nodes
        bids: list[Bid] = []
        declines: list[BidDecline] = []
        for wanted in nodes:
            refusal = await self._refusal(request, wanted, free, resources)
            if refusal is None:
                bids.append(self._bid(request.id, wanted.node_id, free))
                if not request.explain:
                    break
            else:
                reason, detail = refusal
                declines.append(self._decline(request.id, wanted.node_id, reason, detail, free))
        if bids and not await self._remember(manager, env, request, bids):
            # The same request again (its broadcast copy after the direct one): answered.
            return
        for bid in bids:
            await send_reply(node, env, bid)
        if explain and (request.explain or not bids):
            for decline in declines:
                await send_reply(node, env, decline)

    async def _refusal(
        self, request: EnsembleBidRequest, wanted: BidRequest, free: Resources, rm: ResourceManager
    ) -> tuple[str, str] | None:
        node = self.node
        if node.network.host_id in request.peer_exclusion:
            return "excluded", "this node is excluded from the ensemble"
        here = node.location
        if not here.satisfies(wanted.location.accept, wanted.location.reject):
            return "location", f"this node is in {describe(here)}, outside the node's constraints"
        for name in wanted.executors:
            refusal = await node.executor_refusal(name)
            if refusal is not None:
                return "executor", f"executor {name}: {refusal}"
        if (
            wanted.privileged_docker
            and "docker" in wanted.executors
            and not node.config.job.allow_privileged_docker
        ):
            return "privileged", "privileged Docker is not allowed on this node"
        if wanted.subnet:
            refusal = node.subnet_refusal()
            if refusal is not None:
                return "subnet", refusal
        short = shortfall(free, wanted.resources)
        if short is not None:
            return "resources", short
        if wanted.static_ports or wanted.dynamic_ports:
            problem = await self._blocking(
                lambda: rm.ports.check_availability(wanted.static_ports, wanted.dynamic_ports)
            )
            if problem is not None:
                return "ports", problem
        return None

    def _bid(self, ensemble: str, node_id: str, free: Resources) -> Bid:
        node = self.node
        return Bid(
            ensemble_id=ensemble,
            node_id=node_id,
            peer=node.network.host_id,
            location=node.location,
            handle=node.actor.handle,
            free=free,
        ).sign(node.security.key)

    def _decline(
        self, ensemble: str, node_id: str, reason: str, detail: str, free: Resources | None
    ) -> BidDecline:
        return BidDecline(ensemble, node_id, self.node.network.host_id, reason, detail, free)

    async def _decline_all(
        self, env: Envelope, request: EnsembleBidRequest, reason: str, detail: str
    ) -> None:
        for wanted in request.requests:
            decline = self._decline(request.id, wanted.node_id, reason, detail, None)
            await send_reply(self.node, env, decline)

    async def _remember(
        self,
        manager: AllocationManager,
        env: Envelope,
        request: EnsembleBidRequest,
        bids: list[Bid],
    ) -> bool:
        """Store the bids (one record per ensemble); False if this nonce was answered already.

        A new nonce (the orchestrator asking again for nodes it could not place) adds to the
        record rather than replacing it, so a commit for a node bid on earlier still finds it.
        """
        repo = self._bids(manager)

        def store() -> bool:
            now = time.time_ns()
            old = repo.get(request.id, now=now)
            nodes: list[str] = []
            nonces: list[int] = []
            if old is not None:
                state = json.loads(old.bid)
                nonces = list(state.get("Nonces") or [state.get("Nonce")])
                if request.nonce in nonces:
                    return False  # answered already (messages may arrive out of order)
                nodes = list(state.get("Nodes", []))
                repo.delete(request.id)
            nonces.append(request.nonce)
            nodes += [b.node_id for b in bids if b.node_id not in nodes]
            state = gojson.Struct(
                Orchestrator=env.from_,
                Nonce=request.nonce,
                Nonces=nonces,
                Nodes=nodes,
                Bids=list(bids),
            )
            text = gojson.marshal(state).decode()
            return repo.add(request.id, text, expires_at=now + BID_TTL_NS, now=now) is not None

        return await self._blocking(store)

    # -- two-phase commit ---------------------------------------------------------------------

    async def on_commit(self, env: Envelope) -> None:
        await send_reply(self.node, env, await self._commit(env))

    async def _commit(self, env: Envelope) -> OkResponse:
        parts = self._parts()
        if parts is None:
            return OkResponse(False, "this node cannot deploy (no resource manager)")
        resources, manager = parts
        try:
            request = CommitRequest.from_json(env.decode_payload())
        except DMSError as exc:
            return OkResponse(False, f"bad commit request: {exc}")
        refusal = await self._orchestrator_refusal(
            manager, env, request.ensemble_id, request.node_id
        )
        if refusal is not None:
            return OkResponse(False, refusal)
        alloc_id = allocation_id(request.ensemble_id, request.allocation_name)

        def commit() -> None:
            if resources.commitment(alloc_id) is not None or manager.record_of(alloc_id):
                raise ConflictError(f"allocation {alloc_id} is already committed")
            publics = list(request.port_mapping)
            leased = resources.ports.assign(alloc_id, publics) if publics else []
            mapping = {
                str(port): request.port_mapping[public]
                for port, public in zip(leased, publics, strict=True)
            }
            try:
                resources.commit(
                    alloc_id,
                    request.ensemble_id,
                    request.allocation_name,
                    request.resources,
                    self.commit_ttl,
                    ports=json.dumps(mapping, sort_keys=True),
                )
            except BaseException:
                resources.ports.release(alloc_id)
                raise

        try:
            async with self._lock:
                await self._blocking(commit)
        except DMSError as exc:
            return OkResponse(False, str(exc))
        return OkResponse(True)

    async def on_revert(self, env: Envelope) -> None:
        parts = self._parts()
        if parts is None:
            return
        resources, manager = parts
        try:
            request = RevertRequest.from_json(env.decode_payload())
        except DMSError as exc:
            await send_reply(self.node, env, OkResponse(False, f"bad revert request: {exc}"))
            return
        asked = await self._orchestrator_refusal(manager, env, request.ensemble_id, None) is None
        errors: list[str] = []
        async with self._lock:
            for name in request.allocs_by_name:
                alloc_id = allocation_id(request.ensemble_id, name)
                allocation = manager.get(alloc_id)
                if allocation is not None:
                    if allocation.orchestrator.id != env.from_.id:
                        errors.append(f"allocation {alloc_id} belongs to another orchestrator")
                        continue
                    await manager.stop(alloc_id)
                elif asked:
                    await self._blocking(functools.partial(resources.release, alloc_id))
            if asked:
                await self._blocking(lambda: self._bids(manager).delete(request.ensemble_id))
        log.info(
            "reverted ensemble %s (%s)", request.ensemble_id, ", ".join(request.allocs_by_name)
        )
        await send_reply(self.node, env, OkResponse(not errors, "; ".join(errors)))

    async def on_allocate(self, env: Envelope) -> None:
        if failpoints.armed("provider-exit-before-allocate"):
            log.error("failpoint provider-exit-before-allocate: exiting now")
            os._exit(70)
        await send_reply(self.node, env, await self._allocate(env))

    async def _allocate(self, env: Envelope) -> AllocateResponse:
        parts = self._parts()
        if parts is None:
            return AllocateResponse(False, "this node cannot deploy (no resource manager)")
        resources, manager = parts
        try:
            request = AllocateRequest.from_json(env.decode_payload())
        except DMSError as exc:
            return AllocateResponse(False, f"bad allocate request: {exc}")
        refusal = await self._orchestrator_refusal(
            manager, env, request.ensemble_id, request.node_id or None
        )
        if refusal is not None:
            return AllocateResponse(False, refusal)
        created: list[Allocation] = []
        async with self._lock:
            try:
                for name, config in request.allocations.items():
                    alloc_id = allocation_id(request.ensemble_id, name)
                    commitment = await self._blocking(
                        functools.partial(resources.commitment, alloc_id)
                    )
                    if commitment is None:
                        raise DMSError(f"no committed resources for allocation {alloc_id}")
                    ports = {int(k): int(v) for k, v in json.loads(commitment.ports).items()}
                    created.append(
                        await manager.create(
                            request.ensemble_id,
                            name,
                            config,
                            env.from_,
                            ports,
                            liveness_interval_ns=request.liveness_interval_ns,
                        )
                    )
            except DMSError as exc:
                for allocation in created:
                    await manager.stop(allocation.id)
                return AllocateResponse(False, str(exc))
        return AllocateResponse(
            True,
            allocations={a.name: a.handle for a in created},
            ports={a.name: dict(a.ports) for a in created if a.ports},
        )


def install_deployment(node: Node) -> None:
    """Register the deployment behaviours and subscribe to the bid-request topic."""
    group = DeploymentBehaviors(node)
    node.actor.add_behavior(DEPLOYMENT_REQUEST, group.on_request, topic=BID_REQUEST_TOPIC)
    node.actor.add_behavior(DEPLOYMENT_COMMIT, group.on_commit)
    node.actor.add_behavior(DEPLOYMENT_REVERT, group.on_revert)
    node.actor.add_behavior(DEPLOYMENT_ALLOCATE, group.on_allocate)
    node.topics.add(BID_REQUEST_TOPIC)
    node.deployment = group
