"""The node's subnet behaviours (spec §2.7 "Subnet"): an ensemble's orchestrator builds the
ensemble's private network through them (see :mod:`dms.subnet`).

On the node actor, for each ensemble this node serves (Go's dynamic behaviours):
``/dms/ensemble/<id>/node/subnet/{create,join,destroy}``. They are added, and the ensemble's
orchestrator is granted ``/dms/ensemble/<id>``, when the node creates an allocation of that
ensemble (a provider) or an orchestrator for it (the deployer's DMS, for ``join``); they go when
the last of those is gone. Only that orchestrator's actor may call them (checked on every
message: fail closed). The static ``/dms/node/subnet/...`` forms answer a caller holding
``/dms/node`` (the node's owner).

On every allocation actor: ``/dms/allocation/subnet/{add-peer,remove-peers,accept-peers,
map-port,unmap-port}`` and ``/dms/allocation/subnet/dns/{add-records,remove-records}``, granted
to (and accepted only from) the allocation's orchestrator, like its other behaviours.

``add-peer`` gives the allocation its address; its executions get their interface when they
start (:class:`dms.executor.NetworkAttachment`). ``map-port`` to an allocation whose executor
already published that port (Docker's port bindings, made from the commit's leases) answers OK
without a second listener: the kernel's forwarding is faster than ours.

A node whose process cannot manage TUN devices refuses ``create`` with the reason; it also
declines bids for ensembles that need a subnet (:mod:`dms.node._deployment`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from dms.actor import Envelope, Handle
from dms.did import did_from_id
from dms.errors import DMSError
from dms.executor import Executor, NetworkAttachment
from dms.jobs import Allocation, OkResponse
from dms.node._reply import send_reply
from dms.subnet import (
    ALLOCATION_SUBNET_BEHAVIORS,
    SUBNET_ACCEPT_PEERS,
    SUBNET_ADD_PEER,
    SUBNET_CREATE,
    SUBNET_DESTROY,
    SUBNET_DNS_ADD,
    SUBNET_DNS_REMOVE,
    SUBNET_JOIN,
    SUBNET_MAP_PORT,
    SUBNET_REMOVE_PEERS,
    SUBNET_UNMAP_PORT,
    SubnetAddPeer,
    SubnetCreate,
    SubnetDestroy,
    SubnetDNSAdd,
    SubnetDNSRemove,
    SubnetJoin,
    SubnetManager,
    SubnetPeers,
    SubnetPortMap,
    ensemble_behavior,
    ensemble_namespace,
)
from dms.ucan import Token

if TYPE_CHECKING:
    from dms.node._node import Node

log = logging.getLogger(__name__)

#: How long the node's grant of ``/dms/ensemble/<id>`` to an orchestrator lasts; renewed at half.
GRANT_NS = 3600 * 10**9

_AllocHandler = Callable[[Allocation, Envelope], Awaitable[Any]]


class SubnetBehaviors:
    """Subnet behaviours of one node (see the module docstring); ``manager`` is set by the
    daemon (None: this node runs no subnets and says so)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.manager: SubnetManager | None = None
        #: Ensemble ID -> the orchestrator allowed to drive its subnet here.
        self._orchestrators: dict[str, Handle] = {}
        self._grants: dict[str, list[Token]] = {}
        #: Ensemble ID -> how many reasons this node has to serve it (allocations, its own
        #: orchestrator); the behaviours go when it drops to 0.
        self._users: dict[str, int] = {}

    # -- who may drive an ensemble's subnet here ------------------------------------------------

    def allow(self, ensemble_id: str, orchestrator: Handle) -> None:
        """Add ``ensemble_id``'s node behaviours and grant ``orchestrator`` their namespace."""
        self._users[ensemble_id] = self._users.get(ensemble_id, 0) + 1
        if ensemble_id in self._orchestrators:
            return
        self._orchestrators[ensemble_id] = orchestrator
        for static, handler in self._node_handlers().items():
            name = ensemble_behavior(ensemble_id, static)
            self.node.actor.add_behavior(name, self._dynamic(ensemble_id, handler))
        self._grant(ensemble_id)

    def release(self, ensemble_id: str) -> None:
        """One reason to serve ``ensemble_id`` went; at the last, its behaviours go too."""
        left = self._users.get(ensemble_id, 0) - 1
        if left > 0:
            self._users[ensemble_id] = left
            return
        self._users.pop(ensemble_id, None)
        if self._orchestrators.pop(ensemble_id, None) is None:
            return
        for static in self._node_handlers():
            self.node.actor.remove_behavior(ensemble_behavior(ensemble_id, static))
        grant = self._grants.pop(ensemble_id, [])
        if grant:
            try:
                self.node.actor.security.capabilities.remove(require=grant)
            except DMSError as exc:
                log.warning("could not drop the subnet grant of %s: %s", ensemble_id[:12], exc)

    def _grant(self, ensemble_id: str) -> None:
        orchestrator = self._orchestrators[ensemble_id]
        if orchestrator.did.empty():
            return
        security = self.node.actor.security
        tokens = security.grant(
            orchestrator.did,
            did_from_id(security.id),
            [ensemble_namespace(ensemble_id)],
            security.now_ns() + GRANT_NS,
            depth=0,
        )
        security.capabilities.add_require(tokens.tokens)
        old = self._grants.get(ensemble_id)
        self._grants[ensemble_id] = list(tokens.tokens)
        if old:
            security.capabilities.remove(require=old)

    async def run(self) -> None:
        """Renew the grants while they are needed (and run the manager, if any)."""
        async with trio.open_nursery() as nursery:
            if self.manager is not None:
                await nursery.start(self.manager.run)
                nursery.start_soon(self._prune_after_recovery)
            while True:
                await trio.sleep(GRANT_NS / 2e9)
                for ensemble_id in list(self._orchestrators):
                    self._grant(ensemble_id)

    async def _prune_after_recovery(self) -> None:
        """Once the node re-adopted what it ran, forget subnets none of it reopened."""
        allocations = self.node.allocations
        if allocations is None or self.manager is None:
            return
        await allocations.recovered.wait()
        gone = self.manager.prune_saved()
        if gone:
            log.info("forgot %d subnets no re-adopted allocation is in", len(gone))

    # -- node behaviours -----------------------------------------------------------------------

    def _node_handlers(self) -> dict[str, Callable[[Envelope, str | None], Awaitable[OkResponse]]]:
        return {
            SUBNET_CREATE: self._create,
            SUBNET_JOIN: self._join,
            SUBNET_DESTROY: self._destroy,
        }

    def _dynamic(
        self,
        ensemble_id: str,
        handler: Callable[[Envelope, str | None], Awaitable[OkResponse]],
    ) -> Callable[[Envelope], Awaitable[None]]:
        """``handler`` for ensemble ``ensemble_id``'s orchestrator only, on its subnet only."""

        async def on_message(env: Envelope) -> None:
            allowed = self._orchestrators.get(ensemble_id)
            if allowed is None or env.from_.id != allowed.id:
                log.warning("%s refused: not from the ensemble's orchestrator", env.behavior)
                answer = OkResponse(False, "only the ensemble's orchestrator may do that")
            else:
                answer = await self._guarded(env, handler, ensemble_id)
            await send_reply(self.node, env, answer)

        return on_message

    async def _static(self, env: Envelope) -> None:
        handler = self._node_handlers()[env.behavior]
        await send_reply(self.node, env, await self._guarded(env, handler, None))

    async def _guarded(
        self,
        env: Envelope,
        handler: Callable[[Envelope, str | None], Awaitable[OkResponse]],
        ensemble_id: str | None,
    ) -> OkResponse:
        """Run ``handler`` (which decodes the request once and, for a dynamic behaviour, checks
        that it names ``ensemble_id``'s subnet); every failure is the reply's ``Error``."""
        if self.manager is None:
            return OkResponse(False, "this node runs no subnets")
        try:
            return await handler(env, ensemble_id)
        except DMSError as exc:
            return OkResponse(False, str(exc))

    async def _create(self, env: Envelope, ensemble_id: str | None) -> OkResponse:
        assert self.manager is not None
        request = SubnetCreate.from_json(env.decode_payload())
        _check_subnet(request.subnet_id, ensemble_id)
        await self.manager.create(request)
        return OkResponse(True)

    async def _join(self, env: Envelope, ensemble_id: str | None) -> OkResponse:
        assert self.manager is not None
        request = SubnetJoin.from_json(env.decode_payload())
        _check_subnet(request.subnet_id, ensemble_id)
        await self.manager.join(request)
        return OkResponse(True)

    async def _destroy(self, env: Envelope, ensemble_id: str | None) -> OkResponse:
        assert self.manager is not None
        request = SubnetDestroy.from_json(env.decode_payload())
        _check_subnet(request.subnet_id, ensemble_id)
        await self.manager.destroy(request.subnet_id)
        return OkResponse(True)

    # -- allocation behaviours (AllocationHooks) -----------------------------------------------

    def created(self, allocation: Allocation) -> None:
        """Give a new allocation actor its subnet behaviours; let its orchestrator drive the
        ensemble's subnet on this node."""
        handlers: dict[str, _AllocHandler] = {
            SUBNET_ADD_PEER: self._add_peer,
            SUBNET_ACCEPT_PEERS: self._accept_peers,
            SUBNET_REMOVE_PEERS: self._remove_peers,
            SUBNET_MAP_PORT: self._map_port,
            SUBNET_UNMAP_PORT: self._unmap_port,
            SUBNET_DNS_ADD: self._dns_add,
            SUBNET_DNS_REMOVE: self._dns_remove,
        }
        for behavior, handler in handlers.items():
            allocation.actor.add_behavior(behavior, self._for_allocation(allocation, handler))
        allocation.granted_behaviors.extend(ALLOCATION_SUBNET_BEHAVIORS)
        self.allow(allocation.ensemble_id, allocation.orchestrator)

    async def stopped(self, allocation: Allocation) -> None:
        """Its interface and port mappings go (and the subnet, when nothing else is in it)."""
        try:
            if self.manager is not None and allocation.subnet_id and allocation.network:
                ip = allocation.network.address.partition("/")[0]
                await self.manager.release(allocation.subnet_id, ip)
        finally:
            self.release(allocation.ensemble_id)

    async def readopted(self, allocation: Allocation, executor: Executor | None) -> None:
        """After a restart: give a re-adopted allocation its subnet address back (its running
        execution a new endpoint, through its executor)."""
        if self.manager is None:
            return
        reattach = None
        if executor is not None and allocation.status == "running":
            running = executor

            async def reattach(network: NetworkAttachment) -> bool:
                return await running.reattach_network(allocation.id, network)

        try:
            found = await self.manager.readopt(allocation.id, reattach)
        except (DMSError, OSError) as exc:
            log.warning("allocation %s lost its subnet address: %s", allocation.id, exc)
            return
        if found is not None:
            allocation.subnet_id, allocation.gateway_ip, allocation.network = found

    def _for_allocation(
        self, allocation: Allocation, handler: _AllocHandler
    ) -> Callable[[Envelope], Awaitable[None]]:
        async def on_message(env: Envelope) -> None:
            refusal = allocation.refusal(env)
            if refusal is not None:
                answer = OkResponse(False, refusal)
            elif self.manager is None:
                answer = OkResponse(False, "this node runs no subnets")
            else:
                try:
                    answer = await handler(allocation, env)
                except DMSError as exc:
                    answer = OkResponse(False, str(exc))
            await allocation.reply(env, answer)

        return on_message

    async def _add_peer(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetAddPeer.from_json(env.decode_payload())
        if allocation.status != "pending":
            raise DMSError(
                f"allocation {allocation.id} is {allocation.status}: an address is given before "
                "it starts"
            )
        subnet = self.manager.get(request.subnet_id)
        allocation.network = self.manager.attachment(request.subnet_id, request.ip, allocation.id)
        allocation.subnet_id = request.subnet_id
        allocation.gateway_ip = subnet.gateway
        return OkResponse(True)

    async def _accept_peers(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetPeers.from_json(env.decode_payload())
        self.manager.accept_peers(request.subnet_id, request.routes)
        return OkResponse(True)

    async def _remove_peers(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetPeers.from_json(env.decode_payload())
        self.manager.remove_peers(request.subnet_id, request.routes)
        return OkResponse(True)

    async def _dns_add(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetDNSAdd.from_json(env.decode_payload())
        self.manager.add_records(request.subnet_id, request.records)
        return OkResponse(True)

    async def _dns_remove(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetDNSRemove.from_json(env.decode_payload())
        self.manager.remove_records(request.subnet_id, list(request.names))
        return OkResponse(True)

    async def _map_port(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetPortMap.from_json(env.decode_payload())
        if _published(allocation, request):
            return OkResponse(True)
        await self.manager.map_port(request)
        return OkResponse(True)

    async def _unmap_port(self, allocation: Allocation, env: Envelope) -> OkResponse:
        assert self.manager is not None
        request = SubnetPortMap.from_json(env.decode_payload())
        if _published(allocation, request):
            return OkResponse(True)
        await self.manager.unmap_port(request)
        return OkResponse(True)


def _published(allocation: Allocation, request: SubnetPortMap) -> bool:
    """Whether the allocation's executor publishes that TCP port itself: its leased ports are
    the execution's own port bindings (Docker's; a VM refuses ports)."""
    return (
        request.protocol == "TCP" and allocation.ports.get(request.source_port) == request.dest_port
    )


def _check_subnet(named: str, ensemble_id: str | None) -> None:
    """A dynamic behaviour of ensemble ``ensemble_id`` acts on that ensemble's subnet only."""
    if ensemble_id is not None and named != ensemble_id:
        raise DMSError(f"subnet {named[:16]} is not this ensemble's")


def install_subnet(node: Node) -> SubnetBehaviors:
    """Register the static subnet behaviours; the node keeps the group as ``node.subnets``."""
    group = SubnetBehaviors(node)
    for behavior in (SUBNET_CREATE, SUBNET_JOIN, SUBNET_DESTROY):
        node.actor.add_behavior(behavior, group._static)
    return group
