"""A VM's Ethernet frames <-> the subnet's IPv4 packets: the router's second kind of endpoint.

A VM's network card (virtio-net in QEMU, ``-netdev dgram``) sends and receives raw Ethernet
frames on a unix datagram socket, so a VM on a subnet needs no TAP device, no bridge and no
``CAP_NET_ADMIN``: the DMS binds its end of the socket pair in the execution directory
(:class:`FrameSocket`) and the router reads and writes frames there as it reads and writes
packets on a TUN device. The shim in between:

* strips the 14-byte Ethernet header from the VM's IPv4 frames (trimmed to the IPv4 length,
  with a zero ``virtio_net_hdr`` put in front: a VM's frames carry complete checksums) and
  adds one to what goes to the VM (:func:`packet_frame`), after resolving any offload the
  packet carries (:func:`~dms.subnet._packets.plain_packets`): QEMU's datagram back-end has
  no offload, so the guest gets MTU-sized, checksummed frames only;
* answers the VM's ARP requests for every host address of the subnet but its own with one
  virtual MAC (:data:`ROUTER_MAC`): the gateway and the other allocations all sit "behind"
  the router, as on a point-to-point link (:func:`arp_answer`);
* drops everything else (IPv6, other ethertypes, malformed frames); the router counts it.

The socket: the DMS binds ``<directory>/subnet.sock`` and connects it to QEMU's
``<directory>/subnet-vm.sock`` once QEMU has bound that (on the first frame it sends the VM):
from then on the kernel delivers the DMS only QEMU's datagrams. The directory is the
execution's own (mode 0700). A unix datagram queue is short (``net.unix.max_dgram_qlen``, 10
on many hosts), so frames the VM cannot take at once wait in a bounded queue that
:meth:`FrameSocket.flush_forever` writes out when the socket is writable (the router runs it
beside the socket's reader); when that queue is full, new frames are dropped, as a congested
link would (TCP backs off).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import trio

from dms.subnet._packets import PLAIN_HEADER

ETH_HEADER_LEN = 14
ETH_P_IP = b"\x08\x00"
ETH_P_ARP = b"\x08\x06"
#: The one MAC every subnet address but the VM's own answers with (locally administered).
ROUTER_MAC = bytes.fromhex("026e756e6574")
#: What the DMS's socket is called in the execution directory, and what QEMU binds there.
HOST_SOCKET = "subnet.sock"
GUEST_SOCKET = "subnet-vm.sock"
#: Frames waiting for the VM's socket to take them before new ones are dropped.
PENDING_FRAMES = 4096
_SOCKET_BUFFER = 1 << 20

# ARP header: hardware Ethernet (1), protocol IPv4 (0x0800), lengths 6 and 4, op 1 / 2.
_ARP_REQUEST_HEAD = bytes.fromhex("0001080006040001")
_ARP_REPLY_HEAD = bytes.fromhex("0001080006040002")


def guest_mac(ip: ipaddress.IPv4Address | str) -> bytes:
    """The VM's MAC on the subnet: ``02:00`` and its address (unique in the subnet, locally
    administered, never :data:`ROUTER_MAC`)."""
    return b"\x02\x00" + ipaddress.IPv4Address(ip).packed


def mac_text(mac: bytes) -> str:
    """``02:00:0a:01:02:03`` as QEMU's ``mac=`` wants it."""
    return ":".join(f"{b:02x}" for b in mac)


def frame_packet(frame: bytes) -> bytes | None:
    """The router's packet (zero ``virtio_net_hdr`` + IPv4) in an IPv4 Ethernet frame, or None
    when the frame is not IPv4 or its lengths do not add up. Padding after the IPv4 packet (a
    short frame's) is cut off."""
    if frame[12:14] != ETH_P_IP or len(frame) < ETH_HEADER_LEN + 20:
        return None
    if frame[ETH_HEADER_LEN] >> 4 != 4:
        return None
    total = int.from_bytes(frame[ETH_HEADER_LEN + 2 : ETH_HEADER_LEN + 4], "big")
    if total < 20 or total > len(frame) - ETH_HEADER_LEN:
        return None
    return PLAIN_HEADER + frame[ETH_HEADER_LEN : ETH_HEADER_LEN + total]


def packet_frame(ip: bytes, dst_mac: bytes) -> bytes:
    """An Ethernet frame from the router to ``dst_mac`` carrying the IPv4 packet ``ip`` (no
    ``virtio_net_hdr``)."""
    return dst_mac + ROUTER_MAC + ETH_P_IP + ip


def arp_answer(frame: bytes, own: Iterable[bytes], network: ipaddress.IPv4Network) -> bytes | None:
    """The reply to an ARP request from the VM, or None when there is none to give.

    Answered: a request from one of the VM's own addresses (``own``, 4-byte forms) for another
    host address of ``network``; the answer is :data:`ROUTER_MAC`. Not answered: requests for
    the VM's own address (a duplicate-address probe must find nobody), from an address that is
    not the VM's, for addresses outside the subnet, and anything that is not an Ethernet/IPv4
    ARP request.
    """
    if frame[12:14] != ETH_P_ARP or len(frame) < ETH_HEADER_LEN + 28:
        return None
    arp = frame[ETH_HEADER_LEN : ETH_HEADER_LEN + 28]
    if arp[:8] != _ARP_REQUEST_HEAD:
        return None
    sender_mac, sender_ip, target_ip = arp[8:14], arp[14:18], arp[24:28]
    owned = set(own)
    if sender_ip not in owned or target_ip in owned:
        return None
    target = ipaddress.IPv4Address(target_ip)
    if target not in network or target in (network.network_address, network.broadcast_address):
        return None
    reply = _ARP_REPLY_HEAD + ROUTER_MAC + target_ip + sender_mac + sender_ip
    return sender_mac + ROUTER_MAC + ETH_P_ARP + reply


class FrameSocket:
    """The DMS's end of one VM's frames (see the module docstring).

    ``fd`` is read by the router like a TUN device's (one frame per read); :meth:`send` writes
    frames, queueing what the VM cannot take yet; :meth:`close` closes and removes the socket.
    """

    def __init__(self, directory: str | os.PathLike[str], *, name: str, mac: bytes, mtu: int):
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.directory = Path(directory)
        self.host_path = self.directory / HOST_SOCKET
        self.guest_path = self.directory / GUEST_SOCKET
        self.closed = False
        self.dropped = 0  # frames the queue had no room for, or the VM's socket refused
        self._pending: collections.deque[bytes] = collections.deque()
        self._wake = trio.Event()
        self._connected = False
        # Paths go through the directory's descriptor: always short enough for sun_path.
        self._dirfd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(HOST_SOCKET, dir_fd=self._dirfd)
            self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            )
        except BaseException:
            os.close(self._dirfd)
            raise
        try:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    self._sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            self._sock.bind(self._short(HOST_SOCKET))
            os.chmod(HOST_SOCKET, 0o600, dir_fd=self._dirfd)
        except BaseException:
            self._sock.close()
            os.close(self._dirfd)
            raise
        self.fd = self._sock.fileno()

    def _short(self, name: str) -> str:
        return f"/proc/self/fd/{self._dirfd}/{name}"

    def _connect(self) -> bool:
        """Connect to QEMU's socket (once it exists); False while it does not."""
        if not self._connected:
            try:
                self._sock.connect(self._short(GUEST_SOCKET))
            except OSError:
                return False
            self._connected = True
        return True

    def send(self, frames: list[bytes]) -> bool:
        """Write ``frames`` to the VM, queueing those it cannot take now (in order). False when
        some were dropped: no VM socket yet, or the queue is full."""
        if self.closed or not frames:
            return not self.closed
        if self._pending:
            return self._queue(frames, 0)
        if not self._connect():
            self.dropped += len(frames)
            return False
        write = os.write
        fd = self.fd
        for index, frame in enumerate(frames):
            try:
                write(fd, frame)
            except BlockingIOError:
                return self._queue(frames, index)
            except OSError as exc:  # the VM is gone (ECONNREFUSED) or the frame is refused
                self.dropped += len(frames) - index
                if exc.errno in (errno.ECONNREFUSED, errno.ENOTCONN):
                    self._connected = False
                return False
        return True

    def _queue(self, frames: list[bytes], start: int) -> bool:
        room = PENDING_FRAMES - len(self._pending)
        taken = frames[start : start + max(room, 0)]
        self._pending.extend(taken)
        self._wake.set()
        lost = len(frames) - start - len(taken)
        self.dropped += lost
        return lost == 0

    async def flush_forever(self) -> None:
        """Write queued frames out as the VM's socket takes them (until cancelled or closed)."""
        while not self.closed:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending and not self.closed:
                try:
                    await trio.lowlevel.wait_writable(self.fd)
                except (trio.ClosedResourceError, OSError):
                    return
                while self._pending and not self.closed:
                    try:
                        os.write(self.fd, self._pending[0])
                    except BlockingIOError:
                        break
                    except OSError:
                        self.dropped += len(self._pending)
                        self._pending.clear()
                        break
                    self._pending.popleft()

    def close(self) -> None:
        """Close the socket and remove its file (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        self._wake.set()
        with contextlib.suppress(OSError):
            os.unlink(HOST_SOCKET, dir_fd=self._dirfd)
        os.close(self._dirfd)
        self._sock.close()


__all__ = [
    "ETH_HEADER_LEN",
    "GUEST_SOCKET",
    "HOST_SOCKET",
    "ROUTER_MAC",
    "FrameSocket",
    "arp_answer",
    "frame_packet",
    "guest_mac",
    "mac_text",
    "packet_frame",
]
