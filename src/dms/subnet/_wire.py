"""Wire payloads of subnets between an orchestrator, its providers and allocations (spec §2.7,
§2.8, §8 "Provisioning").

Go's structs carry no json tags, so keys are the field names; decoding is lenient as Go's
(keys matched case-insensitively, unknown keys ignored). Sources: ``dms/orchestrator/subnet.go``
(``SubnetCreateRequest{SubnetID, IP, RoutingTable}``, ``SubnetJoinRequest{SubnetID, PeerID, IP,
Records}``) and ``dms/behaviors/payloads.go`` (the allocation payloads); every response is
``{OK, Error}``.

Behaviours:

* node, per ensemble (Go's dynamic templates; the node adds them when it allocates for the
  ensemble and grants the orchestrator ``/dms/ensemble/<id>``):
  ``/dms/ensemble/<id>/node/subnet/{create,join,destroy}``. The static
  ``/dms/node/subnet/...`` forms answer the same for a caller holding ``/dms/node``.
* allocation: ``/dms/allocation/subnet/{add-peer,remove-peers,accept-peers,map-port,
  unmap-port}`` and ``/dms/allocation/subnet/dns/{add-records,remove-records}``.

Ours, beside Go's: ``SubnetCreateRequest.CIDR`` (Go's providers derive the network from the
routing table's addresses; we send it so a provider can check it against its own routes) and
``GatewayIP``. A Go provider ignores both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dms import gojson
from dms.errors import InvalidInput

SUBNET_CREATE = "/dms/node/subnet/create"
SUBNET_JOIN = "/dms/node/subnet/join"
SUBNET_DESTROY = "/dms/node/subnet/destroy"
SUBNET_ADD_PEER = "/dms/allocation/subnet/add-peer"
SUBNET_REMOVE_PEERS = "/dms/allocation/subnet/remove-peers"
SUBNET_ACCEPT_PEERS = "/dms/allocation/subnet/accept-peers"
SUBNET_MAP_PORT = "/dms/allocation/subnet/map-port"
SUBNET_UNMAP_PORT = "/dms/allocation/subnet/unmap-port"
SUBNET_DNS_ADD = "/dms/allocation/subnet/dns/add-records"
SUBNET_DNS_REMOVE = "/dms/allocation/subnet/dns/remove-records"

#: The allocation behaviours an orchestrator is granted for a subnet.
ALLOCATION_SUBNET_BEHAVIORS = (
    SUBNET_ADD_PEER,
    SUBNET_REMOVE_PEERS,
    SUBNET_ACCEPT_PEERS,
    SUBNET_MAP_PORT,
    SUBNET_UNMAP_PORT,
    SUBNET_DNS_ADD,
    SUBNET_DNS_REMOVE,
)


# -- lenient decoding: Go's rules, from dms.gojson (fields matched case-insensitively) ---------


def _loads(data: Any, what: str) -> Any:
    if isinstance(data, bytes | bytearray | memoryview | str):
        return gojson.loads(data, what)
    return data


def _obj(data: Any, what: str) -> dict[str, Any]:
    return gojson.folded(data, what)


def _get(obj: Mapping[str, Any], name: str) -> Any:
    return obj.get(gojson.fold(name))


def _str(obj: Mapping[str, Any], name: str) -> str:
    return gojson.str_value(_get(obj, name), name)


def _strings(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    return gojson.strings_value(_get(obj, name), name) or ()


def ensemble_namespace(ensemble_id: str) -> str:
    """Go's ``/dms/ensemble/%s``: the capability a node grants an ensemble's orchestrator."""
    return f"/dms/ensemble/{ensemble_id}"


def ensemble_behavior(ensemble_id: str, static: str) -> str:
    """The dynamic form of a ``/dms/node/subnet/...`` behaviour for one ensemble."""
    return ensemble_namespace(ensemble_id) + static.removeprefix("/dms")


def _ipv4(value: str, what: str, *, required: bool = True) -> str:
    if not value and not required:
        return ""
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise InvalidInput(f"{what}: {value!r} is not an IPv4 address") from None


def _ip_map(value: Any, what: str, *, keys_are_ips: bool) -> dict[str, str]:
    """A ``map[string]string`` whose keys (routing tables) or values (DNS records) are IPs."""
    out: dict[str, str] = {}
    for k, v in gojson.pairs(value, what) or ():  # a repeated key: the last wins, as in Go
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidInput(f"{what}: expected string keys and values")
        if keys_are_ips:
            out[_ipv4(k, what)] = v
        else:
            out[k] = _ipv4(v, what)
    return out


class _Payload:
    """``to_json`` through :func:`dms.gojson.marshal` of ``__gojson__``."""

    def __gojson__(self) -> gojson.Struct:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def to_json(self) -> bytes:
        return gojson.marshal(self)


@dataclass(frozen=True)
class SubnetCreate(_Payload):
    """Go ``SubnetCreateRequest{SubnetID, IP, RoutingTable}`` (+ our ``CIDR``, ``GatewayIP``)."""

    subnet_id: str
    routing_table: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""
    cidr: str = ""
    gateway_ip: str = ""

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(
            SubnetID=self.subnet_id, IP=self.ip, RoutingTable=dict(self.routing_table)
        )
        if self.cidr:
            out["CIDR"] = self.cidr
        if self.gateway_ip:
            out["GatewayIP"] = self.gateway_ip
        return out

    @classmethod
    def from_json(cls, data: Any) -> SubnetCreate:
        obj = _obj(_loads(data, "subnet create"), "subnet create")
        table = _ip_map(_get(obj, "RoutingTable"), "RoutingTable", keys_are_ips=True)
        cidr = _str(obj, "CIDR")
        if cidr:
            try:
                cidr = str(ipaddress.IPv4Network(cidr))
            except ValueError:
                raise InvalidInput(f"CIDR: {cidr!r} is not an IPv4 network") from None
        elif table:  # a Go orchestrator: the /24 of its addresses
            cidr = str(ipaddress.IPv4Network(f"{next(iter(table))}/24", strict=False))
        return cls(
            subnet_id=_required(obj, "SubnetID"),
            routing_table=table,
            ip=_ipv4(_str(obj, "IP"), "IP", required=False),
            cidr=cidr,
            gateway_ip=_ipv4(_str(obj, "GatewayIP"), "GatewayIP", required=False),
        )


@dataclass(frozen=True)
class SubnetJoin(_Payload):
    """Go ``SubnetJoinRequest{SubnetID, PeerID, IP, RoutingTable, Records}``: this host joins
    with ``IP``. ``RoutingTable`` is in the newer Go struct (its restore path sends it); an
    older Go orchestrator omits it, and the joiner then learns routes from ``accept-peers``."""

    subnet_id: str
    peer_id: str
    ip: str
    records: Mapping[str, str] = field(default_factory=dict)
    routing_table: Mapping[str, str] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            SubnetID=self.subnet_id,
            PeerID=self.peer_id,
            IP=self.ip,
            RoutingTable=dict(self.routing_table),
            Records=dict(self.records),
        )

    @classmethod
    def from_json(cls, data: Any) -> SubnetJoin:
        obj = _obj(_loads(data, "subnet join"), "subnet join")
        return cls(
            subnet_id=_required(obj, "SubnetID"),
            peer_id=_str(obj, "PeerID"),
            ip=_ipv4(_str(obj, "IP"), "IP"),
            records=_ip_map(_get(obj, "Records"), "Records", keys_are_ips=False),
            routing_table=_ip_map(_get(obj, "RoutingTable"), "RoutingTable", keys_are_ips=True),
        )


@dataclass(frozen=True)
class SubnetDestroy(_Payload):
    """Go ``SubnetDestroyRequest{SubnetID}``."""

    subnet_id: str

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(SubnetID=self.subnet_id)

    @classmethod
    def from_json(cls, data: Any) -> SubnetDestroy:
        obj = _obj(_loads(data, "subnet destroy"), "subnet destroy")
        return cls(_required(obj, "SubnetID"))


@dataclass(frozen=True)
class SubnetAddPeer(_Payload):
    """Go ``SubnetAddPeerRequest{SubnetID, PeerID, IP}``: the allocation's own address."""

    subnet_id: str
    peer_id: str
    ip: str

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(SubnetID=self.subnet_id, PeerID=self.peer_id, IP=self.ip)

    @classmethod
    def from_json(cls, data: Any) -> SubnetAddPeer:
        obj = _obj(_loads(data, "subnet add-peer"), "subnet add-peer")
        return cls(_required(obj, "SubnetID"), _str(obj, "PeerID"), _ipv4(_str(obj, "IP"), "IP"))


@dataclass(frozen=True)
class SubnetPeers(_Payload):
    """Go ``SubnetAcceptPeersRequest`` / ``SubnetRemovePeersRequest``
    ``{SubnetID, PartialRoutingTable}`` (ip -> peer ID)."""

    subnet_id: str
    routes: Mapping[str, str] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(SubnetID=self.subnet_id, PartialRoutingTable=dict(self.routes))

    @classmethod
    def from_json(cls, data: Any) -> SubnetPeers:
        obj = _obj(_loads(data, "subnet peers"), "subnet peers")
        table = _ip_map(_get(obj, "PartialRoutingTable"), "PartialRoutingTable", keys_are_ips=True)
        return cls(_required(obj, "SubnetID"), table)


@dataclass(frozen=True)
class SubnetPortMap(_Payload):
    """Go ``SubnetMapPortRequest`` / ``SubnetUnmapPortRequest`` (ports as decimal strings)."""

    subnet_id: str
    protocol: str
    source_ip: str
    source_port: int
    dest_ip: str
    dest_port: int

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            SubnetID=self.subnet_id,
            Protocol=self.protocol,
            SourceIP=self.source_ip,
            SourcePort=str(self.source_port),
            DestIP=self.dest_ip,
            DestPort=str(self.dest_port),
        )

    @classmethod
    def from_json(cls, data: Any) -> SubnetPortMap:
        obj = _obj(_loads(data, "subnet port mapping"), "subnet port mapping")
        protocol = (_str(obj, "Protocol") or "TCP").upper()
        if protocol not in ("TCP", "UDP"):
            raise InvalidInput(f"Protocol: {protocol!r} is not TCP or UDP")
        return cls(
            subnet_id=_required(obj, "SubnetID"),
            protocol=protocol,
            source_ip=_ipv4(_str(obj, "SourceIP") or "0.0.0.0", "SourceIP"),
            source_port=_port(_str(obj, "SourcePort"), "SourcePort"),
            dest_ip=_ipv4(_str(obj, "DestIP"), "DestIP"),
            dest_port=_port(_str(obj, "DestPort"), "DestPort"),
        )


@dataclass(frozen=True)
class SubnetDNSAdd(_Payload):
    """Go ``SubnetDNSAddRecordsRequest{SubnetID, Records}`` (dns name -> ip)."""

    subnet_id: str
    records: Mapping[str, str] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(SubnetID=self.subnet_id, Records=dict(self.records))

    @classmethod
    def from_json(cls, data: Any) -> SubnetDNSAdd:
        obj = _obj(_loads(data, "dns add-records"), "dns add-records")
        records = _ip_map(_get(obj, "Records"), "Records", keys_are_ips=False)
        return cls(_required(obj, "SubnetID"), records)


@dataclass(frozen=True)
class SubnetDNSRemove(_Payload):
    """Go ``SubnetDNSRemoveRecordsRequest{SubnetID, DomainNames}``."""

    subnet_id: str
    names: tuple[str, ...] = ()

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(SubnetID=self.subnet_id, DomainNames=list(self.names))

    @classmethod
    def from_json(cls, data: Any) -> SubnetDNSRemove:
        obj = _obj(_loads(data, "dns remove-records"), "dns remove-records")
        return cls(_required(obj, "SubnetID"), _strings(obj, "DomainNames"))


def _required(obj: Mapping[str, Any], name: str) -> str:
    value = _str(obj, name)
    if not value:
        raise InvalidInput(f"{name} is required")
    return value


def _port(value: str, what: str) -> int:
    try:
        port = int(value or "0")
    except ValueError:
        raise InvalidInput(f"{what}: {value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise InvalidInput(f"{what}: {port} is out of range")
    return port
