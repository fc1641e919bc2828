"""Wire payloads of deployments between an orchestrator and its providers (spec §2.7, §2.8, §8).

Outgoing payloads are Go's ``encoding/json`` bytes of the Go DMS structs; incoming ones are
decoded leniently, as Go does (keys matched case-insensitively, unknown keys ignored).

Which Go version we match (the Go DMS changed these structs several times):

* bids: ``dms/jobs/types/bid.go``@f3a4de1 (the version spec §8 cites). ``BidRequestV1`` and
  ``BidV1`` carry no json tags, so their keys are Go field names. ``EnsembleBidRequest`` has
  ``ID``, ``Nonce`` (spec §8; newer Go providers skip a nonce they already answered),
  ``Request`` and ``PeerExclusion``. ``BidV1`` has no ``PromiseBid`` field in that version, so
  none is sent (a newer Go orchestrator reads the missing key as false).
* the bid signature (Go's ``Bid.SignatureData``): ``"dms-bid-"`` + ``json.Marshal`` of a copy of
  ``BidV1`` whose ``Signature`` is set to nil, so the signed bytes end in ``"Signature":null``
  (the field is nil'd, not omitted). Signed with the node key as libp2p signs (Ed25519: raw),
  verified with the key inside the ``Peer`` ID.
* ``Location`` / ``LocationConstraints``: the tagged generation of ``jobtypes``
  (``{"continent","country","city","asn","isp"}`` and ``{"accept","reject"}``, all omitempty),
  which is what :class:`dms.resources.Location` marshals.
* commit/allocate/revert: ``dms/orchestrator/commit.go``@6d9f62f and
  ``dms/jobs/types/behaviors.go``@6ba1c7e: ``CommitDeploymentRequest.Resources`` is a
  ``types.CommittedResources`` (embedded ``BaseDBModel`` and ``Resources`` plus
  ``"allocationID"``), ``PortMapping`` a ``map[int]int`` (keys sorted as strings, as Go does).
* task termination: the tagged ``TaskTerminationNotification``
  (``{"allocation_id","status","error":{"err","exit_code","killed"},"stdout","stderr"}``).

Our extensions ride in keys a Go peer ignores and never inside signed bytes: ``Explain`` in a bid
request, ``Free`` beside ``V1`` in a bid, ``Decline`` replies, ``DNSName``/``DependsOn`` in an
allocation config (Go's ``AllocationDeploymentConfig`` has neither), ``Ports`` (the leased
public ports) in an allocate response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dms import gojson
from dms.actor import Handle
from dms.crypto import PeerID, PrivateKey, extract_public_key
from dms.db import ALLOCATION_RECORD_STATUSES
from dms.errors import InvalidInput
from dms.executor import SpecConfig
from dms.jobs._model import LocationConstraints
from dms.resources import Location, Resources

# -- behaviour names (Go's dms/behaviors) -----------------------------------------------------

BID_REQUEST_TOPIC = "/nunet/deployment"
DEPLOYMENT_REQUEST = "/dms/deployment/request"
DEPLOYMENT_BID = "/dms/deployment/bid"
DEPLOYMENT_COMMIT = "/dms/deployment/commit"
DEPLOYMENT_ALLOCATE = "/dms/deployment/allocate"
DEPLOYMENT_REVERT = "/dms/deployment/revert"
EDGE_CONSTRAINT = "/dms/deployment/constraint/edge"
ALLOCATION_START = "/dms/allocation/start"
ALLOCATION_STOP = "/dms/allocation/stop"
ALLOCATION_STATUS = "/dms/allocation/status"
ALLOCATION_LOGS = "/dms/allocation/logs"
TASK_TERMINATION = "/dms/orchestrator/task-termination"

ALLOCATION_RESTART = "/dms/allocation/restart"
HEALTHCHECK_REGISTER = "/dms/actor/healthcheck/register"
HEALTHCHECK = "/dms/actor/healthcheck"

#: The allocation behaviours an orchestrator is granted on the allocations it deployed.
ALLOCATION_BEHAVIORS = (
    ALLOCATION_START,
    ALLOCATION_STOP,
    ALLOCATION_STATUS,
    ALLOCATION_LOGS,
    ALLOCATION_RESTART,
    HEALTHCHECK_REGISTER,
    HEALTHCHECK,
)

#: Prefix of the signed bytes of a bid (Go's ``bidPrefix``).
BID_PREFIX = b"dms-bid-"
#: What Go's zero ``time.Time`` marshals to (the ``BaseDBModel`` times of a commit request).
ZERO_TIME = "0001-01-01T00:00:00Z"

#: Why a provider did not bid for a node (:attr:`BidDecline.reason`).
DECLINE_REASONS = (
    "not_onboarded",
    "executor",
    "resources",
    "location",
    "privileged",
    "ports",
    "excluded",
    "pinned",
    "busy",
    "subnet",
    "other",
)

#: Go allocation status strings (``AllocationStatus``).
ALLOCATION_STATUSES = ALLOCATION_RECORD_STATUSES  # one list, kept by the store


def allocation_id(ensemble_id: str, alloc_name: str) -> str:
    """The provider-side ID of an allocation (Go's older ``ConstructAllocationID``).

    Allocation names are unique within an ensemble, so this is unique per provider.
    """
    return f"{ensemble_id}_{alloc_name}"


# -- lenient decoding ---------------------------------------------------------------------------


def _loads(data: Any, what: str) -> Any:
    if isinstance(data, bytes | bytearray | str):
        try:
            return json.loads(data)
        except ValueError as exc:
            raise InvalidInput(f"{what}: not JSON: {exc}") from None
    return data


def _obj(data: Any, what: str) -> dict[str, Any]:
    """A JSON object keyed by :func:`dms.gojson.fold` of its keys (Go's field matching)."""
    return gojson.folded(data, what)


def _get(obj: Mapping[str, Any], *names: str) -> Any:
    """The first of the field ``names`` (aliases across Go versions) that is set."""
    for name in names:
        value = obj.get(gojson.fold(name))
        if value is not None:
            return value
    return None


def _str(obj: Mapping[str, Any], *names: str) -> str:
    value = _get(obj, *names)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{names[0]}: expected a string, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], *names: str) -> int:
    value = _get(obj, *names)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{names[0]}: expected a number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidInput(f"{names[0]}: expected an integer, got {value!r}")
    return int(value)


def _bool(obj: Mapping[str, Any], *names: str) -> bool:
    value = _get(obj, *names)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{names[0]}: expected a boolean, got {value!r}")
    return value


def _list(obj: Mapping[str, Any], *names: str) -> list[Any]:
    value = _get(obj, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{names[0]}: expected a list, got {type(value).__name__}")
    return value


def _strings(obj: Mapping[str, Any], *names: str) -> tuple[str, ...]:
    items = _list(obj, *names)
    if not all(isinstance(i, str) for i in items):
        raise InvalidInput(f"{names[0]}: expected a list of strings")
    return tuple(items)


def _bytes(obj: Mapping[str, Any], *names: str) -> bytes:
    value = _get(obj, *names)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise InvalidInput(f"{names[0]}: expected base64 text")
    return gojson.b64decode(value)


def _handle(value: Any) -> Handle:
    return Handle() if value is None else Handle.from_value(value)


# -- location constraints -----------------------------------------------------------------------


def constraints_gojson(constraints: LocationConstraints) -> gojson.Struct:
    """``LocationConstraints`` as Go marshals it: ``{"accept","reject"}``, both omitempty."""
    out = gojson.Struct()
    if constraints.accept:
        out["accept"] = list(constraints.accept)
    if constraints.reject:
        out["reject"] = list(constraints.reject)
    return out


def constraints_from_json(data: Any) -> LocationConstraints:
    """Lenient decode of a ``LocationConstraints`` object."""
    obj = _obj(data, "location constraints")
    return LocationConstraints(
        accept=tuple(Location.from_json(x) for x in _list(obj, "accept")),
        reject=tuple(Location.from_json(x) for x in _list(obj, "reject")),
    )


# -- bid requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BidRequest:
    """One node of an ensemble to bid for (Go ``BidRequest{V1: BidRequestV1}``).

    ``resources`` is the node's aggregate; ``static_ports`` the public ports the node names,
    ``dynamic_ports`` how many the provider must pick.
    """

    node_id: str
    executors: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    location: LocationConstraints = field(default_factory=LocationConstraints)
    static_ports: tuple[int, ...] = ()
    dynamic_ports: int = 0
    privileged_docker: bool = False
    #: Ours (a Go provider ignores it; sent only when true): the node's allocations join the
    #: ensemble's subnet, so the provider must be able to manage TUN devices.
    subnet: bool = False

    def __gojson__(self) -> gojson.Struct:
        v1 = gojson.Struct(
            NodeID=self.node_id,
            Executors=list(self.executors) if self.executors else None,
            Resources=self.resources,
            Location=constraints_gojson(self.location),
            PublicPorts=gojson.Struct(
                Static=list(self.static_ports) if self.static_ports else None,
                Dynamic=self.dynamic_ports,
            ),
            GeneralRequirements=gojson.Struct(PrivilegedDocker=self.privileged_docker),
        )
        if self.subnet:
            v1["Subnet"] = True
        return gojson.Struct(V1=v1)

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> BidRequest:
        """Decode ``{"V1":{...}}`` (or a bare V1 object); also reads the tagged Go names."""
        outer = _obj(_loads(data, "bid request"), "bid request")
        v1 = _obj(outer["v1"], "bid request V1") if "v1" in outer else outer
        ports = _obj(_get(v1, "PublicPorts", "public_ports"), "PublicPorts")
        general = _obj(_get(v1, "GeneralRequirements", "general_requirements"), "general")
        static = _list(ports, "Static")
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in static):
            raise InvalidInput("PublicPorts.Static: expected a list of port numbers")
        return cls(
            node_id=_str(v1, "NodeID", "node_id"),
            executors=_strings(v1, "Executors"),
            resources=Resources.from_json(_get(v1, "Resources")),
            location=constraints_from_json(_get(v1, "Location")),
            static_ports=tuple(static),
            dynamic_ports=_int(ports, "Dynamic"),
            privileged_docker=_bool(general, "PrivilegedDocker", "privileged_docker"),
            subnet=_bool(v1, "Subnet"),
        )


@dataclass(frozen=True)
class EnsembleBidRequest:
    """Go ``EnsembleBidRequest``; ``explain`` (ours) asks for an answer per node request."""

    id: str
    nonce: int = 0
    requests: tuple[BidRequest, ...] = ()
    peer_exclusion: tuple[str, ...] = ()
    explain: bool = False

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(
            ID=self.id,
            Nonce=self.nonce,
            Request=list(self.requests) if self.requests else None,
            PeerExclusion=list(self.peer_exclusion) if self.peer_exclusion else None,
        )
        if self.explain:
            out["Explain"] = True
        return out

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> EnsembleBidRequest:
        obj = _obj(_loads(data, "ensemble bid request"), "ensemble bid request")
        ensemble = _str(obj, "ID")
        if not ensemble:
            raise InvalidInput("ensemble bid request: ensemble id is empty")
        requests = tuple(BidRequest.from_json(r) for r in _list(obj, "Request"))
        if not requests:
            raise InvalidInput("ensemble bid request: no node requests")
        return cls(
            id=ensemble,
            nonce=_int(obj, "Nonce"),
            requests=requests,
            peer_exclusion=_strings(obj, "PeerExclusion", "peer_exclusion"),
            explain=_bool(obj, "Explain"),
        )


# -- bids and declines --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bid:
    """A signed bid for one node of an ensemble (Go ``Bid{V1: BidV1}``).

    ``free`` (ours) is what the provider has free when bidding; it travels beside ``V1``, outside
    the signed bytes, so a Go orchestrator verifies the signature all the same.
    """

    ensemble_id: str
    node_id: str
    peer: str
    location: Location = field(default_factory=Location)
    handle: Handle = field(default_factory=Handle)
    signature: bytes = b""
    free: Resources | None = None

    def _v1(self, signature: bytes | None) -> gojson.Struct:
        return gojson.Struct(
            EnsembleID=self.ensemble_id,
            NodeID=self.node_id,
            Peer=self.peer,
            Location=self.location,
            Handle=self.handle,
            Signature=signature,
        )

    def signature_data(self) -> bytes:
        """The signed bytes: ``dms-bid-`` + Go JSON of ``BidV1`` with ``Signature`` nil."""
        return BID_PREFIX + gojson.marshal(self._v1(None))

    def sign(self, key: PrivateKey) -> Bid:
        """This bid signed with ``key`` (the node's key, whose peer ID is :attr:`peer`)."""
        return replace(self, signature=key.sign(self.signature_data()))

    def verify(self) -> bool:
        """Whether :attr:`signature` is :attr:`peer`'s signature of this bid; False on any error."""
        if not self.signature:
            return False
        try:
            key = extract_public_key(PeerID.parse(self.peer))
            return bool(key.verify(self.signature_data(), self.signature))
        except Exception:  # fail closed: a bid we cannot check is a bad bid
            return False

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(V1=self._v1(self.signature or None))
        if self.free is not None:
            out["Free"] = self.free
        return out

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> Bid:
        outer = _obj(_loads(data, "bid"), "bid")
        if _get(outer, "V1") is None:
            raise InvalidInput("bid: V1 is nil")
        v1 = _obj(outer["v1"], "bid V1")
        free = _get(outer, "Free")
        return cls(
            ensemble_id=_str(v1, "EnsembleID"),
            node_id=_str(v1, "NodeID"),
            peer=_str(v1, "Peer"),
            location=Location.from_json(_get(v1, "Location")),
            handle=_handle(_get(v1, "Handle")),
            signature=_bytes(v1, "Signature"),
            free=None if free is None else Resources.from_json(free),
        )


@dataclass(frozen=True)
class BidDecline:
    """Why a provider does not bid for a node (ours; Go providers stay silent).

    ``reason`` is one of :data:`DECLINE_REASONS`; ``detail`` is one line for people ("RAM: 8 GiB
    requested, 2 GiB available"); ``free`` what the provider has free.
    """

    ensemble_id: str
    node_id: str
    peer: str
    reason: str
    detail: str = ""
    free: Resources | None = None

    def __gojson__(self) -> gojson.Struct:
        inner = gojson.Struct(
            EnsembleID=self.ensemble_id,
            NodeID=self.node_id,
            Peer=self.peer,
            Reason=self.reason,
            Detail=self.detail,
        )
        if self.free is not None:
            inner["Free"] = self.free
        return gojson.Struct(Decline=inner)

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> BidDecline:
        outer = _obj(_loads(data, "bid decline"), "bid decline")
        obj = _obj(_get(outer, "Decline"), "bid decline")
        reason = _str(obj, "Reason")
        free = _get(obj, "Free")
        return cls(
            ensemble_id=_str(obj, "EnsembleID"),
            node_id=_str(obj, "NodeID"),
            peer=_str(obj, "Peer"),
            reason=reason if reason in DECLINE_REASONS else "other",
            detail=_str(obj, "Detail"),
            free=None if free is None else Resources.from_json(free),
        )


def parse_bid_reply(data: Any) -> Bid | BidDecline:
    """A reply on ``/dms/deployment/bid``: a :class:`Bid` or (from our providers) a decline."""
    obj = _obj(_loads(data, "bid reply"), "bid reply")
    if _get(obj, "Decline") is not None:
        return BidDecline.from_json(obj)
    return Bid.from_json(obj)


# -- two-phase commit ---------------------------------------------------------------------------


def _port_map(mapping: Mapping[int, int]) -> dict[str, int]:
    return {str(public): private for public, private in mapping.items()}


def _port_map_from(value: Any, what: str) -> dict[int, int]:
    obj = _obj(value, what)
    out: dict[int, int] = {}
    for key, private in obj.items():
        try:
            public = int(key)
        except ValueError:
            raise InvalidInput(f"{what}: port {key!r} is not a number") from None
        if isinstance(private, bool) or not isinstance(private, int):
            raise InvalidInput(f"{what}: port {key} maps to {private!r}, not a port")
        out[public] = private
    return out


@dataclass(frozen=True)
class CommitRequest:
    """Go ``CommitDeploymentRequest``: reserve one allocation's resources and public ports.

    ``port_mapping`` maps public → private ports (public 0 = "pick one"; since a map key is
    unique, the orchestrator sends at most one such entry per allocation, as Go's does).
    """

    ensemble_id: str
    allocation_name: str
    node_id: str
    resources: Resources = field(default_factory=Resources)
    port_mapping: Mapping[int, int] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        committed = gojson.Struct(
            ID="", CreatedAt=ZERO_TIME, UpdatedAt=ZERO_TIME, DeletedAt=ZERO_TIME
        )
        committed.update(self.resources.__gojson__())
        committed["allocationID"] = ""
        return gojson.Struct(
            EnsembleID=self.ensemble_id,
            AllocationName=self.allocation_name,
            NodeID=self.node_id,
            Resources=committed,
            PortMapping=_port_map(self.port_mapping),
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> CommitRequest:
        obj = _obj(_loads(data, "commit request"), "commit request")
        return cls(
            ensemble_id=_str(obj, "EnsembleID"),
            allocation_name=_str(obj, "AllocationName"),
            node_id=_str(obj, "NodeID"),
            resources=Resources.from_json(_get(obj, "Resources")),
            port_mapping=_port_map_from(_get(obj, "PortMapping"), "PortMapping"),
        )


@dataclass(frozen=True)
class AllocationKey:
    """Go ``types.AllocationKey``: a key to install in the allocation (``ssh``/``gpg``)."""

    type: str
    file: str = ""
    dest: str = ""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(type=self.type, file=self.file, dest=self.dest)

    @classmethod
    def from_json(cls, data: Any) -> AllocationKey:
        obj = _obj(data, "allocation key")
        return cls(_str(obj, "type"), _str(obj, "file"), _str(obj, "dest"))


@dataclass(frozen=True)
class AllocationDeploymentConfig:
    """Go ``AllocationDeploymentConfig`` (what a provider needs to run one allocation).

    ``provision_scripts`` keep the order they run in (Go sends a map, whose JSON is sorted by
    name; ``provision_order`` (ours, omitted when it is the sorted order) restores the
    ensemble's order). ``dns_name`` and ``depends_on`` are ours (Go's struct has neither).
    ``volumes`` are carried as data only.
    """

    type: str
    executor: str
    resources: Resources = field(default_factory=Resources)
    execution: SpecConfig = field(default_factory=lambda: SpecConfig("null"))
    provision_scripts: tuple[tuple[str, bytes], ...] = ()
    keys: tuple[AllocationKey, ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    dns_name: str = ""
    depends_on: tuple[str, ...] = ()

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(
            Type=self.type,
            Executor=self.executor,
            Resources=self.resources,
            Execution=self.execution,
            ProvisionScripts=dict(self.provision_scripts),
            Keys=list(self.keys) if self.keys else None,
            Volume=[dict(v) for v in self.volumes] if self.volumes else None,
        )
        names = [name for name, _ in self.provision_scripts]
        if names != sorted(names):
            out["ProvisionOrder"] = names
        if self.dns_name:
            out["DNSName"] = self.dns_name
        if self.depends_on:
            out["DependsOn"] = list(self.depends_on)
        return out

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> AllocationDeploymentConfig:
        obj = _obj(_loads(data, "allocation config"), "allocation config")
        scripts_obj = _get(obj, "ProvisionScripts") or {}
        if not isinstance(scripts_obj, Mapping):
            raise InvalidInput("ProvisionScripts: expected an object")
        scripts = {str(k): gojson.b64decode(v) for k, v in scripts_obj.items()}
        order = list(_strings(obj, "ProvisionOrder")) or sorted(scripts)
        if sorted(order) != sorted(scripts):
            raise InvalidInput("ProvisionOrder does not name the provision scripts")
        execution = _get(obj, "Execution")
        volumes = _list(obj, "Volume")
        if not all(isinstance(v, Mapping) for v in volumes):
            raise InvalidInput("Volume: expected a list of objects")
        return cls(
            type=_str(obj, "Type") or "service",
            executor=_str(obj, "Executor"),
            resources=Resources.from_json(_get(obj, "Resources")),
            execution=SpecConfig("null") if execution is None else SpecConfig.from_json(execution),
            provision_scripts=tuple((name, scripts[name]) for name in order),
            keys=tuple(AllocationKey.from_json(k) for k in _list(obj, "Keys")),
            volumes=tuple(volumes),
            dns_name=_str(obj, "DNSName"),
            depends_on=_strings(obj, "DependsOn"),
        )


@dataclass(frozen=True)
class AllocateRequest:
    """Go ``AllocationDeploymentRequest``: turn a node's commitments into allocations."""

    ensemble_id: str
    node_id: str
    allocations: Mapping[str, AllocationDeploymentConfig] = field(default_factory=dict)
    #: Ours (key ``LivenessInterval``, ns, omitted when 0): how often the allocations should
    #: send liveness heartbeats to the orchestrator.
    liveness_interval_ns: int = 0

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(
            EnsembleID=self.ensemble_id,
            NodeID=self.node_id,
            Allocations=dict(self.allocations),
        )
        if self.liveness_interval_ns:
            out["LivenessInterval"] = self.liveness_interval_ns
        return out

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> AllocateRequest:
        obj = _obj(_loads(data, "allocate request"), "allocate request")
        allocs = _get(obj, "Allocations") or {}
        if not isinstance(allocs, Mapping):
            raise InvalidInput("Allocations: expected an object")
        return cls(
            ensemble_id=_str(obj, "EnsembleID"),
            node_id=_str(obj, "NodeID"),
            allocations={
                str(k): AllocationDeploymentConfig.from_json(v) for k, v in allocs.items()
            },
            liveness_interval_ns=max(0, _int(obj, "LivenessInterval")),
        )


@dataclass(frozen=True)
class AllocateResponse:
    """Go ``AllocationDeploymentResponse{OK, Error, Allocations map[name]Handle}``.

    ``ports`` (ours, key ``Ports``, omitted when empty) is each allocation's published ports
    as leased at commit, public -> private: a dynamic port (public 0 in the ensemble) is only
    known once the provider picked it, and the orchestrator's manifest must say which it is.
    """

    ok: bool
    error: str = ""
    allocations: Mapping[str, Handle] = field(default_factory=dict)
    ports: Mapping[str, Mapping[int, int]] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(OK=self.ok, Error=self.error, Allocations=dict(self.allocations))
        if self.ports:
            out["Ports"] = {name: _port_map(m) for name, m in self.ports.items()}
        return out

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> AllocateResponse:
        obj = _obj(_loads(data, "allocate response"), "allocate response")
        allocs = _get(obj, "Allocations") or {}
        if not isinstance(allocs, Mapping):
            raise InvalidInput("Allocations: expected an object")
        ports = _get(obj, "Ports") or {}
        if not isinstance(ports, Mapping):
            raise InvalidInput("Ports: expected an object")
        return cls(
            ok=_bool(obj, "OK"),
            error=_str(obj, "Error"),
            allocations={str(k): Handle.from_value(v) for k, v in allocs.items()},
            ports={str(k): _port_map_from(v, f"Ports.{k}") for k, v in ports.items()},
        )


@dataclass(frozen=True)
class RevertRequest:
    """Go ``RevertDeploymentMessage{EnsembleID, AllocsByName}`` (no reply in Go)."""

    ensemble_id: str
    allocs_by_name: tuple[str, ...] = ()

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            EnsembleID=self.ensemble_id,
            AllocsByName=list(self.allocs_by_name) if self.allocs_by_name else None,
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> RevertRequest:
        obj = _obj(_loads(data, "revert request"), "revert request")
        return cls(_str(obj, "EnsembleID"), _strings(obj, "AllocsByName"))


@dataclass(frozen=True)
class OkResponse:
    """Go's ``{OK, Error}`` responses (commit, revert, allocation start/stop)."""

    ok: bool
    error: str = ""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(OK=self.ok, Error=self.error)

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> OkResponse:
        obj = _obj(_loads(data, "response"), "response")
        return cls(_bool(obj, "OK"), _str(obj, "Error"))


# -- allocations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskTermination:
    """Go ``TaskTerminationNotification``: an allocation ended (sent to its orchestrator)."""

    allocation_id: str
    status: str
    error: str = ""
    exit_code: int = 0
    killed: bool = False
    stdout: bytes = b""
    stderr: bytes = b""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            allocation_id=self.allocation_id,
            status=self.status,
            error=gojson.Struct(err=self.error, exit_code=self.exit_code, killed=self.killed),
            stdout=self.stdout or None,
            stderr=self.stderr or None,
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> TaskTermination:
        obj = _obj(_loads(data, "task termination"), "task termination")
        err = _get(obj, "error")
        err_obj = _obj(err, "task termination error") if isinstance(err, Mapping) else {}
        return cls(
            allocation_id=_str(obj, "allocation_id", "AllocationID"),
            status=_str(obj, "status"),
            error=_str(err_obj, "err") if err_obj else "",
            exit_code=_int(err_obj, "exit_code", "ExitCode"),
            killed=_bool(err_obj, "killed"),
            stdout=_bytes(obj, "stdout"),
            stderr=_bytes(obj, "stderr"),
        )


@dataclass(frozen=True)
class AllocationStatus:
    """Our ``/dms/allocation/status`` answer; times are Unix ns (0 = not yet)."""

    allocation_id: str
    status: str
    exit_code: int | None = None
    error: str = ""
    started_at: int = 0
    finished_at: int = 0

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            allocation_id=self.allocation_id,
            status=self.status,
            exit_code=self.exit_code,
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> AllocationStatus:
        obj = _obj(_loads(data, "allocation status"), "allocation status")
        code = _get(obj, "exit_code")
        return cls(
            allocation_id=_str(obj, "allocation_id"),
            status=_str(obj, "status"),
            exit_code=None if code is None else _int(obj, "exit_code"),
            error=_str(obj, "error"),
            started_at=_int(obj, "started_at"),
            finished_at=_int(obj, "finished_at"),
        )


@dataclass(frozen=True)
class AllocationLogs:
    """Go's allocation logs response ``{Stdout []byte, Stderr []byte, Error}``."""

    stdout: bytes = b""
    stderr: bytes = b""
    error: str = ""

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            Stdout=self.stdout or None, Stderr=self.stderr or None, Error=self.error
        )

    def to_json(self) -> bytes:
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> AllocationLogs:
        obj = _obj(_loads(data, "allocation logs"), "allocation logs")
        return cls(_bytes(obj, "Stdout"), _bytes(obj, "Stderr"), _str(obj, "Error"))
