"""The orchestrator's subnet plan: a free /24, stable addresses, Go's manifest shape."""

from __future__ import annotations

import ipaddress
import random

import pytest

from dms.subnet import ORCHESTRATOR_NAME, SubnetExhausted, SubnetPlan
from dms.subnet._plan import random_cidr


def test_a_plan_reserves_gateway_and_broadcast_and_hands_out_the_rest_in_order() -> None:
    plan = SubnetPlan(ipaddress.IPv4Network("10.9.8.0/24"))
    plan.used |= {plan.gateway_ip, plan.broadcast_ip}
    assert (plan.gateway_ip, plan.broadcast_ip) == ("10.9.8.1", "10.9.8.255")
    assert plan.add("web", "peerA", "web") == "10.9.8.2"
    assert plan.add("db", "peerB", "db") == "10.9.8.3"
    assert plan.add(ORCHESTRATOR_NAME, "peerC") == "10.9.8.4"
    assert plan.routing_table == {"10.9.8.2": "peerA", "10.9.8.3": "peerB", "10.9.8.4": "peerC"}
    assert plan.dns_records == {"web": "10.9.8.2", "db": "10.9.8.3"}
    assert plan.peers() == {"peerA", "peerB", "peerC"}


def test_a_moved_allocation_keeps_its_address_and_record() -> None:
    plan = SubnetPlan.new()
    ip = plan.add("web", "peerA", "web")
    assert plan.add("web", "peerZ", "web") == ip
    assert plan.routing_table[ip] == "peerZ" and plan.dns_records["web"] == ip
    assert plan.remove("web") == ip
    assert ip not in plan.routing_table and "web" not in plan.dns_records
    assert plan.add("other", "peerA") == ip  # freed addresses are reused


def test_the_chosen_network_avoids_what_is_already_routed() -> None:
    rng = random.Random(7)
    taken = [ipaddress.IPv4Network("10.0.0.0/9")]  # half of 10/8
    for _ in range(50):
        cidr = random_cidr(taken, rng)
        assert cidr.prefixlen == 24 and cidr.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
        assert not cidr.overlaps(taken[0])
    with pytest.raises(SubnetExhausted):
        random_cidr([ipaddress.IPv4Network("10.0.0.0/8")], rng)


def test_a_full_subnet_says_so() -> None:
    plan = SubnetPlan(ipaddress.IPv4Network("10.1.1.0/30"))  # hosts .1 and .2
    plan.used |= {"10.1.1.1"}
    plan.add("a", "p")
    with pytest.raises(SubnetExhausted, match="no free address"):
        plan.add("b", "p")


def test_the_plan_round_trips_through_gos_manifest_keys() -> None:
    plan = SubnetPlan.new()
    plan.add("web", "peerA", "web")
    data = plan.to_dict()
    assert set(data) == {
        "cidr",
        "gateway_ip",
        "broadcast_ip",
        "used_ips",
        "routing_table",
        "index_routing_table",
        "dns_records",
    }
    assert SubnetPlan.from_dict(data) == plan
