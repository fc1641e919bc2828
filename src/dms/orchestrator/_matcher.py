"""Placing an ensemble's nodes on the providers that bid: filters → ranking → complete search.

Why this shape (Nomad's scheduler, Bacalhau's orchestrator; design.md "scheduler pipeline"):

1. **Feasibility filters** drop an offer for a named reason (unknown node, excluded peer, pinned
   to another peer, location outside accept/reject, static ports taken, resources short) and
   providers' own declines are counted with theirs, so :class:`Explanation` can always say why.
2. **Ranking**: each remaining (node, peer) gets a headroom score, the smallest fraction of the
   peer's free CPU, RAM or disk left after placing the node (a Go provider, whose free resources
   are unknown, scores 0); ties go to the smaller peer ID, so the result is deterministic.
3. **Search**: backtracking with forward checking and MRV (the node with the fewest candidates
   left goes first), after an arc-consistency pass over the edge constraints and a bipartite
   matching that proves at once when the peers cannot hold every node. It is complete:
   it finds a placement whenever one exists, where Go samples random permutations of the bids
   (``MaxPermutations``) and may miss the only one that works. Values are tried on a peer that
   hosts nothing yet first (spread the ensemble, share a provider only when needed), then with
   fewer unmeasured edges, then by rank.

Constraints of the search: several nodes may share a peer when the peer's free resources
(``Offer.free``) cover their **sum** and their static ports do not collide; a node placed through
an offer with ``free=None`` (a Go provider, which bids for one node) has that peer to itself.
An edge (``rtt``/``bw`` between two nodes) is met by two nodes on one peer; otherwise the pair
of peers must not be farther apart than light allows (``_geo``), and not measured failing
(``edge_status`` False). A pair not measured yet (None) is allowed optimistically and listed in
``Match.unmeasured``: the orchestrator measures it (``/dms/deployment/constraint/edge``) and
calls :func:`match` again.

Everything here is pure and synchronous: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from dms.errors import InvalidInput
from dms.orchestrator._explain import (
    DeclineReason,
    Drop,
    Explanation,
    NodeExplanation,
    short_peer,
)
from dms.orchestrator._geo import Area, area_rtt_lower_bound_ms, locate_area
from dms.resources import Location, Resources

__all__ = [
    "Decline",
    "DeclineReason",
    "Edge",
    "EdgeStatus",
    "Filtered",
    "Locator",
    "Match",
    "NodeDemand",
    "Offer",
    "filter_offers",
    "match",
]

_CORE_EPSILON = 1e-6  # cores are float32 on the wire; sums of 0.1 must still fit in 0.3


# -- inputs and result ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeDemand:
    """One ensemble node, as it must be placed: its allocations' resources summed."""

    name: str
    resources: Resources
    executors: frozenset[str] = frozenset()
    accept: tuple[Location, ...] = ()
    reject: tuple[Location, ...] = ()
    static_ports: tuple[int, ...] = ()
    dynamic_ports: int = 0
    peer: str = ""  # pinned peer ID ("" = any)
    privileged: bool = False


@dataclass(frozen=True)
class Offer:
    """A valid bid of ``peer`` for ensemble node ``node``.

    ``free`` is the provider's free resources when it bid; ``None`` means unknown (a Go
    provider): that peer may then host only this one node.
    """

    peer: str
    node: str
    location: Location = field(default_factory=Location)
    free: Resources | None = None
    static_ports_free: bool = True


@dataclass(frozen=True)
class Decline:
    """A provider said it cannot host ``node``, and why (``free``: its free resources, if sent)."""

    peer: str
    node: str
    reason: DeclineReason
    detail: str = ""
    free: Resources | None = None


@dataclass(frozen=True)
class Edge:
    """A constraint between ensemble nodes ``s`` and ``t``: RTT at most, bandwidth at least."""

    s: str
    t: str
    rtt_ms: int = 0
    bw_bps: int = 0

    def describe(self) -> str:
        """``node1–node2 rtt ≤ 10 ms, bw ≥ 100 Mbit/s``."""
        parts = []
        if self.rtt_ms:
            parts.append(f"rtt ≤ {self.rtt_ms} ms")
        if self.bw_bps:
            parts.append(f"bw ≥ {_format_bw(self.bw_bps)}")
        return f"{self.s}–{self.t} " + ", ".join(parts)


EdgeStatus = Callable[[str, str, Edge], bool | None]
"""``(peer_a, peer_b, edge)`` → measured OK (True), failing (False), not measured (None)."""

Locator = Callable[[Location], tuple[float, float] | Area | None]
"""A location → ``(lat, lon)`` (exact), an :class:`Area` (with an uncertainty radius), or None."""


@dataclass(frozen=True)
class Match:
    """The outcome: a placement (node → peer) or None, and why."""

    placement: dict[str, str] | None
    unmeasured: tuple[tuple[str, str, Edge], ...]
    explanation: Explanation

    @property
    def final(self) -> bool:
        """A placement whose every edge is measured OK (nothing left to measure)."""
        return self.placement is not None and not self.unmeasured


def _format_bw(bps: int) -> str:
    for unit, factor in (("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if bps >= factor:
            return f"{bps / factor:g} {unit}"
    return f"{bps} bit/s"


# -- resource vectors ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Vec:
    """What the matcher compares: cores, RAM and disk bytes, VRAM per GPU index.

    Parts are compared directly, as the provider's commit does (``dms.resources.shortfall``):
    GPUs by index, so a shared peer's books add up the same way on both sides.
    """

    cores: float
    ram: int
    disk: int
    gpus: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, r: Resources) -> _Vec:
        gpus: dict[int, int] = {}
        for gpu in r.gpus:
            gpus[gpu.index] = gpus.get(gpu.index, 0) + gpu.vram
        return cls(float(r.cpu.cores), r.ram.size, r.disk.size, tuple(sorted(gpus.items())))

    def plus(self, other: _Vec) -> _Vec:
        gpus = dict(self.gpus)
        for index, vram in other.gpus:
            gpus[index] = gpus.get(index, 0) + vram
        return _Vec(
            self.cores + other.cores,
            self.ram + other.ram,
            self.disk + other.disk,
            tuple(sorted(gpus.items())),
        )

    def meet(self, other: _Vec) -> _Vec:
        """The smaller of two readings of one peer's free resources, part by part."""
        theirs = dict(other.gpus)
        gpus = tuple((i, min(v, theirs[i])) for i, v in self.gpus if i in theirs)
        return _Vec(
            min(self.cores, other.cores),
            min(self.ram, other.ram),
            min(self.disk, other.disk),
            gpus,
        )

    def short(self, need: _Vec) -> tuple[str, float, float] | None:
        """The first part where ``need`` exceeds this (``(dimension, need, have)``), or None."""
        if need.cores > self.cores + _CORE_EPSILON:
            return "cpu", need.cores, self.cores
        if need.ram > self.ram:
            return "ram", need.ram, self.ram
        if need.disk > self.disk:
            return "disk", need.disk, self.disk
        have = dict(self.gpus)
        for index, vram in need.gpus:
            if index not in have or vram > have[index]:
                return f"gpu:{index}", vram, have.get(index, 0)
        return None

    def headroom(self, need: _Vec) -> float:
        """The smallest fraction of CPU, RAM or disk left after placing ``need`` (1.0 if none)."""
        fractions = [
            (have - want) / have
            for have, want in (
                (self.cores, need.cores),
                (self.ram, need.ram),
                (self.disk, need.disk),
            )
            if want > 0 and have > 0
        ]
        return min(fractions, default=1.0)


# -- the problem after filtering ----------------------------------------------------------------

_OK, _UNMEASURED, _TOO_FAR, _FAILING = 0, 1, 2, 3


class _Budget(Exception):
    """The search used up its step budget."""


class _Problem:
    """Nodes, their ranked candidates, peer capacities and the edge constraints."""

    def __init__(
        self,
        demands: Sequence[NodeDemand],
        *,
        domains: dict[str, list[str]],
        exclusive: set[tuple[str, str]],
        capacity: dict[str, _Vec | None],
        areas: dict[str, Area | None],
        edges: Sequence[Edge],
        edge_status: EdgeStatus | None,
    ) -> None:
        self.nodes = [d.name for d in demands]
        self.order = {d.name: i for i, d in enumerate(demands)}
        self.need = {d.name: _Vec.of(d.resources) for d in demands}
        self.ports = {d.name: frozenset(d.static_ports) for d in demands}
        self.domains = domains
        self.rank = {n: {p: i for i, p in enumerate(ps)} for n, ps in domains.items()}
        self.exclusive = exclusive
        self.capacity = capacity
        self.areas = areas
        self.edges = list(edges)
        self.edge_status = edge_status
        self.neighbours: dict[str, dict[str, list[int]]] = {n: {} for n in self.nodes}
        for i, e in enumerate(self.edges):
            self.neighbours[e.s].setdefault(e.t, []).append(i)
            self.neighbours[e.t].setdefault(e.s, []).append(i)
        self._pairs: dict[tuple[int, str, str], int] = {}

    def pair(self, index: int, peer_s: str, peer_t: str) -> int:
        """Edge ``index`` between its s-node on ``peer_s`` and t-node on ``peer_t``."""
        if peer_s == peer_t:
            return _OK
        key = (index, peer_s, peer_t)
        found = self._pairs.get(key)
        if found is None:
            found = self._pair(self.edges[index], peer_s, peer_t)
            self._pairs[key] = found
        return found

    def _pair(self, edge: Edge, peer_s: str, peer_t: str) -> int:
        if edge.rtt_ms > 0:
            a, b = self.areas.get(peer_s), self.areas.get(peer_t)
            if a is not None and b is not None and area_rtt_lower_bound_ms(a, b) > edge.rtt_ms:
                return _TOO_FAR
        status = None if self.edge_status is None else self.edge_status(peer_s, peer_t, edge)
        if status is None:
            return _UNMEASURED
        return _OK if status else _FAILING

    def edges_ok(self, n: str, p: str, m: str, q: str) -> bool:
        """Whether node ``n`` on ``p`` and node ``m`` on ``q`` meet every edge between them."""
        for i in self.neighbours[n].get(m, ()):
            e = self.edges[i]
            status = self.pair(i, p, q) if e.s == n else self.pair(i, q, p)
            if status >= _TOO_FAR:
                return False
        return True

    def unmeasured(self, n: str, p: str, m: str, q: str) -> int:
        count = 0
        for i in self.neighbours[n].get(m, ()):
            e = self.edges[i]
            status = self.pair(i, p, q) if e.s == n else self.pair(i, q, p)
            count += status == _UNMEASURED
        return count

    def fits_together(self, nodes: Sequence[str], peer: str) -> bool:
        """Whether ``nodes`` can all be on ``peer`` (capacity, exclusivity, static ports)."""
        if len(nodes) > 1 and any((n, peer) in self.exclusive for n in nodes):
            return False
        cap = self.capacity.get(peer)
        if cap is None:
            return len(nodes) <= 1
        total = _Vec(0.0, 0, 0)
        seen: set[int] = set()
        for n in nodes:
            if seen & self.ports[n]:
                return False
            seen |= self.ports[n]
            total = total.plus(self.need[n])
        return cap.short(total) is None


# -- the search ---------------------------------------------------------------------------------


class _Search:
    """Backtracking with forward checking and MRV over a :class:`_Problem`."""

    def __init__(self, problem: _Problem, nodes: Sequence[str], max_steps: int | None) -> None:
        self.p = problem
        self.nodes = list(nodes)
        self.members = set(nodes)
        self.max_steps = max_steps
        self.steps = 0
        self.domain = {n: set(problem.domains[n]) for n in self.nodes}
        self.assigned: dict[str, str] = {}
        self.hosted: dict[str, list[str]] = {}  # peer -> nodes on it
        self.load: dict[str, _Vec] = {}
        self.ports: dict[str, frozenset[int]] = {}

    # a node may join a peer given what the peer already hosts
    def _fits(self, n: str, q: str) -> bool:
        others = self.hosted.get(q)
        if not others:
            return True
        p = self.p
        if (n, q) in p.exclusive or any((o, q) in p.exclusive for o in others):
            return False
        if self.ports[q] & p.ports[n]:
            return False
        cap = p.capacity.get(q)
        return cap is not None and cap.short(self.load[q].plus(p.need[n])) is None

    def arc_consistency(self) -> str | None:
        """AC-3 over the edges (a pair on one peer counts when both fit there together).

        Returns the first node whose candidates all went, or None.
        """
        p = self.p
        queue = [(n, m) for n in self.nodes for m in p.neighbours[n] if m in self.members]
        pending = set(queue)
        while queue:
            n, m = queue.pop()
            pending.discard((n, m))
            removed = False
            for a in list(self.domain[n]):
                supported = any(
                    p.edges_ok(n, a, m, b) and (a != b or p.fits_together((n, m), a))
                    for b in self.domain[m]
                )
                if not supported:
                    self.domain[n].discard(a)
                    removed = True
            if not self.domain[n]:
                return n
            if removed:
                for k in p.neighbours[n]:
                    if k != m and k in self.members and (k, n) not in pending:
                        pending.add((k, n))
                        queue.append((k, n))
        return None

    def _slots(self, q: str, nodes: list[str]) -> int:
        """At most how many of ``nodes`` (candidates of ``q``) fit on ``q`` at once."""
        p = self.p
        cap = p.capacity.get(q)
        if cap is None:
            return 1
        most = len(nodes)
        for part in ("cores", "ram", "disk"):
            room: float = getattr(cap, part) + (_CORE_EPSILON if part == "cores" else 0)
            count = 0
            for want in sorted(getattr(p.need[n], part) for n in nodes):
                room -= want
                if room < 0:
                    break
                count += 1
            most = min(most, count)
        return max(1, most)  # a node bidding with free unknown always fits alone

    def enough_peers(self) -> bool:
        """Hall's condition: a matching of nodes to peer slots covers every node.

        Backtracking alone needs exponential time to prove that 20 nodes cannot fit on 19 peers
        that each hold one of them; a bipartite matching (Kuhn's augmenting paths, each peer
        with as many slots as its free resources allow at most) proves it at once.
        """
        candidates: dict[str, list[str]] = {}
        for n in self.nodes:
            for q in self.domain[n]:
                candidates.setdefault(q, []).append(n)
        slots = {q: self._slots(q, ns) for q, ns in candidates.items()}
        holders: dict[str, list[str]] = {q: [] for q in candidates}

        def augment(n: str, seen: set[str]) -> bool:
            for q in self.domain[n]:
                if q in seen:
                    continue
                seen.add(q)
                if len(holders[q]) < slots[q]:
                    holders[q].append(n)
                    return True
                for i, other in enumerate(holders[q]):
                    if augment(other, seen):
                        holders[q][i] = n
                        return True
            return False

        return all(augment(n, set()) for n in self.nodes)

    def solve(self) -> dict[str, str] | None:
        if any(not self.domain[n] for n in self.nodes):
            return None
        if self.arc_consistency() is not None or not self.enough_peers():
            return None
        return dict(self.assigned) if self._extend() else None

    def _select(self) -> str:
        p = self.p
        return min(
            (n for n in self.nodes if n not in self.assigned),
            key=lambda n: (len(self.domain[n]), -len(p.neighbours[n]), p.order[n]),
        )

    def _values(self, n: str) -> list[str]:
        """``n``'s candidates, best first: an unused peer, fewest edges left to measure, rank.

        Edges to measure count the pair with each placed neighbour, and the best pair still
        possible with each unplaced one, so measured pairs are preferred from the first node.
        """
        p = self.p

        def pending(q: str) -> int:
            total = 0
            for m in p.neighbours[n]:
                if m not in self.members:
                    continue
                if m in self.assigned:
                    total += p.unmeasured(n, q, m, self.assigned[m])
                else:
                    total += min(
                        (
                            p.unmeasured(n, q, m, r)
                            for r in self.domain[m]
                            if r != q or p.fits_together((n, m), q)
                        ),
                        default=0,
                    )
            return total

        def key(q: str) -> tuple[bool, int, int]:
            return bool(self.hosted.get(q)), pending(q), p.rank[n][q]

        return sorted(self.domain[n], key=key)

    def _extend(self) -> bool:
        if len(self.assigned) == len(self.nodes):
            return True
        n = self._select()
        for q in self._values(n):
            self.steps += 1
            if self.max_steps is not None and self.steps > self.max_steps:
                raise _Budget
            if not self._fits(n, q):
                continue
            trail = self._assign(n, q)
            if trail is None:
                continue
            if self._extend():
                return True
            self._unassign(n, q, trail)
        return False

    def _assign(self, n: str, q: str) -> list[tuple[str, str]] | None:
        """Place ``n`` on ``q`` and prune; the removals (to undo), or None on a wipe-out."""
        p = self.p
        self.assigned[n] = q
        self.hosted.setdefault(q, []).append(n)
        self.load[q] = self.load[q].plus(p.need[n]) if q in self.load else p.need[n]
        self.ports[q] = self.ports.get(q, frozenset()) | p.ports[n]
        trail: list[tuple[str, str]] = []
        wiped = False
        for m in self.nodes:
            if m in self.assigned:
                continue
            dom = self.domain[m]
            if q in dom and not self._fits(m, q):
                dom.discard(q)
                trail.append((m, q))
            if m in p.neighbours[n]:
                for r in list(dom):
                    if not p.edges_ok(n, q, m, r):
                        dom.discard(r)
                        trail.append((m, r))
            if not dom:
                wiped = True
                break
        if wiped:
            self._unassign(n, q, trail)
            return None
        return trail

    def _unassign(self, n: str, q: str, trail: list[tuple[str, str]]) -> None:
        for m, r in trail:
            self.domain[m].add(r)
        del self.assigned[n]
        hosted = self.hosted[q]
        hosted.remove(n)
        if hosted:
            rest = _Vec(0.0, 0, 0)
            ports: frozenset[int] = frozenset()
            for o in hosted:
                rest = rest.plus(self.p.need[o])
                ports |= self.p.ports[o]
            self.load[q], self.ports[q] = rest, ports
        else:
            del self.hosted[q], self.load[q], self.ports[q]


# -- filters ------------------------------------------------------------------------------------


def _area(locate: Locator, location: Location) -> Area | None:
    found = locate(location)
    if found is None:
        return None
    if isinstance(found, Area):
        return found
    return Area(float(found[0]), float(found[1]), 0.0)


@dataclass
class Filtered:
    """The filter stage's output: ranked candidates, drops and peer facts."""

    domains: dict[str, list[str]]
    drops: dict[str, list[Drop]]
    answered: dict[str, set[str]]
    exclusive: set[tuple[str, str]]
    capacity: dict[str, _Vec | None]
    locations: dict[str, Location]
    unknown: list[tuple[str, str]]


def filter_offers(
    demands: Sequence[NodeDemand],
    offers: Sequence[Offer],
    *,
    declines: Sequence[Decline] = (),
    excluded_peers: Collection[str] = (),
) -> Filtered:
    """Feasibility filters and ranking: each offer kept (ranked) or dropped with its reason."""
    by_name = {d.name: d for d in demands}
    excluded = set(excluded_peers)
    latest: dict[tuple[str, str], Offer] = {}
    unknown: list[tuple[str, str]] = []
    for o in offers:
        if o.node not in by_name:
            unknown.append((o.peer, o.node))
            continue
        latest.pop((o.node, o.peer), None)
        latest[(o.node, o.peer)] = o  # a later bid of the same peer replaces the earlier one

    capacity: dict[str, _Vec | None] = {}
    locations: dict[str, Location] = {}
    for o in latest.values():
        locations.setdefault(o.peer, o.location)
        if o.free is not None:
            free = _Vec.of(o.free)
            known = capacity.get(o.peer)
            capacity[o.peer] = free if known is None else known.meet(free)
        else:
            capacity.setdefault(o.peer, None)

    drops: dict[str, list[Drop]] = {d.name: [] for d in demands}
    answered: dict[str, set[str]] = {d.name: set() for d in demands}
    scored: dict[str, list[tuple[float, str]]] = {d.name: [] for d in demands}
    exclusive: set[tuple[str, str]] = set()
    for (node, peer), o in latest.items():
        demand = by_name[node]
        answered[node].add(peer)
        need = _Vec.of(demand.resources)
        cap = capacity.get(peer) if o.free is not None else None
        if peer in excluded:
            drops[node].append(Drop(peer, DeclineReason.EXCLUDED))
        elif demand.peer and peer != demand.peer:
            drops[node].append(Drop(peer, DeclineReason.PINNED, f"pinned to {demand.peer}"))
        elif not o.location.satisfies(demand.accept, demand.reject):
            drops[node].append(Drop(peer, DeclineReason.LOCATION, _where(o.location)))
        elif demand.static_ports and not o.static_ports_free:
            drops[node].append(Drop(peer, DeclineReason.PORTS))
        elif cap is not None and (short := cap.short(need)) is not None:
            dim, want, have = short
            drops[node].append(Drop(peer, DeclineReason.RESOURCES, "", False, dim, want, have))
        else:
            if cap is None:
                exclusive.add((node, peer))
            scored[node].append((0.0 if cap is None else cap.headroom(need), peer))

    offered = set(latest)
    for d in declines:
        if d.node not in by_name:
            continue
        if (d.node, d.peer) in offered:
            continue  # its offer counts, not an older refusal
        answered[d.node].add(d.peer)
        if d.peer in excluded:
            drops[d.node].append(Drop(d.peer, DeclineReason.EXCLUDED, d.detail, True))
            continue
        short = None
        if d.reason is DeclineReason.RESOURCES and d.free is not None:
            short = _Vec.of(d.free).short(_Vec.of(by_name[d.node].resources))
        if short is not None:
            dim, want, have = short
            drops[d.node].append(Drop(d.peer, d.reason, d.detail, True, dim, want, have))
        else:
            drops[d.node].append(Drop(d.peer, d.reason, d.detail, True))

    domains = {
        n: [peer for _, peer in sorted(s, key=lambda hp: (-hp[0], hp[1]))]
        for n, s in scored.items()
    }
    return Filtered(domains, drops, answered, exclusive, capacity, locations, unknown)


def _where(location: Location) -> str:
    parts = [location.city, location.country, location.continent]
    return ", ".join(p for p in parts if p) or "no location"


# -- explanations of a failure ------------------------------------------------------------------


def _edge_alone(problem: _Problem, index: int) -> str | None:
    """Why no pair of candidates meets edge ``index`` on its own, or None if some pair does."""
    e = problem.edges[index]
    counts = {_TOO_FAR: 0, _FAILING: 0}
    closest: float | None = None
    for a in problem.domains[e.s]:
        for b in problem.domains[e.t]:
            if a == b:
                if problem.fits_together((e.s, e.t), a):
                    return None
                continue
            status = problem.pair(index, a, b)
            if status < _TOO_FAR:
                return None
            counts[status] += 1
            ra, rb = problem.areas.get(a), problem.areas.get(b)
            if ra is not None and rb is not None:
                bound = area_rtt_lower_bound_ms(ra, rb)
                closest = bound if closest is None else min(closest, bound)
    notes = []
    if closest is not None and e.rtt_ms:
        notes.append(f"closest pair {closest:.0f} ms by distance")
    if counts[_FAILING]:
        n = counts[_FAILING]
        notes.append(f"{n} pair{'s' if n != 1 else ''} measured failing")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"no combination meets edge {e.describe()}{tail}"


def _core(problem: _Problem, nodes: list[str], budget: int) -> list[str]:
    """A minimal set of nodes that cannot be placed together (deletion filter)."""
    core = list(nodes)
    for n in list(nodes):
        trial = [m for m in core if m != n]
        if not trial:
            continue
        try:
            found = _Search(problem, trial, budget).solve()
        except _Budget:
            continue  # unknown: keep n
        if found is None:
            core = trial
    return core


def _describe_core(problem: _Problem, core: list[str]) -> str:
    members = set(core)
    seen: dict[str, int] = {}
    for n in core:
        for q in problem.domains[n]:
            seen[q] = seen.get(q, 0) + 1
    shared = sorted(q for q, k in seen.items() if k > 1)
    edges = [e.describe() for e in problem.edges if e.s in members and e.t in members]
    head = f"no placement for {', '.join(core)} together"
    shown = ", ".join(short_peer(q) for q in shared[:5]) + (", …" if len(shared) > 5 else "")
    compete = (
        f"they compete for {len(shared)} peer{'s' if len(shared) != 1 else ''} ({shown}) "
        "without room for all of them"
    )
    if shared and edges:
        reason = f"{compete}, given edge{'s' if len(edges) != 1 else ''} {'; '.join(edges)}"
    elif shared:
        reason = compete
    elif edges:
        reason = f"no combination meets edges {'; '.join(edges)}"
    else:
        reason = "their candidates exclude each other"
    return f"{head}: {reason}"


# -- entry point --------------------------------------------------------------------------------


def match(
    demands: Sequence[NodeDemand],
    offers: Sequence[Offer],
    edges: Sequence[Edge] = (),
    *,
    declines: Sequence[Decline] = (),
    excluded_peers: Collection[str] = (),
    edge_status: EdgeStatus | None = None,
    locate: Locator | None = None,
    max_steps: int | None = None,
) -> Match:
    """Place every node of ``demands`` on a peer that offered for it, or say why not.

    ``locate`` maps a bid's location to coordinates for the RTT bound (default: GeoNames cities
    through :func:`dms.orchestrator._geo.locate_area`); ``max_steps`` bounds the search (None:
    complete; a stopped search reports so and returns no placement).
    """
    names = [d.name for d in demands]
    if len(set(names)) != len(names):
        raise InvalidInput("ensemble nodes must have distinct names")
    known = set(names)
    for e in edges:
        for end in (e.s, e.t):
            if end not in known:
                raise InvalidInput(f"edge constraint names unknown node {end!r}")
    live_edges = [e for e in edges if e.s != e.t and (e.rtt_ms > 0 or e.bw_bps > 0)]

    f = filter_offers(demands, offers, declines=declines, excluded_peers=excluded_peers)
    locator = locate or locate_area
    areas: dict[str, Area | None] = {}
    if any(e.rtt_ms > 0 for e in live_edges):
        areas = {peer: _area(locator, loc) for peer, loc in f.locations.items()}
    problem = _Problem(
        demands,
        domains=f.domains,
        exclusive=f.exclusive,
        capacity=f.capacity,
        areas=areas,
        edges=live_edges,
        edge_status=edge_status,
    )

    def explain(placement: dict[str, str] | None, conflicts: Sequence[str] = ()) -> Explanation:
        per_node = {
            d.name: NodeExplanation(
                node=d.name,
                answered=len(f.answered[d.name]),
                candidates=tuple(f.domains[d.name]),
                drops=tuple(sorted(f.drops[d.name], key=lambda x: (x.reason.value, x.peer))),
                placed_on=None if placement is None else placement.get(d.name),
                accept_location=bool(d.accept),
            )
            for d in demands
        }
        return Explanation(per_node, tuple(conflicts), tuple(f.unknown))

    # node level: a node without candidates; edge level: an edge no pair meets on its own
    empty = [n for n in names if not f.domains[n]]
    conflicts = [
        text
        for i, e in enumerate(live_edges)
        if f.domains[e.s] and f.domains[e.t] and (text := _edge_alone(problem, i)) is not None
    ]
    if empty or conflicts:
        return Match(None, (), explain(None, conflicts))

    search = _Search(problem, names, max_steps)
    try:
        placement = search.solve()
    except _Budget:
        note = f"search stopped after {search.steps} steps without a placement"
        return Match(None, (), explain(None, [note]))
    if placement is None:
        budget = max(10_000, 4 * search.steps)
        core = _core(problem, names, budget)
        return Match(None, (), explain(None, [_describe_core(problem, core)]))

    return Match(placement, _pending(problem, placement), explain(placement))


def _pending(problem: _Problem, placement: dict[str, str]) -> tuple[tuple[str, str, Edge], ...]:
    out: list[tuple[str, str, Edge]] = []
    for i, e in enumerate(problem.edges):
        a, b = placement[e.s], placement[e.t]
        if problem.pair(i, a, b) == _UNMEASURED:
            out.append((a, b, e))
    return tuple(out)
