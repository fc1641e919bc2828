"""The subnets this DMS is a member of: one router, resolver and port mapper per subnet.

A provider is in an ensemble's subnet while it runs allocations of that ensemble; the DMS that
orchestrates an ensemble is in it too when the ensemble says ``subnet: {join: true}``. For each
subnet the manager keeps:

* a :class:`~dms.subnet._router.SubnetRouter` carrying packets between the allocations here and
  the peers of the routing table (over the node's :class:`PacketTransport`);
* a :class:`~dms.subnet._dns.SubnetDNS` answering ``<name>.internal``. It is reached at the
  gateway address (``.1``, each execution's resolver) *through the router*: a query to
  ``.1:53`` read from an allocation's device is answered by the router and the answer written
  back (Go answers on its TUN the same way). So a provider needs no device of its own in its
  host's namespace, and several DMSs on one host (a devnet) never fight over a route;
* a :class:`~dms.subnet._portmap.PortMapper` for ``map-port`` requests to allocations whose
  executor does not publish ports itself.

Only joining (``join``) puts a device in the host's namespace: the joining host's own address,
so its user reaches the allocations directly. That device's network must not overlap one the
host already routes (refused with the reason).

Allocation interfaces are created when their execution has a network namespace
(:meth:`SubnetManager.attachment` hands the executor a callback), never before: a container's
namespace only exists once it started. Allocations' devices live in their own namespaces, so
two subnets on one provider may even use the same /24.

Everything a subnet made goes with it: :meth:`destroy`, the end of :meth:`run` (DMS shutdown)
and, for what a killed DMS left, the TUN devices themselves (they vanish with the process's
file descriptors).

A restarted provider carries on: each subnet's state (network, routing table, DNS records,
which allocation holds which address) is kept in ``<state_dir>/<subnet>.json``, rewritten on
every change; when the node re-adopts a running allocation, :meth:`SubnetManager.readopt`
opens its subnet again from that file and gives the allocation's execution a new interface
with its old address. States no re-adopted allocation claims are removed
(:meth:`SubnetManager.prune_saved`).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from dms._files import atomic_write
from dms.errors import DMSError, NotFound
from dms.executor import FrameLink, NetworkAttachment
from dms.subnet._capability import subnet_capability
from dms.subnet._dns import SubnetDNS
from dms.subnet._frames import mac_text
from dms.subnet._plan import host_networks
from dms.subnet._portmap import PortMapper
from dms.subnet._router import SubnetRouter
from dms.subnet._transport import PacketTransport
from dms.subnet._wire import SubnetCreate, SubnetJoin, SubnetPortMap

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Prefix of every network device a subnet creates (``nn`` + hash): found and removed at start.
DEVICE_PREFIX = "nn"


class SubnetRefused(DMSError):
    """This node cannot be in that subnet (no TUN capability, an overlapping network...)."""


def interface_name(subnet_id: str, ip: str) -> str:
    """A short, stable device name for ``ip`` in ``subnet_id`` (Linux allows 15 bytes)."""
    digest = hashlib.sha256(f"{subnet_id}/{ip}".encode()).hexdigest()
    return DEVICE_PREFIX + digest[:11]


@dataclass
class _Subnet:
    id: str
    cidr: ipaddress.IPv4Network
    gateway: str
    router: SubnetRouter
    dns: SubnetDNS
    ports: PortMapper
    scope: trio.CancelScope
    #: Addresses of this node in the subnet -> what holds them (allocation ID, "join").
    local: dict[str, str] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


class SubnetManager:
    """The subnets of this node (see the module docstring); run it inside the node."""

    def __init__(
        self,
        transport: PacketTransport,
        *,
        local_peer: str,
        dns_upstream: list[str] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.transport = transport
        self.local_peer = local_peer
        self._dns_upstream = dns_upstream
        self._state_dir = state_dir
        self._saved: dict[str, dict[str, object]] | None = None  # read on first need
        self._subnets: dict[str, _Subnet] = {}
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None

    # -- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve subnets until cancelled; on the way out every subnet is destroyed (devices,
        resolver, port mappings).

        Nothing of a previous run needs removing: our TUN devices are not persistent, so the
        kernel deleted them when that process's descriptors closed. (Deleting ``nn*`` devices
        at start-up would be wrong on a host with several DMSs, a devnet: they are the other
        DMSs' live devices.)"""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                for subnet_id in list(self._subnets):
                    await self._teardown(subnet_id)

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise DMSError("the subnet manager is not running")
        return self._nursery

    def ids(self) -> list[str]:
        return sorted(self._subnets)

    def get(self, subnet_id: str) -> _Subnet:
        try:
            return self._subnets[subnet_id]
        except KeyError:
            raise NotFound(f"no subnet {subnet_id[:16]} on this node") from None

    def has(self, subnet_id: str) -> bool:
        return subnet_id in self._subnets

    # -- create, join, destroy ----------------------------------------------------------------

    async def create(self, request: SubnetCreate) -> None:
        """Be in subnet ``request.subnet_id`` (idempotent: a second create updates its routes).

        Refuses (:class:`SubnetRefused`) when this process cannot manage TUN devices or the
        subnet's network overlaps one this host already routes.
        """
        async with self._lock:
            existing = self._subnets.get(request.subnet_id)
            if existing is not None:
                existing.router.add_routes(request.routing_table)
                self._save(existing)
                return
            cidr = self._cidr_of(request)
            self._save(await self._open(request.subnet_id, cidr, request.routing_table))

    def _cidr_of(self, request: SubnetCreate) -> ipaddress.IPv4Network:
        if not request.cidr:
            raise SubnetRefused("subnet create: no network given (CIDR, or a routing table)")
        capability = subnet_capability()
        if not capability.available:
            raise SubnetRefused(f"this node cannot run subnets: {capability.reason}")
        return ipaddress.IPv4Network(request.cidr)

    @staticmethod
    def _check_host_routes(cidr: ipaddress.IPv4Network) -> None:
        """A device in the host's namespace must not shadow a network the host routes."""
        for routed in host_networks():
            if routed.overlaps(cidr):
                raise SubnetRefused(f"network {cidr} overlaps {routed}, routed by this host")

    async def _open(
        self, subnet_id: str, cidr: ipaddress.IPv4Network, routes: Mapping[str, str]
    ) -> _Subnet:
        gateway = str(cidr.network_address + 1)
        router = SubnetRouter(subnet_id, cidr, self.transport, local_peer=self.local_peer)
        router.add_routes(routes)
        dns = SubnetDNS(gateway, upstream=self._dns_upstream)
        router.set_gateway_dns(dns.handle)
        scope = trio.CancelScope()
        subnet: _Subnet | None = None
        failure: list[BaseException] = []

        async def serve(task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            nonlocal subnet
            try:
                with scope:
                    async with trio.open_nursery() as inner:
                        await inner.start(router.run)
                        subnet = _Subnet(
                            subnet_id, cidr, gateway, router, dns, PortMapper(inner), scope
                        )
                        self._subnets[subnet_id] = subnet
                        task_status.started()
            except Exception as exc:  # netlink errors too: the reason is what the caller shows
                failure.append(exc)
                if subnet is None:
                    task_status.started()
                else:
                    log.warning("subnet %s stopped: %s", subnet_id[:16], exc)
            finally:
                self._subnets.pop(subnet_id, None)
                if subnet is not None:
                    subnet.done.set()

        await self.nursery.start(serve)
        if failure or subnet is None:
            why = failure[0] if failure else "it stopped at once"
            raise SubnetRefused(f"subnet {cidr} could not be set up: {why}")
        log.info("subnet %s: %s up (gateway %s)", subnet_id[:16], cidr, gateway)
        return subnet

    async def join(self, request: SubnetJoin) -> None:
        """This host itself joins with ``request.ip`` (``subnet: {join: true}``): a device in
        the host's namespace with that address and a route to the subnet."""
        cidr = ipaddress.IPv4Network(f"{request.ip}/24", strict=False)
        async with self._lock:
            subnet = self._subnets.get(request.subnet_id)
            if subnet is None:
                create = SubnetCreate(request.subnet_id, {}, cidr=str(cidr))
                subnet = await self._open(request.subnet_id, self._cidr_of(create), {})
            if request.ip not in subnet.local:
                self._check_host_routes(subnet.cidr)
                await subnet.router.attach(request.ip, name=interface_name(subnet.id, "host"))
                subnet.local[request.ip] = "join"
        subnet.router.add_routes(
            {**request.routing_table, request.ip: request.peer_id or self.local_peer}
        )
        subnet.dns.add_records(request.records)
        self._save(subnet)

    async def destroy(self, subnet_id: str) -> bool:
        """Leave the subnet: its devices, routes, resolver and port mappings go. False if this
        node was not in it."""
        async with self._lock:
            return await self._teardown(subnet_id)

    async def _teardown(self, subnet_id: str) -> bool:
        subnet = self._subnets.get(subnet_id)
        self._forget_saved(subnet_id)
        if subnet is None:
            return False
        try:
            await subnet.ports.close()
            await subnet.router.close()
        finally:
            subnet.scope.cancel()
            await subnet.done.wait()
        log.info("subnet %s: %s removed", subnet_id[:16], subnet.cidr)
        return True

    # -- allocations --------------------------------------------------------------------------

    def attachment(self, subnet_id: str, ip: str, owner: str) -> NetworkAttachment:
        """What an executor needs to put ``owner``'s interface with ``ip`` into its execution:
        a TUN device in a network namespace (``attach``, containers) or a frame socket
        (``attach_frames``, VMs). Either replaces the address's previous endpoint;
        :meth:`release` removes it."""
        subnet = self.get(subnet_id)
        name = interface_name(subnet_id, ip)
        if subnet.local.get(ip, owner) != owner:
            raise DMSError(f"address {ip} is already used here by {subnet.local[ip]}")
        subnet.local[ip] = owner
        self._save(subnet)

        async def attach(netns: str) -> None:
            live = self.get(subnet_id)  # the subnet may have gone since
            await live.router.detach(ip)  # a restarted execution's old device, if any
            await live.router.attach(ip, netns=netns, name=name)

        async def attach_frames(directory: str) -> FrameLink:
            live = self.get(subnet_id)
            await live.router.detach(ip)
            frames = await live.router.attach_frames(ip, directory, name=name)
            return FrameLink(
                host_socket=str(frames.host_path),
                guest_socket=str(frames.guest_path),
                mac=mac_text(frames.mac),
                mtu=frames.mtu,
            )

        return NetworkAttachment(
            interface=name,
            address=f"{ip}/{subnet.cidr.prefixlen}",
            attach=attach,
            attach_frames=attach_frames,
        )

    async def release(self, subnet_id: str, ip: str) -> None:
        """An allocation with ``ip`` stopped here: its interface and port mappings go; the
        subnet goes too when nothing of this node is left in it."""
        subnet = self._subnets.get(subnet_id)
        if subnet is None:
            return
        subnet.local.pop(ip, None)
        self._save(subnet)
        await subnet.ports.unmap_destination(ip)
        try:
            await subnet.router.detach(ip)
        except (OSError, DMSError) as exc:
            log.debug("subnet %s: detach %s: %s", subnet_id[:16], ip, exc)
        if not subnet.local:
            await self.destroy(subnet_id)

    # -- routes, records, ports ---------------------------------------------------------------

    def accept_peers(self, subnet_id: str, routes: Mapping[str, str]) -> None:
        subnet = self.get(subnet_id)
        subnet.router.add_routes(routes)
        self._save(subnet)

    def remove_peers(self, subnet_id: str, routes: Mapping[str, str]) -> None:
        subnet = self.get(subnet_id)
        subnet.router.remove_routes(routes.keys())
        self._save(subnet)

    def add_records(self, subnet_id: str, records: Mapping[str, str]) -> None:
        subnet = self.get(subnet_id)
        subnet.dns.add_records(records)
        self._save(subnet)

    def remove_records(self, subnet_id: str, names: list[str]) -> None:
        subnet = self.get(subnet_id)
        subnet.dns.remove_records(names)
        self._save(subnet)

    async def map_port(self, request: SubnetPortMap) -> int:
        """Forward ``source_port`` of this host to an allocation's ``dest_ip:dest_port``.

        The proxy connects from this host, so this host needs a route to the subnet: it must
        have joined it. (A Docker allocation's ports are published by Docker instead, see
        :mod:`dms.node._subnet`.)
        """
        subnet = self.get(request.subnet_id)
        if ipaddress.IPv4Address(request.dest_ip) not in subnet.cidr:
            raise DMSError(f"destination {request.dest_ip} is not in subnet {subnet.cidr}")
        if "join" not in subnet.local.values():
            raise DMSError(
                "port mapping to this kind of allocation needs the provider to be on the "
                "subnet itself (not supported yet)"
            )
        return await subnet.ports.map(
            request.protocol,
            request.source_ip,
            request.source_port,
            request.dest_ip,
            request.dest_port,
        )

    async def unmap_port(self, request: SubnetPortMap) -> None:
        subnet = self.get(request.subnet_id)
        await subnet.ports.unmap(request.protocol, request.source_ip, request.source_port)

    # -- surviving a restart ---------------------------------------------------------------------

    def _path(self, subnet_id: str) -> Path | None:
        if self._state_dir is None:
            return None
        safe = hashlib.sha256(subnet_id.encode()).hexdigest()[:32]
        return self._state_dir / f"{safe}.json"

    def _save(self, subnet: _Subnet) -> None:
        """Write ``subnet``'s state (what a restarted provider needs to carry it on)."""
        path = self._path(subnet.id)
        if path is None:
            return
        state = {
            "id": subnet.id,
            "cidr": str(subnet.cidr),
            "routes": subnet.router.routes,
            "records": subnet.dns.records,
            "local": {ip: owner for ip, owner in subnet.local.items() if owner != "join"},
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(state, sort_keys=True).encode())
        except OSError as exc:
            log.warning("subnet %s: state not saved: %s", subnet.id[:16], exc)

    def _forget_saved(self, subnet_id: str) -> None:
        path = self._path(subnet_id)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._saved is not None:
            self._saved.pop(subnet_id, None)

    def _load_saved(self) -> dict[str, dict[str, object]]:
        """The states a previous run left (read once; unreadable files are skipped)."""
        if self._saved is None:
            self._saved = {}
            if self._state_dir is not None and self._state_dir.is_dir():
                for path in sorted(self._state_dir.glob("*.json")):
                    try:
                        state = json.loads(path.read_text())
                        self._saved[str(state["id"])] = state
                    except (OSError, ValueError, KeyError, TypeError) as exc:
                        log.warning("subnet state %s unreadable, dropped: %s", path.name, exc)
                        with contextlib.suppress(OSError):
                            path.unlink()
        return self._saved

    async def readopt(
        self,
        owner: str,
        reattach: Callable[[NetworkAttachment], Awaitable[bool]] | None,
    ) -> tuple[str, str, NetworkAttachment] | None:
        """``owner`` (an allocation re-adopted after a restart) had an address on a subnet:
        open that subnet again from its saved state and, through ``reattach`` (its executor's,
        when its execution still runs), give the execution its endpoint back. Returns
        ``(subnet ID, gateway, attachment)``, or None when it had no address."""
        for subnet_id, state in list(self._load_saved().items()):
            local = state.get("local")
            if not isinstance(local, dict):
                continue
            ip = next((ip for ip, held in local.items() if held == owner), None)
            if ip is None:
                continue
            async with self._lock:
                subnet = self._subnets.get(subnet_id)
                if subnet is None:
                    routes = state.get("routes")
                    subnet = await self._open(
                        subnet_id,
                        ipaddress.IPv4Network(str(state["cidr"])),
                        routes if isinstance(routes, dict) else {},
                    )
                    records = state.get("records")
                    subnet.dns.add_records(records if isinstance(records, dict) else {})
            attachment = self.attachment(subnet_id, ip, owner)
            if reattach is not None and await reattach(attachment):
                log.info("subnet %s: %s has %s again", subnet_id[:16], owner, ip)
            return subnet_id, subnet.gateway, attachment
        return None

    def prune_saved(self) -> list[str]:
        """Remove saved states of subnets no re-adopted allocation reopened; their IDs."""
        gone = [sid for sid in self._load_saved() if sid not in self._subnets]
        for subnet_id in gone:
            self._forget_saved(subnet_id)
        return gone
