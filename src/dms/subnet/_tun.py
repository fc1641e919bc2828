"""TUN devices of a subnet: created in the allocation's network namespace, configured by netlink.

A device is created *inside* its target namespace: a short-lived thread enters the namespace
(``setns(2)`` changes only the calling thread's), opens ``/dev/net/tun`` and issues
``TUNSETIFF`` there, then configures the link with pyroute2 from the same thread (MTU,
address/prefix, IPv6 off, up; the kernel's prefix route sends the subnet through the device).
Creating it in place rather than creating it in the host and moving it means no transient
device in the host namespace and no clash with a host device of the same name. The thread
then ends, so no pooled thread is ever left in a foreign namespace. pyroute2 blocks, so all of
this runs through ``trio.to_thread``.

The file descriptor stays ours wherever the device lives. The device is not persistent:
closing the descriptor deletes it, so a DMS that crashes leaves no device behind (the kernel
closes its descriptors). :func:`remove_stale_devices` exists for the host namespace anyway,
for devices someone made persistent or left by an older version.

Devices are opened with ``IFF_VNET_HDR`` and, unless ``offload=False``, checksum and TCPv4
segmentation offload (``TUNSETOFFLOAD``): the kernel then hands over TCP data in packets of up
to 64 KiB and segments what we write back (see :mod:`._packets`; bench/README.md has the
figures with and without).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import hashlib
import ipaddress
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from dms.errors import DMSError

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO_ECN = 0x08
CLONE_NEWNET = 0x40000000

#: Linux interface names hold at most 15 characters.
IFNAMSIZ = 15
#: Prefix of every device we create (``remove_stale_devices`` looks for it).
DEVICE_PREFIX = "nn"
DEFAULT_MTU = 1420

T = TypeVar("T")


class TunError(DMSError):
    """A TUN device could not be created or configured."""


@dataclass
class TunDevice:
    """One open TUN device: its name, namespace, descriptor and addresses."""

    name: str
    fd: int
    netns: str | None
    offload: bool
    addresses: list[ipaddress.IPv4Interface] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        """Close the descriptor, which deletes the device (idempotent)."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)


def device_name(subnet_id: str, ip: ipaddress.IPv4Address, prefix: str = DEVICE_PREFIX) -> str:
    """``nn`` + 7 hex digits of the subnet ID's hash + ``-`` + the address's low 16 bits in hex.

    At most 15 characters, unique per (subnet, address) on a host, and readable: every device
    of one subnet shares the middle part, and the suffix is the host part of the address
    (``nn3fa29c1-105`` is 10.x.1.5 of subnet 3fa29c1...).
    """
    digest = hashlib.sha256(subnet_id.encode()).hexdigest()[:7]
    name = f"{prefix}{digest}-{int(ip) & 0xFFFF:x}"
    return name[:IFNAMSIZ]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _iproute() -> Any:
    """A pyroute2 blocking ``IPRoute`` socket in the calling thread's namespace (pyroute2 is
    imported on first use: it is not small)."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    return IPRoute()


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns({path}): {os.strerror(code)}")
    finally:
        os.close(fd)


def _run_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread that first enters ``netns`` (None: stay in ours)."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            if netns is not None:
                _setns(netns)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body, name="dms-netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _open_tun(name: str, offload: bool) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN if offload else 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _disable_ipv6(name: str) -> None:
    # Net sysctls resolve in the opening thread's namespace. No IPv6 on the device means no
    # router solicitations or MLD reports for us to read and drop.
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass  # IPv6 disabled or absent in this kernel / namespace


def _create(name: str, iface: ipaddress.IPv4Interface, mtu: int, offload: bool) -> int:
    fd = _open_tun(name, offload)
    try:
        with _iproute() as ipr:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=index, mtu=mtu)
            _disable_ipv6(name)
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            ipr.link("set", index=index, state="up")
    except BaseException:
        os.close(fd)
        raise
    return fd


async def create_tun(
    name: str,
    iface: ipaddress.IPv4Interface,
    *,
    netns: str | None = None,
    mtu: int = DEFAULT_MTU,
    offload: bool = True,
) -> TunDevice:
    """Create TUN ``name`` in ``netns`` (a path such as ``/proc/<pid>/ns/net`` or
    ``/run/netns/<name>``; None = our own namespace) with ``iface`` (ip/prefix) and ``mtu``, up.
    """
    if len(name) > IFNAMSIZ:
        raise TunError(f"device name {name!r} is longer than {IFNAMSIZ} characters")
    if netns is not None and not os.path.exists(netns):
        raise TunError(f"network namespace {netns} does not exist")
    try:
        fd = await trio.to_thread.run_sync(
            _run_in_netns, netns, lambda: _create(name, iface, mtu, offload)
        )
    except OSError as exc:
        hint = " (needs root or CAP_NET_ADMIN)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
        raise TunError(f"cannot create TUN {name}: {exc.strerror or exc}{hint}") from None
    except Exception as exc:  # pyroute2's NetlinkError and friends
        raise TunError(f"cannot configure TUN {name}: {exc}") from None
    return TunDevice(name=name, fd=fd, netns=netns, offload=offload, addresses=[iface])


def _change_address(name: str, iface: ipaddress.IPv4Interface, command: str) -> None:
    with _iproute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        ipr.addr(command, index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


async def add_address(device: TunDevice, iface: ipaddress.IPv4Interface) -> None:
    """Add ``iface`` to ``device`` (in the device's namespace)."""
    try:
        await trio.to_thread.run_sync(
            _run_in_netns, device.netns, lambda: _change_address(device.name, iface, "add")
        )
    except Exception as exc:
        raise TunError(f"cannot add {iface} to {device.name}: {exc}") from None
    device.addresses.append(iface)


async def remove_address(device: TunDevice, iface: ipaddress.IPv4Interface) -> None:
    """Remove ``iface`` from ``device`` (a missing address is not an error)."""
    if iface in device.addresses:
        device.addresses.remove(iface)
    try:
        await trio.to_thread.run_sync(
            _run_in_netns, device.netns, lambda: _change_address(device.name, iface, "del")
        )
    except Exception as exc:
        log.debug("removing %s from %s: %s", iface, device.name, exc)


def _remove_stale(prefix: str) -> list[str]:
    removed = []
    with _iproute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME") or ""
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if name.startswith(prefix) and kind == "tun":
                try:
                    ipr.link("del", index=link["index"])
                    removed.append(name)
                except Exception as exc:  # in use by a live DMS: it is not stale
                    log.info("stale device %s not removed: %s", name, exc)
    return removed


async def remove_stale_devices(prefix: str = DEVICE_PREFIX) -> list[str]:
    """Delete TUN devices named ``prefix*`` in the host namespace; return their names.

    For start-up: our devices are not persistent and vanish with the process that opened them,
    so anything found here was left by someone else's persistent device or an older version.
    Call it before creating devices (it does not know which devices are in use).
    """
    return await trio.to_thread.run_sync(_remove_stale, prefix)


__all__ = [
    "DEFAULT_MTU",
    "DEVICE_PREFIX",
    "TunDevice",
    "TunError",
    "add_address",
    "create_tun",
    "device_name",
    "remove_address",
    "remove_stale_devices",
]
