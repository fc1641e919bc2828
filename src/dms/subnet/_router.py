"""``SubnetRouter``: one subnet's data path on one node (TUN devices <-> peers).

The node has a TUN device per allocation of the subnet it hosts (in the allocation's network
namespace) and at most one in its own namespace (the gateway ``.1``, where the DNS resolver
listens, and the node's own address when it joins the subnet). The router:

* reads each device until ``EAGAIN`` (``trio.lowlevel.wait_readable``, up to
  :data:`READ_BATCH` packets a round), and forwards the batch: a packet for an address on this
  node goes straight to that device's descriptor; a packet for ``.1`` goes to the host device;
  anything else goes by the routing table (ip -> peer, Go's ``routingTable``) into that peer's
  queue. One task per device and one per peer, never one per packet.
* sends each peer's queue through the :class:`~dms.subnet.PacketTransport`, merging what
  queued up meanwhile into one batch. A full queue drops the new batch (counted), as a
  congested link would: TCP backs off; a slow peer never stalls the devices or other peers.
* does the same for a VM's frame socket (:meth:`SubnetRouter.attach_frames`,
  :mod:`._frames`): frames are read and written like a TUN device's packets, the VM's ARP is
  answered at once, and what goes to the VM has its offload resolved (checksums completed,
  TCP segmentation done in Python) since QEMU's datagram back-end takes none.
* accepts a batch from a peer only if the peer is a member (has an address in the routing
  table); each packet only if its source address is routed to that very peer and its
  destination is an address of this node, and its offload header is one we produce
  (:func:`~dms.subnet._packets.valid_offload`). A packet read from a device must carry one of
  that device's own addresses as its source. Everything refused is dropped and counted in
  :attr:`SubnetRouter.stats`: security checks fail closed.

Addresses are handled as 4-byte strings (:mod:`._packets`), so the per-packet work is a few
slices and dict lookups.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from dms.errors import DMSError, InvalidInput
from dms.subnet._frames import (
    ETH_P_ARP,
    FrameSocket,
    arp_answer,
    frame_packet,
    guest_mac,
    packet_frame,
)
from dms.subnet._packets import (
    MIN_PACKET,
    VNET_HDR_LEN,
    key,
    plain_packets,
    udp_packet,
    udp_payload,
    valid_offload,
)
from dms.subnet._transport import PacketTransport
from dms.subnet._tun import (
    DEFAULT_MTU,
    TunDevice,
    add_address,
    create_tun,
    device_name,
    remove_address,
    remove_stale_devices,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Packets read from one device before they are forwarded and the device is read again.
READ_BATCH = 64
#: Largest read: a 64 KiB offload packet and its header.
READ_SIZE = 65_536 + 64
#: Batches a peer's queue holds before new ones are dropped.
PEER_QUEUE = 64
#: Packets merged into one transport batch at most.
SEND_MERGE = 256
#: DNS queries to the gateway being answered at once; more are dropped (the client retries).
DNS_INFLIGHT = 256
DNS_PORT = 53

GatewayDNS = Callable[[bytes], Awaitable[bytes | None]]
"""Answers one DNS message (no length prefix); None drops it."""

_SRC = slice(VNET_HDR_LEN + 12, VNET_HDR_LEN + 16)
_DST = slice(VNET_HDR_LEN + 16, VNET_HDR_LEN + 20)


class SubnetError(DMSError):
    """A subnet operation cannot be done (bad address, already attached, not running...)."""


@dataclass
class SubnetStats:
    """Packet counters of one router (monotonic; ``stats`` returns a snapshot)."""

    device_packets: int = 0  # read from local devices
    device_bytes: int = 0
    local_packets: int = 0  # device -> device on this node
    sent_packets: int = 0  # handed to the transport
    sent_batches: int = 0
    received_packets: int = 0  # accepted from peers and written to a device
    received_batches: int = 0
    dropped_not_member: int = 0  # from a peer that has no address in the routing table
    dropped_spoofed: int = 0  # source not routed to the sender / not the device's own
    dropped_not_local: int = 0  # from a peer, destination not an address of this node
    dropped_no_route: int = 0  # from a device, destination not in the routing table
    dropped_malformed: int = 0  # not IPv4, too short, or an offload header we never produce
    dropped_queue_full: int = 0
    dropped_send_failed: int = 0
    dropped_write_failed: int = 0
    dns_queries: int = 0  # UDP queries to gateway:53 answered by the router's resolver
    dropped_dns_busy: int = 0
    arp_replies: int = 0  # ARP requests of VMs answered
    segmented_packets: int = 0  # offload packets cut into segments for a VM
    dropped_frames: int = 0  # from a VM: not IPv4 nor an ARP request we answer

    @property
    def dropped(self) -> int:
        """All drops together."""
        return sum(
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name.startswith("dropped")
        )


@dataclass(eq=False)
class _Device:
    """A local endpoint: a TUN device, or a VM's frame socket (``frames``, same object)."""

    tun: TunDevice | FrameSocket
    host: bool
    ips: set[bytes] = field(default_factory=set)
    scope: trio.CancelScope | None = None
    frames: FrameSocket | None = None


class SubnetRouter:
    """The data path of subnet ``subnet_id`` (``cidr``) on the node ``local_peer``.

    Run it with ``await nursery.start(router.run)``; devices can be attached before or while
    it runs. Cancelling :meth:`run` (or :meth:`close`) closes every device, which deletes it.
    ``offload=False`` opens devices without segmentation offload (MTU-sized packets only; kept
    for measurements and for transports that cannot carry large packets).
    """

    def __init__(
        self,
        subnet_id: str,
        cidr: ipaddress.IPv4Network,
        transport: PacketTransport,
        *,
        local_peer: str,
        mtu: int = DEFAULT_MTU,
        offload: bool = True,
    ) -> None:
        if cidr.prefixlen > 30:
            raise InvalidInput(f"subnet {cidr} is too small")
        self.subnet_id = subnet_id
        self.cidr = cidr
        self.transport = transport
        self.local_peer = local_peer
        self.mtu = mtu
        self.offload = offload
        self.gateway = cidr.network_address + 1
        self._gateway_key = key(self.gateway)
        self._routes: dict[str, str] = {}  # "10.x.y.z" -> peer id
        self._route_keys: dict[bytes, str] = {}  # 4-byte address -> peer id
        self._members: dict[str, int] = {}  # peer id -> number of addresses
        self._devices: list[_Device] = []
        self._by_ip: dict[bytes, _Device] = {}
        self._host: _Device | None = None
        self._queues: dict[str, trio.MemorySendChannel[list[bytes]]] = {}
        self._stats = SubnetStats()
        self._dns: GatewayDNS | None = None
        self._dns_inflight = 0
        self._nursery: trio.Nursery | None = None
        self._closed = False

    # -- state -----------------------------------------------------------------------------
    @property
    def routes(self) -> dict[str, str]:
        """The routing table: address -> peer ID (a copy)."""
        return dict(self._routes)

    @property
    def members(self) -> set[str]:
        """Peers with at least one address in the routing table."""
        return set(self._members)

    @property
    def stats(self) -> SubnetStats:
        """A snapshot of the packet counters."""
        return dataclasses.replace(self._stats)

    @property
    def devices(self) -> dict[str, str]:
        """Attached addresses -> device name."""
        return {str(ipaddress.IPv4Address(ip)): dev.tun.name for ip, dev in self._by_ip.items()}

    def add_routes(self, routes: Mapping[str, str]) -> None:
        """Add or replace ``ip -> peer`` entries (addresses must be in the subnet)."""
        checked = {self._address(ip): peer for ip, peer in routes.items()}
        for ip, peer in checked.items():
            if not isinstance(peer, str) or not peer:
                raise InvalidInput(f"route for {ip}: empty peer id")
        for ip, peer in checked.items():
            self._drop_route(str(ip))
            self._routes[str(ip)] = peer
            self._route_keys[ip.packed] = peer
            self._members[peer] = self._members.get(peer, 0) + 1

    def remove_routes(self, ips: Iterable[str]) -> None:
        """Remove the entries of ``ips`` (unknown addresses are ignored)."""
        for ip in ips:
            self._drop_route(str(ipaddress.IPv4Address(ip)))

    def _drop_route(self, ip: str) -> None:
        peer = self._routes.pop(ip, None)
        if peer is None:
            return
        self._route_keys.pop(key(ip), None)
        left = self._members[peer] - 1
        if left:
            self._members[peer] = left
            return
        del self._members[peer]
        queue = self._queues.pop(peer, None)
        if queue is not None:
            queue.close()  # its sender task ends and tells the transport to forget the peer

    def _address(self, ip: str) -> ipaddress.IPv4Address:
        try:
            address = ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidInput(f"{ip!r} is not an IPv4 address") from None
        if address not in self.cidr or address in (
            self.cidr.network_address,
            self.cidr.broadcast_address,
        ):
            raise InvalidInput(f"{ip} is not a host address of subnet {self.cidr}")
        return address

    def set_gateway_dns(self, resolver: GatewayDNS | None) -> None:
        """Answer UDP queries to ``gateway:53`` from local devices with ``resolver``.

        A query read from an allocation's device is not forwarded anywhere: ``resolver`` gets
        the DNS message and its answer goes back to the asking device from ``gateway:53``, as
        Go answers on its TUN. So a node needs no device of its own to serve its allocations.
        One task per query (DNS, not data), at most :data:`DNS_INFLIGHT` at once.
        """
        self._dns = resolver

    # -- devices ---------------------------------------------------------------------------
    async def attach(self, ip: str, *, netns: str | None = None, name: str | None = None) -> str:
        """Give ``ip`` to a TUN device in ``netns`` (None: this node's own namespace).

        A second address for the node's own namespace goes on the existing host device. Returns
        the device name.
        """
        if self._closed:
            raise SubnetError(f"subnet {self.subnet_id} is closed")
        address = self._address(ip)
        if address.packed in self._by_ip:
            raise SubnetError(f"{ip} is already attached in subnet {self.subnet_id}")
        iface = ipaddress.IPv4Interface(f"{address}/{self.cidr.prefixlen}")
        if netns is None and self._host is not None:
            assert isinstance(self._host.tun, TunDevice)
            await add_address(self._host.tun, iface)
            self._host.ips.add(address.packed)
            self._by_ip[address.packed] = self._host
            return self._host.tun.name
        tun = await create_tun(
            name or device_name(self.subnet_id, address),
            iface,
            netns=netns,
            mtu=self.mtu,
            offload=self.offload,
        )
        if self._closed or address.packed in self._by_ip:  # raced close() / another attach
            tun.close()
            raise SubnetError(f"subnet {self.subnet_id}: {ip} attach raced a change")
        dev = _Device(tun=tun, host=netns is None, ips={address.packed})
        self._devices.append(dev)
        self._by_ip[address.packed] = dev
        if dev.host:
            self._host = dev
        if self._nursery is not None:
            self._start_reader(dev)
        return tun.name

    async def attach_frames(
        self, ip: str, directory: str | os.PathLike[str], *, name: str | None = None
    ) -> FrameSocket:
        """Give ``ip`` to a VM whose network card sends Ethernet frames on a unix datagram
        socket: the DMS's end is bound in ``directory`` (see :class:`FrameSocket` for the two
        paths QEMU needs). Detached like a device (:meth:`detach`)."""
        if self._closed:
            raise SubnetError(f"subnet {self.subnet_id} is closed")
        address = self._address(ip)
        if address.packed in self._by_ip:
            raise SubnetError(f"{ip} is already attached in subnet {self.subnet_id}")
        try:
            frames = FrameSocket(
                directory,
                name=name or device_name(self.subnet_id, address),
                mac=guest_mac(address),
                mtu=self.mtu,
            )
        except OSError as exc:
            raise SubnetError(f"cannot open the frame socket in {directory}: {exc}") from None
        dev = _Device(tun=frames, host=False, ips={address.packed}, frames=frames)
        self._devices.append(dev)
        self._by_ip[address.packed] = dev
        if self._nursery is not None:
            self._start_reader(dev)
        return frames

    async def detach(self, ip: str) -> None:
        """Take ``ip`` away: its device is closed (deleted) once it holds no other address."""
        address = ipaddress.IPv4Address(ip)
        dev = self._by_ip.pop(address.packed, None)
        if dev is None:
            return
        dev.ips.discard(address.packed)
        if dev.ips:
            iface = ipaddress.IPv4Interface(f"{address}/{self.cidr.prefixlen}")
            assert isinstance(dev.tun, TunDevice)
            await remove_address(dev.tun, iface)
            return
        self._close_device(dev)

    def _close_device(self, dev: _Device) -> None:
        if dev.scope is not None:
            dev.scope.cancel()
        if dev in self._devices:
            self._devices.remove(dev)
        for ip in dev.ips:
            self._by_ip.pop(ip, None)
        if self._host is dev:
            self._host = None
        if not dev.tun.closed:
            trio.lowlevel.notify_closing(dev.tun.fd)
            dev.tun.close()

    async def close(self) -> None:
        """Close every device and stop forwarding (idempotent)."""
        self._closed = True
        self._close_all()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        await trio.lowlevel.checkpoint()

    def _close_all(self) -> None:
        self.transport.unregister(self.subnet_id)
        for dev in list(self._devices):
            self._close_device(dev)
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()

    # -- running ---------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Forward packets until cancelled; every device is closed on the way out."""
        if self._nursery is not None:
            raise SubnetError(f"subnet {self.subnet_id} router is already running")
        if self._closed:
            raise SubnetError(f"subnet {self.subnet_id} is closed")
        self.transport.register(self.subnet_id, self._receive)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for dev in self._devices:
                    self._start_reader(dev)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._closed = True
            self._close_all()

    def _start_reader(self, dev: _Device) -> None:
        assert self._nursery is not None
        dev.scope = trio.CancelScope()
        self._nursery.start_soon(self._read_device, dev, dev.scope)

    async def _read_device(self, dev: _Device, scope: trio.CancelScope) -> None:
        with scope:
            if dev.frames is None:
                await self._read_loop(dev)
                return
            async with trio.open_nursery() as nursery:  # a VM's queued frames, written out
                nursery.start_soon(dev.frames.flush_forever)
                await self._read_loop(dev)
                nursery.cancel_scope.cancel()

    async def _read_loop(self, dev: _Device) -> None:
        fd = dev.tun.fd
        read = os.read
        while True:
            # Checked with no await before the wait: once closed, the fd number may be
            # reused by another file at any await.
            if dev.tun.closed:
                return
            try:
                await trio.lowlevel.wait_readable(fd)
            except (trio.ClosedResourceError, OSError):
                return
            packets: list[bytes] = []
            try:
                for _ in range(READ_BATCH):
                    packets.append(read(fd, READ_SIZE))
            except BlockingIOError:
                pass
            except OSError as exc:
                if dev.tun.closed or exc.errno == errno.EBADF:
                    return
                log.warning("subnet %s: reading %s: %s", self.subnet_id, dev.tun.name, exc)
            if packets and dev.frames is not None:
                packets = self._from_frames(dev, dev.frames, packets)
            if packets:
                self._forward(dev, packets)

    def _from_frames(self, dev: _Device, frames: FrameSocket, raw: list[bytes]) -> list[bytes]:
        """A VM's frames -> its IPv4 packets; ARP requests answered on the spot."""
        packets = []
        for frame in raw:
            packet = frame_packet(frame)
            if packet is not None:
                packets.append(packet)
                continue
            reply = arp_answer(frame, dev.ips, self.cidr) if frame[12:14] == ETH_P_ARP else None
            if reply is None:
                self._stats.dropped_frames += 1
                continue
            if frames.send([reply]):
                self._stats.arp_replies += 1
        return packets

    def _forward(self, dev: _Device, packets: list[bytes]) -> None:
        stats = self._stats
        by_ip = self._by_ip
        routes = self._route_keys
        owned = dev.ips
        outgoing: dict[str, list[bytes]] = {}
        nbytes = 0
        for packet in packets:
            nbytes += len(packet)
            if len(packet) < MIN_PACKET or packet[VNET_HDR_LEN] >> 4 != 4:
                stats.dropped_malformed += 1
                continue
            if packet[_SRC] not in owned:
                stats.dropped_spoofed += 1
                continue
            dst = packet[_DST]
            target = by_ip.get(dst)
            if target is None and dst == self._gateway_key:
                if self._dns is not None and self._gateway_query(dev, packet):
                    continue
                target = self._host
            if target is not None:
                self._write(target, packet)
                stats.local_packets += 1
                continue
            peer = routes.get(dst)
            if peer is None or peer == self.local_peer:
                stats.dropped_no_route += 1
                continue
            batch = outgoing.get(peer)
            if batch is None:
                outgoing[peer] = [packet]
            else:
                batch.append(packet)
        stats.device_packets += len(packets)
        stats.device_bytes += nbytes
        for peer, batch in outgoing.items():
            self._enqueue(peer, batch)

    def _gateway_query(self, dev: _Device, packet: bytes) -> bool:
        """Start answering ``packet`` if it is a UDP query to the gateway's port 53."""
        udp = udp_payload(packet)
        if udp is None or udp[1] != DNS_PORT or self._nursery is None:
            return False
        if self._dns_inflight >= DNS_INFLIGHT:
            self._stats.dropped_dns_busy += 1
            return True
        self._dns_inflight += 1
        self._nursery.start_soon(self._answer_query, dev, packet[_SRC], udp[0], udp[2])
        return True

    async def _answer_query(self, dev: _Device, client: bytes, port: int, query: bytes) -> None:
        try:
            assert self._dns is not None
            answer = await self._dns(query)
        except Exception:
            log.exception("subnet %s: gateway DNS failed", self.subnet_id)
            answer = None
        finally:
            self._dns_inflight -= 1
        if answer is not None and not dev.tun.closed:
            self._write(dev, udp_packet(self._gateway_key, client, DNS_PORT, port, answer))
            self._stats.dns_queries += 1

    def _enqueue(self, peer: str, batch: list[bytes]) -> None:
        queue = self._queues.get(peer)
        if queue is None:
            if self._nursery is None:
                self._stats.dropped_send_failed += len(batch)
                return
            queue, receive = trio.open_memory_channel[list[bytes]](PEER_QUEUE)
            self._queues[peer] = queue
            self._nursery.start_soon(self._send_to_peer, peer, receive)
        try:
            queue.send_nowait(batch)
        except trio.WouldBlock:
            self._stats.dropped_queue_full += len(batch)

    async def _send_to_peer(
        self, peer: str, receive: trio.MemoryReceiveChannel[list[bytes]]
    ) -> None:
        stats = self._stats
        async with receive:
            async for first in receive:
                batch = first
                while len(batch) < SEND_MERGE:
                    try:
                        batch.extend(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                try:
                    await self.transport.send(self.subnet_id, peer, batch)
                except DMSError as exc:
                    stats.dropped_send_failed += len(batch)
                    log.info(
                        "subnet %s: %d packets to %s lost: %s",
                        self.subnet_id,
                        len(batch),
                        peer,
                        exc,
                    )
                    continue
                stats.sent_packets += len(batch)
                stats.sent_batches += 1
        if peer not in self._members:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await self.transport.forget_peer(self.subnet_id, peer)

    def _receive(self, peer: str, packets: Sequence[bytes]) -> None:
        """Packets from ``peer``: membership, source, destination and header checks first."""
        stats = self._stats
        if peer not in self._members or peer == self.local_peer:
            stats.dropped_not_member += len(packets)
            return
        routes = self._route_keys
        by_ip = self._by_ip
        accepted = 0
        for packet in packets:
            if len(packet) < MIN_PACKET or packet[VNET_HDR_LEN] >> 4 != 4:
                stats.dropped_malformed += 1
                continue
            if routes.get(packet[_SRC]) != peer:
                stats.dropped_spoofed += 1
                continue
            dst = packet[_DST]
            target = by_ip.get(dst)
            if target is None and dst == self._gateway_key:
                target = self._host
            if target is None:
                stats.dropped_not_local += 1
                continue
            if not valid_offload(packet):
                stats.dropped_malformed += 1
                continue
            if self._write(target, packet):
                accepted += 1
        stats.received_packets += accepted
        stats.received_batches += 1

    def _write(self, dev: _Device, packet: bytes) -> bool:
        if dev.frames is not None:
            return self._write_frames(dev.frames, packet)
        try:
            os.write(dev.tun.fd, packet)
            return True
        except OSError:
            self._stats.dropped_write_failed += 1
            return False

    def _write_frames(self, frames: FrameSocket, packet: bytes) -> bool:
        """``packet`` to a VM: its offload resolved (checksum, TCP segments), then framed."""
        ips = plain_packets(packet)
        if not ips:
            self._stats.dropped_malformed += 1
            return False
        if len(ips) > 1:
            self._stats.segmented_packets += 1
        mac = frames.mac
        if frames.send([packet_frame(ip, mac) for ip in ips]):
            return True
        self._stats.dropped_write_failed += 1
        return False


__all__ = [
    "GatewayDNS",
    "SubnetError",
    "SubnetRouter",
    "SubnetStats",
    "remove_stale_devices",
]
