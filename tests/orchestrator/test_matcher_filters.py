"""Each feasibility filter drops an offer for its reason, and the explanation words it."""

from __future__ import annotations

import pytest

from dms.errors import InvalidInput
from dms.orchestrator import Decline, DeclineReason, Edge, NodeDemand, match
from dms.resources import Location
from tests.orchestrator._support import GIB, demand, offer, res

ADDIS = Location(continent="Africa", country="ET", city="Addis Ababa")
BERLIN = Location(continent="Europe", country="DE", city="Berlin")


def reasons(result_node: object) -> dict[str, int]:
    return {r.value: n for r, n in result_node.counts().items()}  # type: ignore[attr-defined]


def test_resources_short_names_the_dimension_and_the_best_offer() -> None:
    offers = [offer(f"p{i}", "node1", cores=c) for i, c in enumerate([2, 1, 2, 3])]
    result = match([demand("node1", cores=4)], offers)
    assert result.placement is None
    node = result.explanation.per_node["node1"]
    assert reasons(node) == {"resources": 4}
    assert node.line() == (
        "node1: 4 peers answered; 4 short of CPU (need 4 cores, best offer 3); no candidate left"
    )
    shortage = node.shortages()[0]
    assert (shortage.dimension, shortage.need, shortage.best, shortage.count) == ("cpu", 4, 3, 4)


def test_ram_shortage_in_human_units() -> None:
    result = match([demand("n", cores=1, ram_gib=8)], [offer("p", "n", cores=8, ram_gib=4)])
    assert "1 short of RAM (need 8 GiB, best offer 4 GiB)" in result.explanation.summary


def test_gpu_shortage_by_index() -> None:
    need = NodeDemand("n", res(1, 1, vram_gib=8), frozenset({"docker"}))
    result = match([need], [offer("p", "n")])  # no GPU at all
    assert "short of GPU 0 VRAM (need 8 GiB, best offer 0 B)" in result.explanation.summary


def test_excluded_peer_is_dropped() -> None:
    result = match([demand("n")], [offer("a", "n"), offer("b", "n")], excluded_peers={"a"})
    assert result.placement == {"n": "b"}
    assert reasons(result.explanation.per_node["n"]) == {"excluded": 1}
    assert "1 excluded" in result.explanation.summary


def test_pinned_node_takes_only_its_peer() -> None:
    result = match([demand("n", peer="b")], [offer("a", "n", cores=64), offer("b", "n", cores=2)])
    assert result.placement == {"n": "b"}
    assert reasons(result.explanation.per_node["n"]) == {"pinned": 1}


def test_location_accept_and_reject() -> None:
    offers = [offer("et", "n", location=ADDIS), offer("de", "n", location=BERLIN)]
    accepted = match([demand("n", accept=(Location(continent="Africa"),))], offers)
    assert accepted.placement == {"n": "et"}
    assert "1 outside the accepted location" in accepted.explanation.summary
    rejected = match([demand("n", reject=(Location(continent="Africa"),))], offers)
    assert rejected.placement == {"n": "de"}
    assert "1 in a rejected location" in rejected.explanation.summary


def test_static_ports_taken() -> None:
    offers = [offer("a", "n", static_ports_free=False), offer("b", "n")]
    result = match([demand("n", static_ports=(8080,))], offers)
    assert result.placement == {"n": "b"}
    assert "1 with the static ports taken" in result.explanation.summary
    # a node without static ports does not care
    assert match([demand("n")], offers[:1]).placement == {"n": "a"}


def test_offer_for_an_unknown_node_is_counted_not_placed() -> None:
    result = match([demand("n")], [offer("a", "ghost"), offer("b", "n")])
    assert result.placement == {"n": "b"}
    assert result.explanation.unknown_offers == (("a", "ghost"),)
    assert "1 offer named no node of this ensemble" in result.explanation.summary


def test_declines_are_counted_with_reason_and_detail() -> None:
    declines = [
        Decline("a", "n", DeclineReason.EXECUTOR, "docker is not available"),
        Decline("b", "n", DeclineReason.NOT_ONBOARDED, "not onboarded"),
        Decline("c", "n", DeclineReason.PRIVILEGED, "privileged containers are not allowed"),
        Decline("d", "n", DeclineReason.RESOURCES, "RAM short", free=res(8, 2)),
        Decline("e", "n", DeclineReason.BUSY, ""),
    ]
    result = match([demand("n", cores=1, ram_gib=4)], [], declines=declines)
    node = result.explanation.per_node["n"]
    assert node.answered == 5
    assert reasons(node) == {
        "executor": 1,
        "not_onboarded": 1,
        "privileged": 1,
        "resources": 1,
        "busy": 1,
    }
    line = node.line()
    assert "1 without the executor (docker is not available)" in line
    assert "1 not onboarded" in line
    assert "1 refusing privileged containers" in line
    assert "1 short of RAM (need 4 GiB, best offer 2 GiB)" in line
    assert "1 busy" in line


def test_a_bid_outweighs_an_older_decline_of_the_same_peer() -> None:
    result = match(
        [demand("n")],
        [offer("a", "n")],
        declines=[Decline("a", "n", DeclineReason.BUSY, "busy")],
    )
    assert result.placement == {"n": "a"}
    assert result.explanation.per_node["n"].answered == 1
    assert result.explanation.per_node["n"].drops == ()


def test_summary_reads_as_one_paragraph_for_the_cli() -> None:
    offers = [offer(f"c{i}", "node1", cores=2, location=ADDIS) for i in range(9)]
    offers += [offer(f"l{i}", "node1", location=BERLIN) for i in range(2)]
    offers += [offer("x", "node1", location=ADDIS)]
    result = match(
        [demand("node1", cores=4, accept=(Location(continent="Africa"),))],
        offers,
        excluded_peers={"x"},
    )
    assert result.explanation.summary == (
        "node1: 12 peers answered; 9 short of CPU (need 4 cores, best offer 2), "
        "2 outside the accepted location, 1 excluded; no candidate left"
    )
    assert result.explanation.lines() == [result.explanation.summary]


def test_no_answer_at_all() -> None:
    result = match([demand("n1"), demand("n2")], [offer("a", "n2")])
    assert result.placement is None
    assert result.explanation.lines()[0] == "n1: no peer answered"
    assert result.explanation.per_node["n2"].candidates == ("a",)


def test_to_json_keeps_every_drop_with_its_peer() -> None:
    result = match([demand("n", cores=4)], [offer("a", "n", cores=1), offer("b", "n")])
    data = result.explanation.to_json()
    assert data["summary"] == result.explanation.summary
    (node,) = data["nodes"]
    assert node["placed_on"] == "b"
    assert node["drops"] == [
        {"peer": "a", "reason": "resources", "dimension": "cpu", "need": 4.0, "have": 1.0}
    ]
    assert node["shortages"] == [{"dimension": "cpu", "need": 4.0, "best": 1.0, "count": 1}]


def test_ranking_prefers_headroom_and_is_deterministic() -> None:
    offers = [offer("small", "n", cores=2), offer("big", "n", cores=16), offer("mid", "n", cores=4)]
    result = match([demand("n", cores=1)], offers)
    assert result.placement == {"n": "big"}
    assert result.explanation.per_node["n"].candidates == ("big", "mid", "small")
    assert match([demand("n", cores=1)], list(reversed(offers))).placement == {"n": "big"}


def test_known_free_ranks_before_unknown() -> None:
    result = match([demand("n", cores=1)], [offer("go", "n", cores=None), offer("py", "n")])
    assert result.explanation.per_node["n"].candidates == ("py", "go")


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput):
        match([demand("n"), demand("n")], [])
    with pytest.raises(InvalidInput):
        match([demand("n")], [], [Edge("n", "ghost", rtt_ms=5)])


def test_sizes_are_exact() -> None:
    assert res(0, 1).ram.size == GIB
