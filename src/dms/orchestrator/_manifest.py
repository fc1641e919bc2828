"""The ensemble manifest: where each node and allocation of a deployment ended up (spec §8).

Go's ``EnsembleManifest`` (``dms/jobs/types/manifest.go``) with its json tags; keys in Go's field
order so a Go CLI reads ours. Two fields are ours, after Go's (Go ignores unknown keys):
an allocation's ``exit_code`` and ``error`` once it ended, so ``nunet deployment manifest``
answers "how did it end?" without another round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dms import gojson
from dms.actor import Handle
from dms.resources import Location

#: Allocation statuses (Go's ``AllocationStatus`` strings).
ALLOC_PENDING = "pending"
ALLOC_RUNNING = "running"
ALLOC_STOPPED = "stopped"
ALLOC_FAILED = "failed"
ALLOC_COMPLETED = "completed"
ALLOC_TERMINATED = "terminated"


def _handle(value: Any) -> Handle:
    if not value:
        return Handle()
    return Handle.from_value(value)


def healthcheck_struct(healthcheck: Mapping[str, Any]) -> gojson.Struct:
    """Go's ``types.HealthCheckManifest`` (every field always present, as Go marshals a struct)
    from a mapping with its json keys (``type``, ``exec``, ``endpoint``, ``response``,
    ``interval`` in ns); missing keys are Go's zero values."""
    folded = gojson.folded(healthcheck, "healthcheck")
    response = folded.get("response")
    if not isinstance(response, Mapping):
        response = {}
    response = gojson.folded(response, "healthcheck.response")
    exec_ = folded.get("exec")
    return gojson.Struct(
        type=str(folded.get("type") or ""),
        exec=[str(a) for a in exec_] if exec_ else None,
        endpoint=str(folded.get("endpoint") or ""),
        response=gojson.Struct(
            type=str(response.get("type") or ""), value=str(response.get("value") or "")
        ),
        interval=int(folded.get("interval") or 0),
    )


def _fold(data: Any, what: str) -> dict[str, Any]:
    """A JSON object keyed by :func:`dms.gojson.fold` of its keys (Go's field matching)."""
    return gojson.folded(data, what)


@dataclass
class AllocationManifest:
    """One allocation: where it runs and how it is doing."""

    id: str
    node_id: str
    handle: Handle = field(default_factory=Handle)
    dns_name: str = ""
    priv_addr: str = ""
    ports: dict[int, int] = field(default_factory=dict)  # public -> private
    healthcheck: Mapping[str, Any] = field(default_factory=dict)
    status: str = ALLOC_PENDING
    exit_code: int | None = None
    error: str = ""
    #: Ours (omitted when 0): how many times the orchestrator restarted it or moved it.
    restarts: int = 0

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(
            id=self.id,
            node_id=self.node_id,
            handle=self.handle,
            dns_name=self.dns_name,
            priv_addr=self.priv_addr,
        )
        if self.ports:
            out["ports"] = {str(k): v for k, v in self.ports.items()}
        out["healthcheck"] = healthcheck_struct(self.healthcheck)
        out["status"] = self.status
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.error:
            out["error"] = self.error
        if self.restarts:
            out["restarts"] = self.restarts
        return out

    @classmethod
    def from_json(cls, data: Any) -> AllocationManifest:
        obj = _fold(data, "allocation manifest")
        exit_code = obj.get("exit_code")
        return cls(
            id=str(obj.get("id") or ""),
            node_id=str(obj.get("node_id") or ""),
            handle=_handle(obj.get("handle")),
            dns_name=str(obj.get("dns_name") or ""),
            priv_addr=str(obj.get("priv_addr") or ""),
            ports={int(k): int(v) for k, v in (obj.get("ports") or {}).items()},
            healthcheck=dict(obj.get("healthcheck") or {}),
            status=str(obj.get("status") or ALLOC_PENDING),
            exit_code=int(exit_code) if isinstance(exit_code, int) else None,
            error=str(obj.get("error") or ""),
            restarts=int(obj.get("restarts") or 0),
        )


@dataclass
class NodeManifest:
    """One ensemble node: the peer it landed on."""

    id: str
    peer: str = ""
    handle: Handle = field(default_factory=Handle)
    pub_addrss: list[str] = field(default_factory=list)  # sic: Go's tag
    location: Location = field(default_factory=Location)
    allocations: list[str] = field(default_factory=list)

    def __gojson__(self) -> gojson.Struct:
        out = gojson.Struct(id=self.id)
        if self.peer:
            out["peer"] = self.peer
        out["handle"] = self.handle
        out["pub_addrss"] = list(self.pub_addrss) or None
        out["location"] = self.location
        out["allocations"] = list(self.allocations) or None
        return out

    @classmethod
    def from_json(cls, data: Any) -> NodeManifest:
        obj = _fold(data, "node manifest")
        return cls(
            id=str(obj.get("id") or ""),
            peer=str(obj.get("peer") or ""),
            handle=_handle(obj.get("handle")),
            pub_addrss=[str(a) for a in obj.get("pub_addrss") or []],
            location=Location.from_json(obj.get("location")),
            allocations=[str(a) for a in obj.get("allocations") or []],
        )


@dataclass
class EnsembleManifest:
    """The whole deployment: Go's ``EnsembleManifest``."""

    id: str
    orchestrator: Handle = field(default_factory=Handle)
    allocations: dict[str, AllocationManifest] = field(default_factory=dict)
    nodes: dict[str, NodeManifest] = field(default_factory=dict)

    def __gojson__(self) -> gojson.Struct:
        return gojson.Struct(
            id=self.id,
            orchestrator=self.orchestrator,
            allocations=dict(self.allocations) or None,
            nodes=dict(self.nodes) or None,
        )

    def to_json(self) -> bytes:
        """Go's ``json.Marshal`` bytes."""
        return gojson.marshal(self)

    @classmethod
    def from_json(cls, data: Any) -> EnsembleManifest:
        obj = _fold(data, "manifest")
        return cls(
            id=str(obj.get("id") or ""),
            orchestrator=_handle(obj.get("orchestrator")),
            allocations={
                str(k): AllocationManifest.from_json(v)
                for k, v in (obj.get("allocations") or {}).items()
            },
            nodes={str(k): NodeManifest.from_json(v) for k, v in (obj.get("nodes") or {}).items()},
        )
