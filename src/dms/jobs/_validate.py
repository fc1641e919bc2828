"""Checks across an ensemble: names, references, placement, dependencies, ports.

Run on the typed model, so an ensemble read from YAML and one decoded from a peer's Go JSON
meet the same rules. Paths are YAML paths (``nodes.n1.ports[0].public``); with YAML, the
collector turns them into line numbers.

Decisions (where Go is silent or we differ):

* ``depends_on`` may cross nodes, unlike in Go's validator: our orchestrator starts
  allocations in dependency order across the whole ensemble (``Ensemble.start_order()``), so
  a web server on one provider can wait for its cache on another.
* a port's ``allocation`` must be on that node (Go only checks it exists; a port on another
  node's provider could never reach it).
* a node pinned to a peer that ``exclude_peers`` lists can never be placed: refused.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from dms.jobs._model import (
    ESCALATION_STRATEGIES,
    SUPERVISOR_STRATEGIES,
    Ensemble,
    SupervisorConfig,
)
from dms.jobs._problems import Problems

#: One DNS label or several (RFC 1123): what Go's ``IsDNSNameValid`` accepts.
_DNS = re.compile(
    r"(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*"
)


def _names(ensemble: Ensemble, p: Problems) -> None:
    if not ensemble.allocations:
        p.add("allocations", "at least one allocation is required")
    if not ensemble.nodes:
        p.add("nodes", "at least one node is required")
    seen: dict[str, str] = {}
    dns: dict[str, str] = {}
    for name, alloc in ensemble.allocations.items():
        path = f"allocations.{name}"
        if not _DNS.fullmatch(name):
            p.add(
                path, f"allocation name {name!r} must be a valid host name (letters, digits, '-')"
            )
        other = seen.setdefault(name.lower(), name)
        if other != name:
            p.add(path, f"allocation names {other!r} and {name!r} differ only in case")
        if alloc.dns_name and not _DNS.fullmatch(alloc.dns_name):
            p.add(f"{path}.dns_name", f"{alloc.dns_name!r} is not a valid DNS name")
        first = dns.setdefault(alloc.dns_name.lower(), name)
        if first != name:
            p.add(f"{path}.dns_name", f"dns_name {alloc.dns_name!r} is also used by {first!r}")


def _executors(ensemble: Ensemble, p: Problems, known: Collection[str]) -> None:
    for name, alloc in ensemble.allocations.items():
        path = f"allocations.{name}"
        if alloc.executor and alloc.executor not in known:
            p.add(
                f"{path}.executor",
                f"unknown executor {alloc.executor!r} (this DMS knows {', '.join(sorted(known))})",
            )
        if alloc.executor and alloc.execution.type and alloc.executor != alloc.execution.type:
            p.add(
                f"{path}.execution.type",
                f"execution type {alloc.execution.type!r} does not match "
                f"executor {alloc.executor!r}",
            )


def _references(ensemble: Ensemble, p: Problems) -> None:
    for name, alloc in ensemble.allocations.items():
        path = f"allocations.{name}"
        for i, key in enumerate(alloc.keys):
            if key not in ensemble.keys:
                p.add(f"{path}.keys[{i}]", f"no key named {key!r} in the top-level 'keys'")
        for i, script in enumerate(alloc.provision):
            if script not in ensemble.scripts:
                p.add(f"{path}.provision[{i}]", f"no script named {script!r} in 'scripts'")


def _placement(ensemble: Ensemble, p: Problems) -> dict[str, str]:
    """Each allocation on exactly one node; returns allocation → node."""
    where: dict[str, str] = {}
    for node_name, node in ensemble.nodes.items():
        for i, alloc in enumerate(node.allocations):
            path = f"nodes.{node_name}.allocations[{i}]"
            if alloc not in ensemble.allocations:
                p.add(path, f"unknown allocation {alloc!r}")
                continue
            if alloc in where:
                other = where[alloc]
                again = "twice on this node" if other == node_name else f"also on node {other!r}"
                p.add(path, f"allocation {alloc!r} is {again}: an allocation runs on one node")
                continue
            where[alloc] = node_name
    for name in ensemble.allocations:
        if name not in where:
            p.add(f"allocations.{name}", f"allocation {name!r} is on no node")
    return where


def _dependencies(ensemble: Ensemble, p: Problems) -> None:
    graph: dict[str, list[str]] = {}
    for name, alloc in ensemble.allocations.items():
        deps = graph.setdefault(name, [])
        for i, dep in enumerate(alloc.depends_on):
            path = f"allocations.{name}.depends_on[{i}]"
            if dep == name:
                p.add(path, "an allocation cannot depend on itself")
            elif dep not in ensemble.allocations:
                p.add(path, f"unknown allocation {dep!r}")
            else:
                deps.append(dep)
    for cycle in _cycles(graph):
        p.add(
            f"allocations.{cycle[0]}.depends_on",
            "dependency cycle: " + " -> ".join([*cycle, cycle[0]]),
        )


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected group (iterative DFS)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    found: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        trail: list[str] = []
        state[root] = 1
        trail.append(root)
        while stack:
            node, i = stack[-1]
            deps = graph.get(node, [])
            if i < len(deps):
                stack[-1] = (node, i + 1)
                nxt = deps[i]
                if state.get(nxt) == 1:
                    found.append(trail[trail.index(nxt) :])
                elif nxt not in state:
                    state[nxt] = 1
                    trail.append(nxt)
                    stack.append((nxt, 0))
            else:
                stack.pop()
                trail.pop()
                state[node] = 2
    return found


def _ports(ensemble: Ensemble, p: Problems, where: dict[str, str]) -> None:
    private_seen: dict[tuple[str, int], str] = {}
    for node_name, node in ensemble.nodes.items():
        public_seen: dict[int, int] = {}
        for i, port in enumerate(node.ports):
            path = f"nodes.{node_name}.ports[{i}]"
            if port.allocation and port.allocation not in ensemble.allocations:
                p.add(f"{path}.allocation", f"unknown allocation {port.allocation!r}")
            elif port.allocation and where.get(port.allocation, node_name) != node_name:
                p.add(
                    f"{path}.allocation",
                    f"allocation {port.allocation!r} is on node {where[port.allocation]!r}, "
                    "not this one",
                )
            alloc = ensemble.allocations.get(port.allocation)
            if alloc is not None and alloc.executor == "wasm":
                p.add(
                    f"{path}.allocation",
                    f"{alloc.executor} allocation {port.allocation!r} has no network: "
                    "no port of it can be published",
                )
            if port.public:
                if port.public in public_seen:
                    first = public_seen[port.public]
                    p.add(f"{path}.public", f"public port {port.public} is also ports[{first}]'s")
                public_seen.setdefault(port.public, i)
            if port.private and port.allocation:
                key = (port.allocation, port.private)
                if key in private_seen:
                    p.add(
                        f"{path}.private",
                        f"private port {port.private} of {port.allocation!r} is already "
                        f"published by {private_seen[key]}",
                    )
                private_seen.setdefault(key, path)


def _subnet(ensemble: Ensemble, p: Problems) -> None:
    """``subnet: {join: true}`` needs an allocation with a network to join (WASM has none)."""
    if ensemble.subnet_join and not ensemble.subnet_members():
        kinds = sorted({a.executor for a in ensemble.allocations.values()})
        p.add(
            "subnet.join",
            f"no allocation can be on a subnet ({', '.join(kinds)} allocations have no network)",
        )


def _nodes(ensemble: Ensemble, p: Problems) -> None:
    excluded = set(ensemble.exclude_peers)
    for name, node in ensemble.nodes.items():
        if node.peer and node.peer in excluded:
            p.add(f"nodes.{name}.peer", f"peer {node.peer} is also in exclude_peers")
    for i, edge in enumerate(ensemble.edges):
        path = f"edge_constraints[{i}].edges"
        for end in (edge.s, edge.t):
            if end and end not in ensemble.nodes:
                p.add(path, f"unknown node {end!r}")
        if edge.s and edge.s == edge.t:
            p.add(path, "an edge joins two different nodes")


def _supervisor(ensemble: Ensemble, p: Problems, node: SupervisorConfig, path: str) -> None:
    if node.strategy and node.strategy not in SUPERVISOR_STRATEGIES:
        p.add(
            f"{path}.strategy",
            f"{node.strategy!r} is not one of {', '.join(SUPERVISOR_STRATEGIES)}",
        )
    for i, alloc in enumerate(node.allocations):
        if alloc not in ensemble.allocations:
            p.add(f"{path}.allocations[{i}]", f"unknown allocation {alloc!r}")
    for i, child in enumerate(node.children):
        _supervisor(ensemble, p, child, f"{path}.children[{i}]")


def validate(ensemble: Ensemble, p: Problems, known_executors: Collection[str]) -> None:
    """Record every cross-reference problem of ``ensemble`` in ``p``."""
    _names(ensemble, p)
    _executors(ensemble, p, known_executors)
    _references(ensemble, p)
    where = _placement(ensemble, p)
    _dependencies(ensemble, p)
    _ports(ensemble, p, where)
    _subnet(ensemble, p)
    _nodes(ensemble, p)
    if ensemble.supervisor is not None:
        _supervisor(ensemble, p, ensemble.supervisor, "supervisor")
    if ensemble.escalation_strategy and ensemble.escalation_strategy not in ESCALATION_STRATEGIES:
        p.add(
            "escalation_strategy",
            f"{ensemble.escalation_strategy!r} is not one of {', '.join(ESCALATION_STRATEGIES)}",
        )
