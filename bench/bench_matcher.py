"""The matcher alone: 1,000 bids for a 50-node ensemble with edge constraints (target < 1 s).

Run: ``python bench/bench_matcher.py``. Deterministic instance (seeded): 200 providers in 40
real cities on five continents (GeoNames coordinates through ``dms.orchestrator.locate_area``),
each bidding for 5 of the 50 nodes (1,000 offers, 20 per node), with free CPU 1–16 cores and RAM
2–32 GiB against node demands of 1–8 cores and 1–16 GiB, so the filters drop some. The nodes form
10 chains of 5 with ``rtt ≤ 12 ms`` between neighbours (only providers in one region can host a
chain) plus 10 ``bw`` edges across chains. 80 % of provider pairs are measured OK, 10 % failing,
10 % not measured yet.

Figures, each the median of several runs in this process:

* ``match()``: filters, ranking, arc consistency and the backtracking search, with the
  explanation; "cold" includes loading GeoNames (once per process).
* baseline: the filter stage alone (``filter_offers``: what any matcher must do), and Go's
  method: random permutations of one bid per node checked against every constraint, capped at
  ``SAMPLES`` (Go caps at 1,000,000), reporting how many were valid.
* two unplaceable variants (an impossible edge; three nodes on two Go providers), to time the
  explanation of a failure (the second runs the minimal-conflict search).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

from dms.orchestrator import Edge, NodeDemand, Offer, locate_area, match
from dms.orchestrator._geo import area_rtt_lower_bound_ms
from dms.orchestrator._matcher import filter_offers
from dms.resources import CPU, RAM, Disk, Location, Resources

T = TypeVar("T")
GIB = 1 << 30
SEED = 11
RUNS = 7
SAMPLES = 20_000

CITIES = {
    "EU": [
        ("DE", "Berlin"),
        ("FR", "Paris"),
        ("NL", "Amsterdam"),
        ("DE", "Frankfurt am Main"),
        ("GB", "London"),
        ("PL", "Warsaw"),
        ("AT", "Vienna"),
        ("CH", "Zurich"),
    ],
    "NA": [
        ("US", "New York City"),
        ("US", "Boston"),
        ("US", "Philadelphia"),
        ("US", "Washington"),
        ("CA", "Montreal"),
        ("CA", "Toronto"),
        ("US", "Baltimore"),
        ("US", "Pittsburgh"),
    ],
    "AS": [
        ("JP", "Tokyo"),
        ("JP", "Osaka"),
        ("KR", "Seoul"),
        ("JP", "Nagoya"),
        ("KR", "Busan"),
        ("JP", "Fukuoka"),
        ("JP", "Sendai"),
        ("KR", "Daegu"),
    ],
    "AF": [
        ("ET", "Addis Ababa"),
        ("KE", "Nairobi"),
        ("UG", "Kampala"),
        ("RW", "Kigali"),
        ("TZ", "Arusha"),
        ("KE", "Mombasa"),
        ("ET", "Dire Dawa"),
        ("KE", "Kisumu"),
    ],
    "SA": [
        ("BR", "São Paulo"),
        ("BR", "Rio de Janeiro"),
        ("BR", "Curitiba"),
        ("BR", "Belo Horizonte"),
        ("UY", "Montevideo"),
        ("AR", "Buenos Aires"),
        ("BR", "Porto Alegre"),
        ("PY", "Asunción"),
    ],
}


def resources(cores: int, ram_gib: int) -> Resources:
    return Resources(cpu=CPU(cores=cores), ram=RAM(size=ram_gib * GIB), disk=Disk(size=10 * GIB))


def instance(
    seed: int = SEED,
) -> tuple[list[NodeDemand], list[Offer], list[Edge], Callable[[str, str, Edge], bool | None]]:
    rng = random.Random(seed)
    names = [f"node{i:02d}" for i in range(50)]
    demands = [
        NodeDemand(n, resources(rng.randint(1, 8), rng.randint(1, 16)), frozenset({"docker"}))
        for n in names
    ]
    places = [(cont, c, city) for cont, cities in CITIES.items() for c, city in cities]
    offers: list[Offer] = []
    for j in range(200):
        cont, country, city = places[j % len(places)]
        free = resources(rng.randint(1, 16), rng.randint(2, 32))
        location = Location(continent=cont, country=country, city=city)
        offers.extend(Offer(f"peer{j:03d}", n, location, free) for n in rng.sample(names, 5))
    edges = [
        Edge(names[5 * c + k], names[5 * c + k + 1], rtt_ms=12) for c in range(10) for k in range(4)
    ]
    edges += [Edge(names[5 * c], names[(5 * c + 7) % 50], bw_bps=10**8) for c in range(10)]
    verdict: dict[tuple[str, str], bool | None] = {}

    def status(a: str, b: str, edge: Edge) -> bool | None:
        if (a, b) not in verdict:
            roll = random.Random(f"{a}/{b}").random()
            verdict[(a, b)] = True if roll < 0.8 else False if roll < 0.9 else None
        return verdict[(a, b)]

    return demands, offers, edges, status


def timed(fn: Callable[[], T], runs: int = RUNS) -> tuple[float, T]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def go_sampling(
    demands: list[NodeDemand],
    offers: list[Offer],
    edges: list[Edge],
    status: Callable[[str, str, Edge], bool | None],
) -> tuple[int, int, float]:
    """Go's candidate search: random permutations checked in full, capped at SAMPLES."""
    need = {d.name: d.resources for d in demands}
    bids: dict[str, list[Offer]] = {}
    for o in offers:  # Go keeps bids whose provider said it fits; here: free covers the node
        r = need[o.node]
        if o.free is not None and o.free.cpu.cores >= r.cpu.cores and o.free.ram.size >= r.ram.size:
            bids.setdefault(o.node, []).append(o)
    areas = {o.peer: locate_area(o.location) for o in offers}
    rng = random.Random(SEED)
    names = [d.name for d in demands]
    valid = 0
    start = time.perf_counter()
    for _ in range(SAMPLES):
        pick = {n: rng.choice(bids[n]) for n in names}
        if len({o.peer for o in pick.values()}) < len(names):
            continue  # Go: one bid per peer
        ok = True
        for e in edges:
            a, b = pick[e.s].peer, pick[e.t].peer
            ra, rb = areas[a], areas[b]
            if e.rtt_ms and ra and rb and area_rtt_lower_bound_ms(ra, rb) > e.rtt_ms:
                ok = False
                break
            if status(a, b, e) is False:
                ok = False
                break
        valid += ok
    return valid, SAMPLES, time.perf_counter() - start


def main() -> None:
    demands, offers, edges, status = instance()
    print(f"instance: {len(demands)} nodes, {len(offers)} offers, {len(edges)} edges")

    start = time.perf_counter()
    cold = match(demands, offers, edges, edge_status=status)
    cold_s = time.perf_counter() - start
    warm_s, result = timed(lambda: match(demands, offers, edges, edge_status=status))
    placed = result.placement
    assert placed is not None and cold.placement == placed
    hosts = len(set(placed.values()))
    print(f"match() cold (GeoNames load included): {cold_s * 1000:8.1f} ms")
    print(f"match() warm, median of {RUNS}:          {warm_s * 1000:8.1f} ms")
    print(
        f"  placed {len(placed)} nodes on {hosts} peers, "
        f"{len(result.unmeasured)} edges left to measure"
    )

    filt_s, _ = timed(lambda: filter_offers(demands, offers))
    print(f"baseline: filters + ranking only:      {filt_s * 1000:8.1f} ms")
    valid, samples, go_s = go_sampling(demands, offers, edges, status)
    print(
        f"baseline: Go-style random sampling:    {go_s * 1000:8.1f} ms for {samples:,} "
        f"permutations, {valid} valid ({samples / go_s:,.0f}/s)"
    )

    huge = Edge("node00", "node49", bw_bps=10**12)  # every pair measured failing

    def status_huge(a: str, b: str, e: Edge) -> bool | None:
        return False if e == huge else status(a, b, e)

    fails_s, failed = timed(lambda: match(demands, offers, [*edges, huge], edge_status=status_huge))
    print(f"unplaceable, impossible edge:          {fails_s * 1000:8.1f} ms")
    print(f"  {failed.explanation.conflicts[0]}")

    three = ("node00", "node01", "node02")
    go_only = [Offer(f"go{j}", n, Location(), None) for j in range(2) for n in three]
    crowded = [o for o in offers if o.node not in three] + go_only
    core_s, core = timed(lambda: match(demands, crowded, edges, edge_status=status), runs=3)
    print(f"unplaceable, capacity conflict:        {core_s * 1000:8.1f} ms")
    print(f"  {core.explanation.conflicts[0]}")


if __name__ == "__main__":
    main()
