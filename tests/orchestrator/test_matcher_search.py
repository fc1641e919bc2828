"""The search: edge constraints, sharing a peer, Go providers, measuring, and why it fails."""

from __future__ import annotations

from dms.orchestrator import Edge, Offer, match
from dms.resources import Location
from tests.orchestrator._support import demand, offer, res


def city(country: str, name: str) -> Location:
    return Location(continent="X", country=country, city=name)


BERLIN, POTSDAM = city("DE", "Berlin"), city("DE", "Potsdam")
TOKYO, SYDNEY, LIMA = city("JP", "Tokyo"), city("AU", "Sydney"), city("PE", "Lima")
ADDIS, NAIROBI = city("ET", "Addis Ababa"), city("KE", "Nairobi")


def test_only_one_assignment_meets_the_rtt_edges() -> None:
    # a, b and c must be pairwise within 5 ms: only Berlin/Potsdam/Berlin-2 are close enough
    offers = [
        offer("a-tokyo", "a", location=TOKYO),
        offer("a-lima", "a", location=LIMA),
        offer("a-berlin", "a", location=BERLIN),
        offer("b-sydney", "b", location=SYDNEY),
        offer("b-potsdam", "b", location=POTSDAM),
        offer("b-addis", "b", location=ADDIS),
        offer("c-nairobi", "c", location=NAIROBI),
        offer("c-berlin", "c", location=BERLIN),
        offer("c-tokyo", "c", location=TOKYO),
    ]
    edges = [Edge("a", "b", rtt_ms=5), Edge("b", "c", rtt_ms=5), Edge("a", "c", rtt_ms=5)]
    result = match([demand("a"), demand("b"), demand("c")], offers, edges)
    assert result.placement == {"a": "a-berlin", "b": "b-potsdam", "c": "c-berlin"}
    assert len(result.unmeasured) == 3  # close enough by distance, still to be measured


def test_only_one_pair_measured_ok() -> None:
    peers = ["p1", "p2", "p3", "p4"]
    offers = [offer(p, n) for p in peers for n in ("s", "t")]
    edge = Edge("s", "t", bw_bps=100_000_000)
    good = ("p3", "p2")

    def status(a: str, b: str, e: Edge) -> bool | None:
        return (a, b) == good

    result = match([demand("s", cores=6), demand("t", cores=6)], offers, [edge], edge_status=status)
    assert result.placement == {"s": "p3", "t": "p2"}
    assert result.unmeasured == ()
    assert result.final


def test_unmeasured_pairs_are_reported_and_measured_ones_replace_them() -> None:
    offers = [offer(p, n) for p in ("p1", "p2", "p3") for n in ("s", "t")]
    edge = Edge("s", "t", rtt_ms=50)
    demands = [demand("s", cores=6), demand("t", cores=6)]  # too big to share a peer
    first = match(demands, offers, [edge])
    assert first.placement is not None
    assert first.unmeasured == ((first.placement["s"], first.placement["t"], edge),)
    # the orchestrator measured that pair: failing; the next call avoids it
    failed = {(first.placement["s"], first.placement["t"])}
    second = match(
        demands, offers, [edge], edge_status=lambda a, b, e: False if (a, b) in failed else None
    )
    assert second.placement is not None
    assert (second.placement["s"], second.placement["t"]) not in failed
    assert len(second.unmeasured) == 1


def test_prefers_pairs_already_measured_ok() -> None:
    offers = [offer(p, n) for p in ("p1", "p2", "p3") for n in ("s", "t")]
    edge = Edge("s", "t", rtt_ms=50)
    ok = {("p2", "p3")}

    def status(a: str, b: str, e: Edge) -> bool | None:
        return True if (a, b) in ok else None

    result = match([demand("s", cores=6), demand("t", cores=6)], offers, [edge], edge_status=status)
    assert result.placement == {"s": "p2", "t": "p3"}
    assert result.final


def test_two_nodes_share_a_peer_when_its_free_resources_cover_the_sum() -> None:
    offers = [offer("big", "a", cores=4), offer("big", "b", cores=4)]
    result = match([demand("a", cores=2), demand("b", cores=2)], offers)
    assert result.placement == {"a": "big", "b": "big"}


def test_no_sharing_beyond_the_sum() -> None:
    offers = [offer("big", "a", cores=4), offer("big", "b", cores=4)]
    result = match([demand("a", cores=3), demand("b", cores=2)], offers)
    assert result.placement is None
    assert result.explanation.conflicts == (
        "no placement for a, b together: they compete for 1 peer (big) "
        "without room for all of them",
    )


def test_spreads_before_sharing() -> None:
    offers = [offer(p, n, cores=16) for p in ("p1", "p2") for n in ("a", "b")]
    result = match([demand("a"), demand("b")], offers)
    assert result.placement is not None
    assert len(set(result.placement.values())) == 2


def test_static_ports_collide_on_a_shared_peer() -> None:
    offers = [offer("one", "a"), offer("one", "b")]
    clash = match([demand("a", static_ports=(80,)), demand("b", static_ports=(80,))], offers)
    assert clash.placement is None
    apart = match([demand("a", static_ports=(80,)), demand("b", static_ports=(443,))], offers)
    assert apart.placement == {"a": "one", "b": "one"}


def test_go_providers_never_host_two_nodes() -> None:
    go = [offer("go", n, cores=None) for n in ("a", "b")]
    alone = match([demand("a"), demand("b")], go)
    assert alone.placement is None
    assert "compete for 1 peer (go)" in alone.explanation.summary
    both = match([demand("a"), demand("b")], [*go, offer("py", "a", cores=None)])
    assert both.placement == {"a": "py", "b": "go"}


def test_a_go_offer_blocks_the_peer_for_every_other_node() -> None:
    # "mixed" bid for a with free unknown and for b with free known: it hosts one of them only
    offers = [offer("mixed", "a", cores=None), offer("mixed", "b", cores=64)]
    assert match([demand("a"), demand("b")], offers).placement is None
    assert match([demand("b")], offers).placement == {"b": "mixed"}


def test_nodes_on_one_peer_meet_any_edge() -> None:
    offers = [
        offer("tokyo", "a", location=TOKYO),
        offer("lima", "b", location=LIMA),
        offer("lima", "a", location=LIMA),
    ]
    edges = [Edge("a", "b", rtt_ms=1, bw_bps=10**10)]
    result = match([demand("a"), demand("b")], offers, edges, edge_status=lambda *_: False)
    assert result.placement == {"a": "lima", "b": "lima"}
    assert result.final


def test_edge_no_pair_can_meet_is_explained_with_the_closest_distance() -> None:
    offers = [
        offer("berlin", "a", location=BERLIN),
        offer("tokyo", "a", location=TOKYO),
        offer("addis", "b", location=ADDIS),
        offer("lima", "b", location=LIMA),
    ]
    result = match([demand("a", cores=6), demand("b", cores=6)], offers, [Edge("a", "b", 10)])
    assert result.placement is None
    (conflict,) = result.explanation.conflicts
    # Berlin–Addis Ababa is about 5,400 km: light needs 36 ms there and back
    assert conflict == "no combination meets edge a–b rtt ≤ 10 ms (closest pair 36 ms by distance)"
    assert result.explanation.summary.endswith(conflict)


def test_measured_failures_are_counted_in_the_edge_explanation() -> None:
    offers = [offer(p, n, cores=2) for p in ("p1", "p2") for n in ("a", "b")]
    result = match(
        [demand("a", cores=2), demand("b", cores=2)],
        offers,
        [Edge("a", "b", bw_bps=10**9)],
        edge_status=lambda *_: False,
    )
    assert result.explanation.conflicts == (
        "no combination meets edge a–b bw ≥ 1 Gbit/s (2 pairs measured failing)",
    )


def test_unknown_locations_are_allowed_optimistically() -> None:
    offers = [
        offer("nowhere", "a", location=city("ZZ", "Atlantis")),
        offer("lima", "b", location=LIMA),
    ]
    result = match([demand("a"), demand("b")], offers, [Edge("a", "b", rtt_ms=1)])
    assert result.placement == {"a": "nowhere", "b": "lima"}
    assert [u[:2] for u in result.unmeasured] == [("nowhere", "lima")]


def test_a_country_without_city_is_not_pruned_inside_its_own_span() -> None:
    us = Location(continent="NA", country="US")
    nyc = city("US", "New York City")
    la = city("US", "Los Angeles")
    # the "US" peer may be anywhere in the US, so it may be next to Los Angeles
    near = match(
        [demand("a"), demand("b")],
        [offer("us", "a", location=us), offer("la", "b", location=la)],
        [Edge("a", "b", 5)],
    )
    assert near.placement == {"a": "us", "b": "la"}
    # but New York and Los Angeles are known to be ~26 ms apart
    far = match(
        [demand("a"), demand("b")],
        [offer("ny", "a", location=nyc), offer("la", "b", location=la)],
        [Edge("a", "b", 5)],
    )
    assert far.placement is None


def test_custom_locator_and_pinning_with_edges() -> None:
    spots = {"x": (0.0, 0.0), "y": (0.0, 1.0), "z": (0.0, 90.0)}
    offers = [Offer(p, n, Location(city=p), res(8, 8, 8)) for p in spots for n in ("a", "b")]
    result = match(
        [demand("a", peer="z"), demand("b")],
        offers,
        [Edge("a", "b", rtt_ms=20)],
        locate=lambda loc: spots.get(loc.city),
    )
    # a is pinned to z; only z itself is within 20 ms of z (x and y are 10,000 km away)
    assert result.placement == {"a": "z", "b": "z"}


def test_capacity_conflict_names_the_minimal_set_of_nodes() -> None:
    # three nodes, two Go peers that each bid for all three; d is unrelated and placeable
    offers = [offer(p, n, cores=None) for p in ("g1", "g2") for n in ("a", "b", "c")]
    offers.append(offer("py", "d"))
    result = match([demand("a"), demand("b"), demand("c"), demand("d")], offers)
    assert result.placement is None
    assert result.explanation.conflicts == (
        "no placement for a, b, c together: they compete for 2 peers (g1, g2) "
        "without room for all of them",
    )


def test_step_budget_is_reported() -> None:
    names = [f"n{i}" for i in range(10)]
    offers = [offer(f"p{j}", n) for j in range(10) for n in names]
    result = match([demand(n) for n in names], offers, max_steps=3)
    assert result.placement is None
    assert result.explanation.conflicts == ("search stopped after 4 steps without a placement",)


def test_more_nodes_than_peers_can_hold_is_proved_at_once() -> None:
    # pigeonhole: 20 nodes of 4 cores, 19 peers of 6 cores; backtracking alone would take
    # 19! steps, the matching check none
    names = [f"n{i:02d}" for i in range(20)]
    offers = [offer(f"p{j:02d}", n, cores=6) for j in range(19) for n in names]
    result = match([demand(n, cores=4) for n in names], offers, max_steps=10_000)
    assert result.placement is None
    (conflict,) = result.explanation.conflicts
    assert conflict.startswith(f"no placement for {', '.join(names)} together: they compete")
    # one more peer and it fits, one node per peer
    offers += [offer("p19", n, cores=6) for n in names]
    placed = match([demand(n, cores=4) for n in names], offers, max_steps=10_000).placement
    assert placed is not None and len(set(placed.values())) == 20


def test_empty_ensemble_is_trivially_placed() -> None:
    assert match([], []).placement == {}
