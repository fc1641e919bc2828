"""Can this process run subnets? A provider must know before it bids.

Subnets need TUN devices, and a TUN device needs three things the kernel checks separately:
``CAP_NET_ADMIN`` in the effective set, a ``/dev/net/tun`` this process may open (containers
often lack it or the cgroup forbids it), and a kernel that accepts ``TUNSETIFF``. The probe
checks all three by doing what the packet path will do: it creates a throwaway, non-persistent
device (``dmsprobeN``) and closes it at once, which makes the kernel delete it. The answer
does not change while the process runs, so it is computed once (``cache_clear`` for tests).

The reason is one line, for ``nunet executor list``/status and for declined bids.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

TUN_PATH = "/dev/net/tun"
CAP_NET_ADMIN = 12  # linux/capability.h
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_PROBE_NAME = b"dmsprobe%d"  # the kernel replaces %d with a free number


@dataclass(frozen=True)
class SubnetCapability:
    """Whether this node can create TUN devices; ``reason`` says why not (empty if it can)."""

    available: bool
    reason: str = ""


def cap_eff_from_status(status_text: str) -> int | None:
    """The ``CapEff`` bit mask of a ``/proc/<pid>/status`` text, ``None`` if absent."""
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def cap_net_admin_reason(status_text: str) -> str | None:
    """Why ``CAP_NET_ADMIN`` is missing from a status text, or ``None`` if it is there."""
    cap_eff = cap_eff_from_status(status_text)
    if cap_eff is None:
        return "cannot read the process capabilities (no CapEff in /proc/self/status)"
    if not cap_eff >> CAP_NET_ADMIN & 1:
        return "no CAP_NET_ADMIN (run as root or grant cap_net_admin)"
    return None


def tun_reason(path: str = TUN_PATH) -> str | None:
    """Why a TUN device cannot be created through ``path``, or ``None`` if one could."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"{path} missing (load the tun module, or pass the device to the container)"
    except OSError as exc:
        return f"cannot open {path}: {exc.strerror or exc}"
    try:
        request = struct.pack("16sH", _PROBE_NAME, _IFF_TUN | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return "no CAP_NET_ADMIN (run as root or grant cap_net_admin)"
        return f"cannot create a TUN device through {path}: {exc.strerror or exc}"
    finally:
        os.close(fd)  # a non-persistent device is deleted with its last descriptor
    return None


@functools.cache
def subnet_capability() -> SubnetCapability:
    """Probe once: ``CAP_NET_ADMIN`` (the clearest reason), then a real TUN device."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    reason = cap_net_admin_reason(status) or tun_reason()
    if reason:
        return SubnetCapability(False, reason)
    return SubnetCapability(True)
