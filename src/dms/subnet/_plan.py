"""The orchestrator's plan of an ensemble's private network (Go's ``SubnetManifest``).

A random /24 inside 10.0.0.0/8 (Go's ``GetRandomCIDRInRange(24, 10.0.0.0, 10.255.255.255)``),
gateway ``.1`` and broadcast ``.255`` reserved, then one address per member allocation in the
order given (``.2``, ``.3``...), and one for the orchestrating DMS when it joins
(``subnet: {join: true}``). Kept in Go's JSON shape (``cidr``, ``gateway_ip``,
``broadcast_ip``, ``used_ips``, ``routing_table`` ip -> peer, ``index_routing_table``
allocation -> ip, ``dns_records`` name -> ip) so the deployment record reads like Go's.

Choosing the /24: networks the orchestrator's own host already routes are avoided, and a
provider that finds the /24 taken on its side refuses the subnet with the reason; the
orchestrator then plans again with that /24 excluded (:meth:`SubnetPlan.new` ``avoid``).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dms.errors import DMSError, InvalidInput

#: The name the orchestrator's own address goes by in ``index_routing_table`` (Go's
#: ``orchSubnetName``).
ORCHESTRATOR_NAME = "orchestrator"
#: The search domain of allocation names (``<dns_name>.internal``).
DNS_DOMAIN = "internal"

_SPACE = ipaddress.IPv4Network("10.0.0.0/8")


class SubnetExhausted(DMSError):
    """No free address (or no free /24) is left."""


def host_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this host routes already (from ``/proc/net/route``), to avoid them."""
    found: list[ipaddress.IPv4Network] = []
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) < 8:
                    continue
                dest = ipaddress.IPv4Address(bytes.fromhex(cols[1])[::-1])
                mask = ipaddress.IPv4Address(bytes.fromhex(cols[7])[::-1])
                if int(mask) == 0:
                    continue  # the default route overlaps everything
                found.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    except (OSError, ValueError):
        pass
    return found


def random_cidr(
    avoid: Iterable[ipaddress.IPv4Network] = (), rng: random.Random | None = None
) -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps none of ``avoid``."""
    rng = rng or random.SystemRandom()
    taken = [n for n in avoid if n.overlaps(_SPACE)]
    for _ in range(256):
        candidate = ipaddress.IPv4Network(
            (int(_SPACE.network_address) + (rng.randrange(65536) << 8), 24)
        )
        if not any(candidate.overlaps(n) for n in taken):
            return candidate
    raise SubnetExhausted("no free /24 in 10.0.0.0/8 after 256 tries (the host routes most of it)")


@dataclass
class SubnetPlan:
    """Addresses of one ensemble's subnet; mutable while allocations come and go."""

    cidr: ipaddress.IPv4Network
    used: set[str] = field(default_factory=set)
    routing_table: dict[str, str] = field(default_factory=dict)  # ip -> peer ID
    index: dict[str, str] = field(default_factory=dict)  # allocation name -> ip
    dns_records: dict[str, str] = field(default_factory=dict)  # dns name -> ip

    @classmethod
    def new(cls, avoid: Iterable[ipaddress.IPv4Network] = ()) -> SubnetPlan:
        cidr = random_cidr([*host_networks(), *avoid])
        plan = cls(cidr)
        plan.used |= {plan.gateway_ip, plan.broadcast_ip}
        return plan

    @property
    def gateway_ip(self) -> str:
        return str(self.cidr.network_address + 1)

    @property
    def broadcast_ip(self) -> str:
        return str(self.cidr.broadcast_address)

    @property
    def prefix(self) -> int:
        return self.cidr.prefixlen

    def add(self, name: str, peer: str, dns_name: str = "") -> str:
        """Give ``name`` (an allocation, or :data:`ORCHESTRATOR_NAME`) an address on ``peer``.

        An allocation that already has one keeps it (a moved allocation keeps its address: only
        the routing table changes, so its DNS record stays true).
        """
        ip = self.index.get(name)
        if ip is None:
            ip = self._next_free()
            self.index[name] = ip
            self.used.add(ip)
        self.routing_table[ip] = peer
        if dns_name:
            self.dns_records[dns_name] = ip
        return ip

    def move(self, name: str, peer: str) -> str:
        """``name`` now runs on ``peer``; its address stays."""
        ip = self.index[name]
        self.routing_table[ip] = peer
        return ip

    def remove(self, name: str) -> str | None:
        ip = self.index.pop(name, None)
        if ip is not None:
            self.used.discard(ip)
            self.routing_table.pop(ip, None)
            for record, value in list(self.dns_records.items()):
                if value == ip:
                    del self.dns_records[record]
        return ip

    def _next_free(self) -> str:
        for host in self.cidr.hosts():
            ip = str(host)
            if ip not in self.used:
                return ip
        raise SubnetExhausted(f"subnet {self.cidr} has no free address left")

    def peers(self) -> set[str]:
        return set(self.routing_table.values())

    # -- Go's SubnetManifest JSON --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "cidr": str(self.cidr),
            "gateway_ip": self.gateway_ip,
            "broadcast_ip": self.broadcast_ip,
            "used_ips": {ip: True for ip in sorted(self.used)},
            "routing_table": dict(self.routing_table),
            "index_routing_table": dict(self.index),
            "dns_records": dict(self.dns_records),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubnetPlan:
        try:
            cidr = ipaddress.IPv4Network(str(data["cidr"]))
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"subnet plan: bad cidr: {exc}") from None
        return cls(
            cidr=cidr,
            used={str(k) for k, v in dict(data.get("used_ips") or {}).items() if v},
            routing_table={
                str(k): str(v) for k, v in dict(data.get("routing_table") or {}).items()
            },
            index={str(k): str(v) for k, v in dict(data.get("index_routing_table") or {}).items()},
            dns_records={str(k): str(v) for k, v in dict(data.get("dns_records") or {}).items()},
        )
