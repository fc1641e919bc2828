"""Subnet payloads from peers: Go's lenient field matching, and a one-line refusal of anything
that would put a bad address, port or protocol into the data path."""

from __future__ import annotations

import pytest

from dms.errors import InvalidInput
from dms.subnet import SubnetCreate, SubnetJoin, SubnetPeers, SubnetPortMap, ensemble_behavior


def test_field_names_match_as_go_matches_them() -> None:
    request = SubnetPortMap.from_json(
        b'{"subnetid":"e1","PROTOCOL":"udp","SourcePort":"53","DestIP":"10.1.2.3","destport":"5353"}'
    )
    assert request == SubnetPortMap("e1", "UDP", "0.0.0.0", 53, "10.1.2.3", 5353)
    join = SubnetJoin.from_json(b'{"SubnetID":"e1","IP":"10.1.2.9","Records":{"Web":"10.1.2.3"}}')
    assert join.records == {"Web": "10.1.2.3"}  # map keys are data: kept as written


@pytest.mark.parametrize(
    ("cls", "payload", "message"),
    [
        (SubnetCreate, b'{"RoutingTable":{}}', "SubnetID is required"),
        (SubnetCreate, b'{"SubnetID":"e","RoutingTable":{"10.1.2.300":"p"}}', "not an IPv4"),
        (SubnetCreate, b'{"SubnetID":"e","CIDR":"10.1.2.0/33"}', "not an IPv4 network"),
        (SubnetJoin, b'{"SubnetID":"e","IP":"::1"}', "not an IPv4 address"),
        (SubnetPeers, b'{"SubnetID":"e","PartialRoutingTable":[]}', "object"),
        (SubnetPortMap, b'{"SubnetID":"e","Protocol":"SCTP","DestIP":"10.0.0.2"}', "not TCP"),
        (SubnetPortMap, b'{"SubnetID":"e","DestIP":"10.0.0.2","DestPort":"70000"}', "range"),
        (SubnetPortMap, b'{"SubnetID":"e","DestIP":"10.0.0.2","SourcePort":"x"}', "port number"),
        (SubnetCreate, b"{not json", "JSON"),
    ],
)
def test_bad_payloads_are_refused_with_one_line(cls: type, payload: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        cls.from_json(payload)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_dynamic_behaviours_are_gos_templates() -> None:
    assert ensemble_behavior("abc", "/dms/node/subnet/create") == (
        "/dms/ensemble/abc/node/subnet/create"
    )
