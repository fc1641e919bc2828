"""The search agrees with brute force on small random instances.

Hypothesis draws up to 5 nodes and 6 peers with random demands, offers (free resources known or
not), static ports, pinning, accepted locations, edge constraints with peer coordinates, and
measured/failing/unmeasured edge states. Brute force enumerates every assignment and checks it
with its own, independent reading of the rules; :func:`match` must find a placement exactly
when one exists, and the one it returns must pass the same check.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dms.orchestrator import Edge, NodeDemand, Offer, match, rtt_lower_bound_ms
from dms.resources import Location, Resources
from tests.orchestrator._support import res

Status = dict[tuple[str, str, Edge], bool | None]


@dataclass
class Instance:
    demands: list[NodeDemand]
    offers: list[Offer]
    edges: list[Edge]
    excluded: set[str]
    status: Status
    coords: dict[str, tuple[float, float]]

    def locate(self, location: Location) -> tuple[float, float] | None:
        return self.coords.get(location.city)

    def edge_status(self, a: str, b: str, edge: Edge) -> bool | None:
        return self.status.get((a, b, edge))


def _fits(free: Resources, needs: Sequence[Resources]) -> bool:
    cores = sum(float(n.cpu.cores) for n in needs)
    ram = sum(n.ram.size for n in needs)
    disk = sum(n.disk.size for n in needs)
    return cores <= float(free.cpu.cores) + 1e-6 and ram <= free.ram.size and disk <= free.disk.size


def valid(inst: Instance, placement: dict[str, str]) -> bool:
    """An independent reading of the placement rules."""
    by = {(o.node, o.peer): o for o in inst.offers}
    for d in inst.demands:
        p = placement[d.name]
        o = by.get((d.name, p))
        if o is None or p in inst.excluded or (d.peer and d.peer != p):
            return False
        if not o.location.satisfies(d.accept, d.reject):
            return False
        if d.static_ports and not o.static_ports_free:
            return False
    hosted: dict[str, list[NodeDemand]] = defaultdict(list)
    for d in inst.demands:
        hosted[placement[d.name]].append(d)
    for peer, nodes in hosted.items():
        used = [by[(d.name, peer)] for d in nodes]
        if len(nodes) > 1 and any(o.free is None for o in used):
            return False
        if all(o.free is None for o in used):
            continue
        for o in inst.offers:  # every reading of the peer's free resources must hold them
            if (
                o.peer == peer
                and o.free is not None
                and not _fits(o.free, [d.resources for d in nodes])
            ):
                return False
        ports = [p for d in nodes for p in d.static_ports]
        if len(ports) != len(set(ports)):
            return False
    for e in inst.edges:
        a, b = placement[e.s], placement[e.t]
        if a == b or (not e.rtt_ms and not e.bw_bps):
            continue
        near = a not in inst.coords or b not in inst.coords
        if e.rtt_ms and not near and rtt_lower_bound_ms(inst.coords[a], inst.coords[b]) > e.rtt_ms:
            return False
        if inst.status.get((a, b, e)) is False:
            return False
    return True


def brute_force(inst: Instance) -> list[dict[str, str]]:
    names = [d.name for d in inst.demands]
    choices = [sorted({o.peer for o in inst.offers if o.node == n}) for n in names]
    found = []
    for combo in itertools.product(*choices):
        placement = dict(zip(names, combo, strict=True))
        if valid(inst, placement):
            found.append(placement)
    return found


ZONES = [Location(continent="EU", country="DE"), Location(continent="EU", country="FR")]


def chance(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws (not at the bounds hypothesis favours)."""
    width = 1000 // one_in
    return 500 - width // 2 <= draw(st.integers(0, 999)) < 500 + width - width // 2


def uniform(draw: st.DrawFn, lo: int, hi: int) -> int:
    """An integer in [lo, hi], roughly uniform (hypothesis favours the bounds of a range)."""
    return lo + draw(st.integers(0, 999)) % (hi - lo + 1)


@st.composite
def instances(draw: st.DrawFn, crowded: bool = False) -> Instance:
    """A random instance; ``crowded``: few roomy peers, so nodes share them, edges unmeasured."""
    n_nodes = draw(st.integers(1, 5))
    n_peers = draw(st.integers(1, 3) if crowded else st.integers(2, 6))
    low = 3 if crowded else 0
    peers = [f"p{i}" for i in range(n_peers)]
    names = [f"n{i}" for i in range(n_nodes)]
    # peer i sits in city "p<i>" (its coordinates drawn below) of one of two countries
    zone = {p: draw(st.sampled_from(ZONES)) for p in peers}
    coords = {  # some peers cannot be located
        p: (draw(st.floats(0, 20)), draw(st.floats(0, 20))) for p in peers if not chance(draw, 5)
    }
    demands = []
    for n in names:
        ports = tuple(sorted(draw(st.sets(st.sampled_from([80, 443, 8080]), max_size=2))))
        demands.append(
            NodeDemand(
                name=n,
                resources=res(draw(st.integers(1, 3)), draw(st.integers(0, 2))),
                executors=frozenset({"docker"}),
                accept=(draw(st.sampled_from(ZONES)),) if chance(draw, 6) else (),
                static_ports=ports,
                peer=draw(st.sampled_from(peers)) if chance(draw, 10) else "",
            )
        )
    offers = []
    for n in names:
        for p in peers:
            if chance(draw, 5):
                continue  # no bid
            free = None if chance(draw, 5) else res(uniform(draw, low, 8), uniform(draw, low, 8))
            loc = Location(continent=zone[p].continent, country=zone[p].country, city=p)
            offers.append(Offer(p, n, loc, free, static_ports_free=not chance(draw, 10)))
    edges = []
    if n_nodes > 1:
        for _ in range(draw(st.integers(0, 4))):
            s, t = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            edges.append(
                Edge(s, t, draw(st.sampled_from([0, 2, 10, 30])), draw(st.sampled_from([0, 1000])))
            )
    status: Status = {}
    for e in edges:
        for a in peers:
            for b in peers:
                status[(a, b, e)] = draw(
                    st.sampled_from(
                        [True, False, None, None] if crowded else [True, True, False, None]
                    )
                )
    excluded = {draw(st.sampled_from(peers))} if chance(draw, 4) else set()
    return Instance(demands, offers, edges, excluded, status, coords)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(instances())
def test_search_agrees_with_brute_force(inst: Instance) -> None:
    check_against_brute_force(inst)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(instances(crowded=True))
def test_search_agrees_with_brute_force_on_crowded_peers(inst: Instance) -> None:
    check_against_brute_force(inst)


def check_against_brute_force(inst: Instance) -> None:
    result = match(
        inst.demands,
        inst.offers,
        inst.edges,
        excluded_peers=inst.excluded,
        edge_status=inst.edge_status,
        locate=inst.locate,
    )
    solutions = brute_force(inst)
    event("placeable" if solutions else "not placeable")
    if not solutions:
        assert result.placement is None
        assert result.explanation.summary
        assert result.unmeasured == ()
        return
    assert result.placement is not None, (solutions[0], result.explanation.summary)
    assert valid(inst, result.placement)
    event("shares a peer" if len(set(result.placement.values())) < len(inst.demands) else "spread")
    # every edge left to measure is one whose pair is unmeasured, and all of them are listed
    expected = [
        (result.placement[e.s], result.placement[e.t], e)
        for e in inst.edges
        if result.placement[e.s] != result.placement[e.t]
        and (e.rtt_ms or e.bw_bps)
        and inst.status.get((result.placement[e.s], result.placement[e.t], e)) is None
    ]
    assert sorted(map(repr, result.unmeasured)) == sorted(map(repr, expected))
    for node, peer in result.placement.items():
        assert result.explanation.per_node[node].placed_on == peer
