"""The v1 ensemble YAML (spec §7) → an :class:`Ensemble`, recording every field-level problem.

Cross-references (which allocation is on which node, dependencies, ports...) are checked
afterwards by :mod:`dms.jobs._validate`, on the typed model, for YAML and Go JSON alike.

Unknown keys are errors everywhere, with one exception the YAML idiom needs: a top-level key
whose value carries an anchor (``nginx_wrapper: &nginx {...}``) only holds that anchor for
later aliases, and ``x-`` keys are free for the same purpose (as in Compose files).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from typing import Any

from dms.executor import InvalidSpec, SpecConfig
from dms.jobs._fields import Reader
from dms.jobs._model import (
    ALLOCATION_FAILURE_RECOVERY,
    ALLOCATION_TYPES,
    ESCALATION_STRATEGIES,
    HEALTHCHECK_TYPES,
    NODE_FAILURE_RECOVERY,
    AllocationConfig,
    EdgeConstraint,
    Ensemble,
    HealthCheck,
    LocationConstraints,
    NodeConfig,
    PortConfig,
    SupervisorConfig,
)
from dms.jobs._resources import parse_resources, resolve_named
from dms.jobs._yaml import Document, child_path
from dms.resources import Location

TOP_KEYS = (
    "version",
    "allocations",
    "nodes",
    "edge_constraints",
    "supervisor",
    "keys",
    "scripts",
    "subnet",
    "exclude_peers",
    "metadata",
    "contracts",
    "escalation_strategy",
    "resources",
    "volumes",
)
ALLOCATION_KEYS = (
    "executor",
    "type",
    "resources",
    "execution",
    "dns_name",
    "keys",
    "provision",
    "healthcheck",
    "failure_recovery",
    "depends_on",
    "volumes",
)
NODE_KEYS = ("allocations", "ports", "location", "peer", "redundancy", "failure_recovery")
_LOCATION_KEYS = ("continent", "country", "city", "asn", "isp")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(r: Reader, value: Any, path: str) -> float | None:
    """Seconds from ``30`` / ``"30s"`` / ``"1m30s"`` / ``"500ms"`` (Go duration syntax).

    A bare number means seconds (Go would read nanoseconds, which nobody means here).
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text, pos, seconds = value.strip(), 0, 0.0
        while pos < len(text):
            match = _DURATION.match(text, pos)
            if match is None:
                r.add(path, f"invalid duration {value!r} (expected e.g. 30s, 1m30s, 500ms)")
                return None
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
    else:
        r.add(path, f"invalid duration {value!r} (expected e.g. 30s, 1m30s, 500ms)")
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        r.add(path, "must be a positive duration")
        return None
    return seconds


def parse_healthcheck(r: Reader, value: Any, path: str) -> HealthCheck | None:
    if value is None:
        return None
    obj = r.mapping(value, path)
    r.only(obj, path, ("type", "exec", "endpoint", "response", "interval"))
    response = r.mapping(obj.get("response"), child_path(path, "response"))
    r.only(response, child_path(path, "response"), ("type", "value"))
    kind = r.choice(obj.get("type"), child_path(path, "type"), HEALTHCHECK_TYPES)
    if "type" not in obj:
        r.add(child_path(path, "type"), f"is required (one of {', '.join(HEALTHCHECK_TYPES)})")
    check = HealthCheck(
        type=kind,
        exec=r.strings(obj.get("exec"), child_path(path, "exec")),
        endpoint=r.string(obj.get("endpoint"), child_path(path, "endpoint")),
        response_type=r.string(response.get("type"), f"{path}.response.type"),
        response_value=_text(r, response.get("value"), f"{path}.response.value"),
        interval_s=parse_interval(r, obj.get("interval"), child_path(path, "interval")),
    )
    if kind == "command" and not check.exec:
        r.add(child_path(path, "exec"), "a command health check needs the command to run")
    if kind == "http" and not check.endpoint:
        r.add(child_path(path, "endpoint"), "an http health check needs an endpoint")
    return check


def _text(r: Reader, value: Any, path: str) -> str:
    """A string; numbers are accepted as their text (an expected response ``200``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return r.string(value, path)


def _json_value(r: Reader, value: Any, path: str) -> Any:
    """An execution parameter that Go's JSON can carry (no dates, NaN, ...)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            r.add(path, "must be a finite number")
            return None
        return value
    if isinstance(value, list):
        return [_json_value(r, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _json_value(r, v, child_path(path, str(k))) for k, v in value.items()}
    if isinstance(value, bytes):
        return value
    r.add(path, f"unsupported value {value!r} (quote it)")
    return None


def parse_execution(r: Reader, value: Any, path: str) -> SpecConfig:
    if value is None:
        r.add(path, "is required (the executor-specific description of the work)")
        return SpecConfig("")
    obj = r.mapping(value, path)
    if not obj:
        r.add(path, "must name at least its 'type'")
        return SpecConfig("")
    try:
        spec = SpecConfig.from_execution(obj)
    except InvalidSpec as exc:
        r.add(child_path(path, "type"), str(exc).removeprefix("execution: "))
        return SpecConfig("")
    params = {k: _json_value(r, v, child_path(path, k)) for k, v in spec.params.items()}
    return SpecConfig(spec.type, params)


def _volumes(r: Reader, value: Any, path: str, named: Mapping[str, Any]) -> tuple[Any, ...]:
    """``volumes:`` as data: a list of ``"name:mountpoint"`` strings or mappings, or a map of
    name → mapping; entries named like a top-level volume are merged over it (as in Go)."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items: list[Any] = [
            {"name": str(k), **r.mapping(v, child_path(path, str(k)))} for k, v in value.items()
        ]
    else:
        items = r.list(value, path)
    out = []
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]"
        if isinstance(item, str):
            name, sep, mountpoint = item.partition(":")
            if not sep or not name or not mountpoint or ":" in mountpoint:
                r.add(ipath, f"invalid volume {item!r} (expected name:mountpoint)")
                continue
            obj: dict[str, Any] = {"name": name, "mountpoint": mountpoint}
        else:
            obj = r.mapping(item, ipath)
        ref = obj.get("name")
        base = named.get(ref) if isinstance(ref, str) else None
        if isinstance(base, Mapping):
            obj = {**base, **obj}
        out.append(_json_value(r, obj, ipath))
    return tuple(out)


def parse_allocation(
    r: Reader,
    name: str,
    value: Any,
    path: str,
    *,
    named_resources: Mapping[str, Any] | None = None,
    named_volumes: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> AllocationConfig:
    """One ``allocations.<name>`` block. ``strict`` (a deployment) requires ``type`` and
    ``resources`` as Go's validator does; ``nunet executor run`` reads blocks without them."""
    obj = r.mapping(value, path)
    r.only(obj, path, ALLOCATION_KEYS)
    execution = parse_execution(r, obj.get("execution"), child_path(path, "execution"))
    if "executor" in obj and obj["executor"] is None:
        r.add(child_path(path, "executor"), 'is YAML null; quote it ("null") for the null executor')
    executor = r.string(obj.get("executor"), child_path(path, "executor"))
    if not executor and "executor" not in obj:
        if strict:
            r.add(child_path(path, "executor"), "is required (e.g. docker, wasm)")
        executor = execution.type
    if strict and "type" not in obj:
        r.add(child_path(path, "type"), f"is required ({' or '.join(ALLOCATION_TYPES)})")
    res_path = child_path(path, "resources")
    resources_block = resolve_named(r, obj.get("resources"), res_path, named_resources or {})
    if strict and resources_block is None:
        r.add(res_path, "is required (at least cpu.cores and ram.size)")
    before = {p.path for p in r.problems.items}
    resources = parse_resources(r, resources_block, res_path)
    reported = {p.path for p in r.problems.items} - before  # no second word on a bad value
    if strict and resources_block is not None:
        if resources.cpu.cores <= 0 and f"{res_path}.cpu.cores" not in reported:
            r.add(f"{res_path}.cpu.cores", "must be more than 0")
        if resources.ram.size <= 0 and f"{res_path}.ram.size" not in reported:
            r.add(f"{res_path}.ram.size", "must be more than 0")
    return AllocationConfig(
        name=name,
        executor=executor,
        type=r.choice(obj.get("type"), child_path(path, "type"), ALLOCATION_TYPES) or "service",
        resources=resources,
        execution=execution,
        dns_name=r.string(
            obj.get("dns_name"), child_path(path, "dns_name"), required="dns_name" in obj
        ),
        keys=r.strings(obj.get("keys"), child_path(path, "keys")),
        provision=r.strings(obj.get("provision"), child_path(path, "provision")),
        healthcheck=parse_healthcheck(r, obj.get("healthcheck"), child_path(path, "healthcheck")),
        failure_recovery=r.choice(
            obj.get("failure_recovery"),
            child_path(path, "failure_recovery"),
            ALLOCATION_FAILURE_RECOVERY,
        ),
        depends_on=r.strings(obj.get("depends_on"), child_path(path, "depends_on")),
        volumes=_volumes(r, obj.get("volumes"), child_path(path, "volumes"), named_volumes or {}),
    )


def parse_location(r: Reader, value: Any, path: str) -> Location:
    obj = r.mapping(value, path)
    r.only(obj, path, _LOCATION_KEYS)
    location = Location(
        continent=r.string(obj.get("continent"), child_path(path, "continent")),
        country=r.string(obj.get("country"), child_path(path, "country")),
        city=r.string(obj.get("city"), child_path(path, "city")),
        asn=r.integer(obj.get("asn"), child_path(path, "asn")),
        isp=r.string(obj.get("isp"), child_path(path, "isp")),
    )
    if not location.continent:
        r.add(child_path(path, "continent"), "is required in a location (Go matches on it)")
    if location.city and not location.country:
        r.add(child_path(path, "country"), "is required when a city is given")
    return location


def parse_node(r: Reader, name: str, value: Any, path: str) -> NodeConfig:
    obj = r.mapping(value, path)
    r.only(obj, path, NODE_KEYS)
    ports = []
    for i, item in enumerate(r.list(obj.get("ports"), child_path(path, "ports"))):
        ppath = f"{path}.ports[{i}]"
        port = r.mapping(item, ppath)
        r.only(port, ppath, ("public", "private", "allocation"))
        if "private" not in port:
            r.add(f"{ppath}.private", "is required (the allocation's port)")
        public = r.integer(port.get("public"), f"{ppath}.public", maximum=65535)
        if 0 < public < 1025:
            r.add(f"{ppath}.public", f"must be 0 (any free port) or 1025-65535, got {public}")
        ports.append(
            PortConfig(
                public=public,
                private=r.integer(port.get("private"), f"{ppath}.private", minimum=1, maximum=65535)
                if "private" in port
                else 0,
                allocation=r.string(port.get("allocation"), f"{ppath}.allocation", required=True),
            )
        )
    loc_path = child_path(path, "location")
    location = r.mapping(obj.get("location"), loc_path)
    r.only(location, loc_path, ("accept", "reject"))
    peer = r.string(obj.get("peer"), child_path(path, "peer"), required="peer" in obj)
    return NodeConfig(
        name=name,
        allocations=r.strings(obj.get("allocations"), child_path(path, "allocations")),
        ports=tuple(ports),
        location=LocationConstraints(
            accept=tuple(
                parse_location(r, v, f"{loc_path}.accept[{i}]")
                for i, v in enumerate(r.list(location.get("accept"), f"{loc_path}.accept"))
            ),
            reject=tuple(
                parse_location(r, v, f"{loc_path}.reject[{i}]")
                for i, v in enumerate(r.list(location.get("reject"), f"{loc_path}.reject"))
            ),
        ),
        peer=peer,
        redundancy=r.integer(obj.get("redundancy"), child_path(path, "redundancy")),
        failure_recovery=r.choice(
            obj.get("failure_recovery"), child_path(path, "failure_recovery"), NODE_FAILURE_RECOVERY
        ),
    )


def parse_supervisor(r: Reader, value: Any, path: str) -> SupervisorConfig:
    obj = r.mapping(value, path)
    r.only(obj, path, ("strategy", "allocations", "children"))
    # The strategy is checked by the validator (so JSON from peers gets the same rule).
    return SupervisorConfig(
        strategy=r.string(obj.get("strategy"), child_path(path, "strategy")),
        allocations=r.strings(obj.get("allocations"), child_path(path, "allocations")),
        children=tuple(
            parse_supervisor(r, child, f"{path}.children[{i}]")
            for i, child in enumerate(r.list(obj.get("children"), child_path(path, "children")))
        ),
    )


def _edge(r: Reader, value: Any, path: str) -> EdgeConstraint:
    obj = r.mapping(value, path)
    r.only(obj, path, ("edges", "rtt", "bw"))
    ends = r.strings(obj.get("edges"), child_path(path, "edges"))
    if len(ends) != 2:
        r.add(child_path(path, "edges"), "must name exactly two nodes: [source, target]")
        ends = (*ends, "", "")[:2]
    return EdgeConstraint(
        s=ends[0],
        t=ends[1],
        rtt=r.integer(obj.get("rtt"), child_path(path, "rtt")),
        bw=r.integer(obj.get("bw"), child_path(path, "bw")),
    )


def _string_map(r: Reader, value: Any, path: str) -> dict[str, str]:
    obj = r.mapping(value, path)
    return {k: r.string(v, child_path(path, k)) for k, v in obj.items()}


def _scripts(r: Reader, value: Any, path: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for k, v in r.mapping(value, path).items():
        if isinstance(v, bytes):  # !!binary
            out[k] = v
        else:
            out[k] = r.string(v, child_path(path, k)).encode()
    return out


def _contracts(r: Reader, value: Any, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, contract in r.mapping(value, path).items():
        cpath = child_path(path, name)
        obj = r.mapping(contract, cpath)
        did = obj.get("did")
        if not isinstance(did, str) or not did.startswith("did:"):
            r.add(child_path(cpath, "did"), "is required and must be a DID (did:...)")
        host = obj.get("host")
        if host is not None and (not isinstance(host, str) or not host.startswith("did:")):
            r.add(child_path(cpath, "host"), "must be a DID (did:...)")
        out[name] = _json_value(r, obj, cpath)
    return out


def _named(r: Reader, value: Any, path: str) -> dict[str, Any]:
    """A top-level ``resources:``/``volumes:`` map of reusable blocks (a list of ``{name:..}``
    entries is accepted too, as Go's transformer produces)."""
    if isinstance(value, list):
        return {
            str(item["name"]): item
            for item in value
            if isinstance(item, Mapping) and isinstance(item.get("name"), str)
        }
    return r.mapping(value, path)


def parse_document(doc: Document, r: Reader) -> Ensemble:
    """The ensemble in ``doc`` (problems recorded in ``r``; the result may be partial)."""
    top = r.mapping(doc.data, "")
    for key in top:
        if key in TOP_KEYS or key in doc.anchored or key.startswith("x-"):
            continue
        r.add(key, f"unknown key {key!r} (a key that only holds an &anchor is fine)")
    version = top.get("version", "V1")
    if not isinstance(version, str) or version.upper() != "V1":
        r.add("version", f'unsupported version {version!r} (this DMS reads "V1")')
    named_resources = _named(r, top.get("resources"), "resources")
    named_volumes = _named(r, top.get("volumes"), "volumes")
    allocations = {
        name: parse_allocation(
            r,
            name,
            block,
            child_path("allocations", name),
            named_resources=named_resources,
            named_volumes=named_volumes,
        )
        for name, block in r.mapping(top.get("allocations"), "allocations").items()
    }
    nodes = {
        name: parse_node(r, name, block, child_path("nodes", name))
        for name, block in r.mapping(top.get("nodes"), "nodes").items()
    }
    edges = tuple(
        _edge(r, item, f"edge_constraints[{i}]")
        for i, item in enumerate(r.list(top.get("edge_constraints"), "edge_constraints"))
    )
    supervisor = (
        parse_supervisor(r, top["supervisor"], "supervisor")
        if top.get("supervisor") is not None
        else None
    )
    subnet = r.mapping(top.get("subnet"), "subnet")
    r.only(subnet, "subnet", ("join",))
    return Ensemble(
        allocations=allocations,
        nodes=nodes,
        edges=edges,
        supervisor=supervisor if supervisor != SupervisorConfig() else None,
        keys=_string_map(r, top.get("keys"), "keys"),
        scripts=_scripts(r, top.get("scripts"), "scripts"),
        subnet_join=r.boolean(subnet.get("join"), "subnet.join"),
        exclude_peers=r.strings(top.get("exclude_peers"), "exclude_peers"),
        metadata=_string_map(r, top.get("metadata"), "metadata"),
        contracts=_contracts(r, top.get("contracts"), "contracts"),
        escalation_strategy=r.choice(
            top.get("escalation_strategy"), "escalation_strategy", ESCALATION_STRATEGIES
        ),
    )


def decode_scripts(r: Reader, value: Any, path: str) -> dict[str, bytes]:
    """``scripts`` as Go marshals ``map[string][]byte``: base64 strings."""
    out: dict[str, bytes] = {}
    for k, v in r.entries(value, path).items():
        if not isinstance(v, str):
            r.add(child_path(path, k), "expected base64 text")
            continue
        try:
            out[k] = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            r.add(child_path(path, k), "invalid base64")
    return out
