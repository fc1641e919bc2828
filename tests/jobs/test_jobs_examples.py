"""The spec's examples load; the model answers placement questions; Go JSON round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dms.errors import NotFound
from dms.executor import SpecConfig
from dms.jobs import (
    AllocationConfig,
    EdgeConstraint,
    Ensemble,
    EnsembleInvalid,
    HealthCheck,
    NodeConfig,
    SupervisorConfig,
    load_ensemble,
)
from dms.resources import Location
from tests.jobs.ensembles import DOCKER_HELLO, FULL, TWO_ALLOCS_ONE_NODE

GiB = 1024**3
REPO = Path(__file__).resolve().parents[2]


def test_docker_hello_example() -> None:
    e = load_ensemble(DOCKER_HELLO)
    alloc = e.allocations["alloc1"]
    assert (alloc.type, alloc.executor, alloc.failure_recovery) == ("task", "docker", "stay_down")
    assert alloc.execution == SpecConfig("docker", {"image": "hello-world"})
    assert (alloc.resources.cpu.cores, alloc.resources.ram.size, alloc.resources.disk.size) == (
        1.0,
        GiB,
        GiB,
    )
    assert alloc.dns_name == "alloc1"  # defaults to the name
    assert e.nodes["node1"] == NodeConfig("node1", ("alloc1",), failure_recovery="stay_down")


def test_two_allocs_one_node_with_anchors() -> None:
    e = load_ensemble(TWO_ALLOCS_ONE_NODE)
    assert list(e.allocations) == ["nginx1", "nginx2"]
    one, two = e.allocations["nginx1"], e.allocations["nginx2"]
    assert one.execution == two.execution and one.dns_name == "nginx1"
    assert one.healthcheck == HealthCheck(
        "command",
        ("nginx", "-t"),
        response_type="string",
        response_value="nginx: the configuration file /etc/nginx/nginx.conf syntax is ok",
    )
    assert e.subnet_join and [p.public for p in e.nodes["node1"].ports] == [50001, 50002]
    total = e.node_resources("node1")
    assert (total.cpu.cores, total.ram.size, total.disk.size) == (2.0, GiB, GiB)
    assert e.node_executors("node1") == frozenset({"docker"})


def test_every_field_of_the_full_example() -> None:
    e = load_ensemble(FULL)
    db = e.allocations["db"]
    assert db.resources.cpu.clock_speed == 2.4e9 and db.resources.ram.size == 512 * 1024**2
    assert db.resources.disk.size == 2_000_000_000
    assert db.keys == ("admin",) and db.provision == ("setup",)
    assert db.healthcheck is not None and db.healthcheck.interval_s == 30.0
    assert e.allocations["web"].dns_name == "www"
    n1, n2 = e.nodes["n1"], e.nodes["n2"]
    assert n1.location.accept == (Location(continent="EU", country="NO"),)
    assert n1.location.allows(Location(continent="EU", country="NO", city="Oslo"))
    assert not n2.location.allows(Location(continent="NA"))
    assert (n1.peer, n1.failure_recovery, n2.redundancy) == ("12D3KooWPinned", "restart", 1)
    assert e.edges == (EdgeConstraint("n1", "n2", rtt=50, bw=1_000_000),)
    assert e.supervisor == SupervisorConfig(
        "OneForOne", ("db",), (SupervisorConfig("RestForOne", ("web", "cache")),)
    )
    assert e.scripts == {"setup": b"#!/bin/sh\necho ready\n"}
    assert e.exclude_peers == ("12D3KooWBad",) and e.metadata == {"team": "infra"}
    assert e.contracts["c1"]["did"] == "did:key:z6Mk"
    assert e.escalation_strategy == "redeploy"
    assert e.node_of("cache") == "n2" and e.node_executors("n1") == {"docker", "wasm"}
    with pytest.raises(NotFound):
        e.node_of("nope")


def test_start_order_follows_depends_on_and_is_stable() -> None:
    e = load_ensemble(FULL)
    assert e.start_order("n2") == ["cache", "web"]
    assert e.start_order() == ["db", "cache", "web", "job"]
    chain = Ensemble(
        allocations={
            n: AllocationConfig(n, "null", depends_on=d)
            for n, d in [("a", ("c",)), ("b", ()), ("c", ("b",)), ("d", ())]
        },
        nodes={"n": NodeConfig("n", ("a", "b", "c", "d"))},
    )
    assert chain.start_order("n") == ["b", "c", "a", "d"]


@pytest.mark.parametrize("text", [DOCKER_HELLO, TWO_ALLOCS_ONE_NODE, FULL])
def test_go_json_round_trip(text: str) -> None:
    e = load_ensemble(text)
    data = e.to_json()
    assert Ensemble.from_json(data) == e
    assert Ensemble.from_json(json.loads(data)) == e
    assert Ensemble.from_json(data).to_json() == data


def test_go_json_bytes_of_the_docker_example() -> None:
    """Field order, omitempty and zero structs exactly as Go's json.Marshal writes them."""
    expected = (
        '{"v1":{"escalation_strategy":"","allocations":{"alloc1":{"executor":"docker",'
        '"type":"task","resources":{"cpu":{"clock_speed":0,"cores":1},"ram":{"size":1073741824},'
        '"disk":{"size":1073741824}},"execution":{"type":"docker","params":{"image":"hello-world"}},'
        '"dns_name":"alloc1","healthcheck":{"type":"","exec":null,"endpoint":"","response":'
        '{"type":"","value":""},"interval":0},"failure_recovery":"stay_down"}},"nodes":{"node1":'
        '{"allocations":["alloc1"],"location":{},"failure_recovery":"stay_down"}},'
        '"supervisor":{},"subnet":{}}}'
    )
    assert load_ensemble(DOCKER_HELLO).to_json().decode() == expected


def test_from_json_is_lenient_about_key_case_and_strict_about_meaning() -> None:
    data = json.loads(load_ensemble(DOCKER_HELLO).to_json())
    shouted = {"V1": {k.upper(): v for k, v in data["v1"].items()}}
    assert Ensemble.from_json(shouted) == load_ensemble(DOCKER_HELLO)
    data["v1"]["nodes"]["node1"]["allocations"] = ["ghost"]
    data["v1"]["allocations"]["alloc1"]["executor"] = "lxc"
    with pytest.raises(EnsembleInvalid) as info:
        Ensemble.from_json(data)
    text = str(info.value)
    assert "unknown allocation 'ghost'" in text and "unknown executor 'lxc'" in text
    assert "allocation 'alloc1' is on no node" in text
    with pytest.raises(EnsembleInvalid, match="invalid JSON"):
        Ensemble.from_json(b"{not json")


def test_from_json_keeps_names_as_written_where_go_keeps_map_keys() -> None:
    """Go folds struct field names, not map keys: ``Web`` on node ``Front`` stays so."""
    text = DOCKER_HELLO.replace("alloc1", "Web").replace("node1", "Front")
    ensemble = load_ensemble(text + "metadata: {Owner: Ann}\nkeys: {SSH: abc}\n")
    decoded = Ensemble.from_json(ensemble.to_json())
    assert list(decoded.allocations) == ["Web"] and list(decoded.nodes) == ["Front"]
    assert decoded.nodes["Front"].allocations == ("Web",)
    assert dict(decoded.metadata) == {"Owner": "Ann"} and dict(decoded.keys) == {"SSH": "abc"}
    assert decoded == ensemble


def test_the_repository_examples_are_valid() -> None:
    paths = sorted((REPO / "examples").glob("*.yaml"))
    assert paths
    for path in paths:
        load_ensemble(path.read_text(), base_dir=path.parent)
