"""Go's JSON of ``jobtypes.EnsembleConfig``: exact bytes out, lenient decoding in.

Field order and ``omitempty`` follow the newest Go tags (``dms/jobs/types/ensemble.go``):
``{"v1": {"escalation_strategy", "allocations", "nodes", "edges"?, "supervisor", "keys"?,
"scripts"?, "subnet", "exclude_peers"?, "metadata"?, "contracts"?}}``. Go's ``omitempty``
does nothing for struct fields, so ``supervisor``, ``subnet``, ``location`` and
``healthcheck`` are always written (``{}`` or a zero struct), and decoding maps those zero
values back to "none". Scripts are ``[]byte`` (base64); a health-check ``interval`` is a
``time.Duration`` (nanoseconds).

One known difference: allocation ``keys`` are the names of top-level keys (a list of strings),
as in the spec's YAML; the newest Go has objects (``{type, file, dest}``) there, so a Go peer
would not read a non-empty list.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from dms import gojson
from dms.errors import InvalidInput
from dms.executor import SpecConfig
from dms.jobs._fields import Reader
from dms.jobs._model import (
    AllocationConfig,
    EdgeConstraint,
    Ensemble,
    HealthCheck,
    LocationConstraints,
    NodeConfig,
    PortConfig,
    SupervisorConfig,
)
from dms.jobs._parse import decode_scripts
from dms.jobs._problems import EnsembleInvalid, Problem, Problems
from dms.jobs._validate import validate
from dms.jobs._wire import constraints_gojson
from dms.resources import Location, Resources

_NS = 1_000_000_000


# -- out ---------------------------------------------------------------------------------------


def _execution(spec: SpecConfig) -> gojson.Struct:
    out = gojson.Struct(type=spec.type)
    if spec.params:
        out["params"] = dict(spec.params)
    return out


def _healthcheck(check: HealthCheck | None) -> gojson.Struct:
    check = check or HealthCheck("")
    return gojson.Struct(
        type=check.type,
        exec=list(check.exec) if check.exec else None,
        endpoint=check.endpoint,
        response=gojson.Struct(type=check.response_type, value=check.response_value),
        interval=round((check.interval_s or 0) * _NS),
    )


def _allocation(alloc: AllocationConfig) -> gojson.Struct:
    out = gojson.Struct(
        executor=alloc.executor,
        type=alloc.type,
        resources=alloc.resources,
        execution=_execution(alloc.execution),
    )
    if alloc.dns_name:
        out["dns_name"] = alloc.dns_name
    if alloc.keys:
        out["keys"] = list(alloc.keys)
    if alloc.provision:
        out["provision"] = list(alloc.provision)
    out["healthcheck"] = _healthcheck(alloc.healthcheck)
    if alloc.volumes:
        out["volume"] = [dict(v) for v in alloc.volumes]
    if alloc.failure_recovery:
        out["failure_recovery"] = alloc.failure_recovery
    if alloc.depends_on:
        out["depends_on"] = list(alloc.depends_on)
    return out


def _node(node: NodeConfig) -> gojson.Struct:
    out = gojson.Struct(allocations=list(node.allocations))
    if node.ports:
        out["ports"] = [
            gojson.Struct(public=p.public, private=p.private, allocation=p.allocation)
            for p in node.ports
        ]
    out["location"] = constraints_gojson(node.location)
    if node.peer:
        out["peer"] = node.peer
    if node.redundancy:
        out["redundancy"] = node.redundancy
    if node.failure_recovery:
        out["failure_recovery"] = node.failure_recovery
    return out


def _supervisor(sup: SupervisorConfig | None) -> gojson.Struct:
    out = gojson.Struct()
    if sup is None:
        return out
    if sup.strategy:
        out["strategy"] = sup.strategy
    if sup.allocations:
        out["allocations"] = list(sup.allocations)
    if sup.children:
        out["children"] = [_supervisor(c) for c in sup.children]
    return out


def _edge(edge: EdgeConstraint) -> gojson.Struct:
    out = gojson.Struct(s=edge.s, t=edge.t)
    if edge.rtt:
        out["rtt"] = edge.rtt
    if edge.bw:
        out["bw"] = edge.bw
    return out


def ensemble_struct(ensemble: Ensemble) -> gojson.Struct:
    """The ``EnsembleConfig`` value for :func:`dms.gojson.marshal` (to embed it in a message)."""
    v1 = gojson.Struct(
        escalation_strategy=ensemble.escalation_strategy,
        allocations={k: _allocation(a) for k, a in ensemble.allocations.items()},
        nodes={k: _node(n) for k, n in ensemble.nodes.items()},
    )
    if ensemble.edges:
        v1["edges"] = [_edge(e) for e in ensemble.edges]
    v1["supervisor"] = _supervisor(ensemble.supervisor)
    if ensemble.keys:
        v1["keys"] = dict(ensemble.keys)
    if ensemble.scripts:
        v1["scripts"] = {k: bytes(v) for k, v in ensemble.scripts.items()}
    v1["subnet"] = gojson.Struct(join=True) if ensemble.subnet_join else gojson.Struct()
    if ensemble.exclude_peers:
        v1["exclude_peers"] = list(ensemble.exclude_peers)
    if ensemble.metadata:
        v1["metadata"] = dict(ensemble.metadata)
    if ensemble.contracts:
        v1["contracts"] = dict(ensemble.contracts)
    return gojson.Struct(v1=v1)


def marshal_ensemble(ensemble: Ensemble) -> bytes:
    return gojson.marshal(ensemble_struct(ensemble))


# -- in ----------------------------------------------------------------------------------------


def _decode_healthcheck(r: Reader, value: Any, path: str) -> HealthCheck | None:
    obj = r.mapping(value, path)
    kind = r.string(obj.get("type"), f"{path}.type")
    if not kind:
        return None
    response = r.mapping(obj.get("response"), f"{path}.response")
    interval = r.integer(obj.get("interval"), f"{path}.interval")
    return HealthCheck(
        type=kind,
        exec=r.strings(obj.get("exec"), f"{path}.exec"),
        endpoint=r.string(obj.get("endpoint"), f"{path}.endpoint"),
        response_type=r.string(response.get("type"), f"{path}.response.type"),
        response_value=r.string(response.get("value"), f"{path}.response.value"),
        interval_s=interval / _NS if interval else None,
    )


def _decoded(r: Reader, path: str, decode: Any, value: Any, default: Any) -> Any:
    try:
        return decode(value)
    except InvalidInput as exc:
        r.add(path, str(exc))
        return default


def _decode_allocation(r: Reader, name: str, value: Any) -> AllocationConfig:
    path = f"allocations.{name}"
    obj = r.mapping(value, path)
    keys = []
    for i, key in enumerate(r.list(obj.get("keys"), f"{path}.keys")):
        if isinstance(key, str):
            keys.append(key)
        else:
            r.add(f"{path}.keys[{i}]", "expected the name of a top-level key")
    volumes = tuple(
        r.mapping(v, f"{path}.volumes[{i}]")
        for i, v in enumerate(r.list(obj.get("volume"), f"{path}.volumes"))
    )
    return AllocationConfig(
        name=name,
        executor=r.string(obj.get("executor"), f"{path}.executor"),
        type=r.string(obj.get("type"), f"{path}.type") or "service",
        resources=_decoded(
            r, f"{path}.resources", Resources.from_json, obj.get("resources"), Resources()
        ),
        execution=_decoded(
            r, f"{path}.execution", SpecConfig.from_json, obj.get("execution"), SpecConfig("")
        ),
        dns_name=r.string(obj.get("dns_name"), f"{path}.dns_name"),
        keys=tuple(keys),
        provision=r.strings(obj.get("provision"), f"{path}.provision"),
        healthcheck=_decode_healthcheck(r, obj.get("healthcheck"), f"{path}.healthcheck"),
        failure_recovery=r.string(obj.get("failure_recovery"), f"{path}.failure_recovery"),
        depends_on=r.strings(obj.get("depends_on"), f"{path}.depends_on"),
        volumes=volumes,
    )


def _decode_node(r: Reader, name: str, value: Any) -> NodeConfig:
    path = f"nodes.{name}"
    obj = r.mapping(value, path)
    ports = []
    for i, item in enumerate(r.list(obj.get("ports"), f"{path}.ports")):
        port = r.mapping(item, f"{path}.ports[{i}]")
        ports.append(
            PortConfig(
                public=r.integer(port.get("public"), f"{path}.ports[{i}].public", maximum=65535),
                private=r.integer(port.get("private"), f"{path}.ports[{i}].private", maximum=65535),
                allocation=r.string(port.get("allocation"), f"{path}.ports[{i}].allocation"),
            )
        )
    location = r.mapping(obj.get("location"), f"{path}.location")

    def locations(key: str) -> tuple[Location, ...]:
        items = r.list(location.get(key), f"{path}.location.{key}")
        return tuple(
            _decoded(r, f"{path}.location.{key}[{i}]", Location.from_json, item, Location())
            for i, item in enumerate(items)
        )

    return NodeConfig(
        name=name,
        allocations=r.strings(obj.get("allocations"), f"{path}.allocations"),
        ports=tuple(ports),
        location=LocationConstraints(accept=locations("accept"), reject=locations("reject")),
        peer=r.string(obj.get("peer"), f"{path}.peer"),
        redundancy=r.integer(obj.get("redundancy"), f"{path}.redundancy"),
        failure_recovery=r.string(obj.get("failure_recovery"), f"{path}.failure_recovery"),
    )


def _decode_supervisor(r: Reader, value: Any, path: str) -> SupervisorConfig:
    obj = r.mapping(value, path)
    return SupervisorConfig(
        strategy=r.string(obj.get("strategy"), f"{path}.strategy"),
        allocations=r.strings(obj.get("allocations"), f"{path}.allocations"),
        children=tuple(
            _decode_supervisor(r, c, f"{path}.children[{i}]")
            for i, c in enumerate(r.list(obj.get("children"), f"{path}.children"))
        ),
    )


def decode_ensemble(data: Any, r: Reader) -> Ensemble:
    """The ensemble in Go JSON ``data`` (parsed), problems recorded in ``r``."""
    outer = r.mapping(data, "")
    v1 = r.mapping(outer.get("v1"), "v1")
    if not v1:
        r.add("v1", "no v1 ensemble configuration")
    edges = []
    for i, item in enumerate(r.list(v1.get("edges"), "edge_constraints")):
        e = r.mapping(item, f"edge_constraints[{i}]")
        edges.append(
            EdgeConstraint(
                s=r.string(e.get("s"), f"edge_constraints[{i}].s"),
                t=r.string(e.get("t"), f"edge_constraints[{i}].t"),
                rtt=r.integer(e.get("rtt"), f"edge_constraints[{i}].rtt"),
                bw=r.integer(e.get("bw"), f"edge_constraints[{i}].bw"),
            )
        )
    supervisor = _decode_supervisor(r, v1.get("supervisor"), "supervisor")
    subnet = r.mapping(v1.get("subnet"), "subnet")
    return Ensemble(
        allocations={
            k: _decode_allocation(r, k, v)
            for k, v in r.entries(v1.get("allocations"), "allocations").items()
        },
        nodes={k: _decode_node(r, k, v) for k, v in r.entries(v1.get("nodes"), "nodes").items()},
        edges=tuple(edges),
        supervisor=supervisor if supervisor != SupervisorConfig() else None,
        keys={k: r.string(v, f"keys.{k}") for k, v in r.entries(v1.get("keys"), "keys").items()},
        scripts=decode_scripts(r, v1.get("scripts"), "scripts"),
        subnet_join=r.boolean(subnet.get("join"), "subnet.join"),
        exclude_peers=r.strings(v1.get("exclude_peers"), "exclude_peers"),
        metadata={
            k: r.string(v, f"metadata.{k}")
            for k, v in r.entries(v1.get("metadata"), "metadata").items()
        },
        contracts=r.entries(v1.get("contracts"), "contracts"),
        escalation_strategy=r.string(v1.get("escalation_strategy"), "escalation_strategy"),
    )


def default_executors() -> frozenset[str]:
    """What an ensemble may name when the caller does not say: the built-in executors plus
    ``firecracker`` (a Go executor some providers have)."""
    from dms.executor import BUILTIN_EXECUTORS

    return frozenset({*BUILTIN_EXECUTORS, "firecracker"})


def unmarshal_ensemble(data: Any, known_executors: Collection[str] | None = None) -> Ensemble:
    """Decode and fully validate; raises :class:`EnsembleInvalid`."""
    if isinstance(data, bytes | bytearray | str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise EnsembleInvalid([Problem("", None, f"invalid JSON: {exc}")]) from None
    problems = Problems()
    reader = Reader(problems, fold=True)
    ensemble = decode_ensemble(data, reader)
    if not problems:
        _field_rules(ensemble, problems)
        validate(ensemble, problems, known_executors or default_executors())
    problems.raise_if_any()
    return ensemble


def _field_rules(ensemble: Ensemble, p: Problems) -> None:
    """The value rules YAML parsing applies, for JSON from a peer (enumerations)."""
    from dms.jobs._model import (
        ALLOCATION_FAILURE_RECOVERY,
        ALLOCATION_TYPES,
        HEALTHCHECK_TYPES,
        NODE_FAILURE_RECOVERY,
    )

    for name, a in ensemble.allocations.items():
        if a.type not in ALLOCATION_TYPES:
            p.add(f"allocations.{name}.type", f"{a.type!r} is not one of service, task")
        if a.failure_recovery and a.failure_recovery not in ALLOCATION_FAILURE_RECOVERY:
            p.add(f"allocations.{name}.failure_recovery", f"unknown {a.failure_recovery!r}")
        if a.healthcheck is not None and a.healthcheck.type not in HEALTHCHECK_TYPES:
            p.add(f"allocations.{name}.healthcheck.type", f"unknown {a.healthcheck.type!r}")
        if not a.execution.type:
            p.add(f"allocations.{name}.execution.type", "is required")
    for name, n in ensemble.nodes.items():
        if n.failure_recovery and n.failure_recovery not in NODE_FAILURE_RECOVERY:
            p.add(f"nodes.{name}.failure_recovery", f"unknown {n.failure_recovery!r}")


def healthcheck_gojson(check: HealthCheck | None) -> gojson.Struct:
    """A health check as Go's ``types.HealthCheckManifest`` JSON (interval in ns)."""
    return _healthcheck(check)


def healthcheck_from_json(value: Any) -> HealthCheck | None:
    """Decode a ``HealthCheckManifest`` object (None when its type is empty); raises
    :class:`EnsembleInvalid` naming the bad field."""
    problems = Problems()
    check = _decode_healthcheck(Reader(problems, fold=True), value, "healthcheck")
    problems.raise_if_any()
    return check
