"""dms.subnet payloads against Go's encoding/json, byte for byte (go/subnet/main.go declares the
Go DMS's subnet structs and re-marshals what we send)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dms.jobs import OkResponse
from dms.subnet import (
    SubnetAddPeer,
    SubnetCreate,
    SubnetDestroy,
    SubnetDNSAdd,
    SubnetDNSRemove,
    SubnetJoin,
    SubnetPeers,
    SubnetPortMap,
)
from tests.gocompat.goprog import run_lines

pytestmark = pytest.mark.go

PEER = "12D3KooWJbJFaZ3k5sNd8DjQgg3aERoKtBAnirEvPV8yp76kEXHB"
TABLE = {"10.4.7.2": PEER, "10.4.7.3": "12D3KooWA"}


def _remarshal(go_program: Callable[[str], Path], kind: str, payloads: list[Any]) -> list[str]:
    lines = [json.dumps({"kind": kind, "data": json.loads(p.to_json())}) for p in payloads]
    return run_lines(go_program("subnet"), "remarshal", lines)


CASES: list[tuple[str, list[Any]]] = [
    ("create", [SubnetCreate("e1", {}), SubnetCreate("e<1>", TABLE, ip="10.4.7.1")]),
    (
        "join",
        [
            SubnetJoin("e1", PEER, "10.4.7.9", {"web.internal": "10.4.7.2"}),
            SubnetJoin("e1", PEER, "10.4.7.9", routing_table=TABLE),
        ],
    ),
    ("destroy", [SubnetDestroy("e1")]),
    ("addpeer", [SubnetAddPeer("e1", PEER, "10.4.7.2")]),
    ("peers", [SubnetPeers("e1", TABLE), SubnetPeers("e1", {})]),
    ("mapport", [SubnetPortMap("e1", "TCP", "0.0.0.0", 8080, "10.4.7.2", 80)]),
    ("dnsadd", [SubnetDNSAdd("e1", {"web": "10.4.7.2", "db": "10.4.7.3"})]),
    ("dnsremove", [SubnetDNSRemove("e1", ("web", "db")), SubnetDNSRemove("e1")]),
    ("response", [OkResponse(True), OkResponse(False, "no")]),
]


@pytest.mark.parametrize(("kind", "payloads"), CASES, ids=[k for k, _ in CASES])
def test_subnet_payloads_are_go_bytes(
    go_program: Callable[[str], Path], kind: str, payloads: list[Any]
) -> None:
    expected = [p.to_json().decode() for p in payloads]
    assert _remarshal(go_program, kind, payloads) == expected
    for payload in payloads:
        decoded = type(payload).from_json(payload.to_json())
        if isinstance(payload, SubnetCreate) and payload.routing_table:
            decoded = SubnetCreate(**{**decoded.__dict__, "cidr": ""})  # derived: see below
        assert decoded == payload


def test_go_reads_our_create_and_drops_only_our_extension_keys(
    go_program: Callable[[str], Path],
) -> None:
    ours = SubnetCreate("e1", TABLE, cidr="10.4.7.0/24", gateway_ip="10.4.7.1")
    (go,) = _remarshal(go_program, "create", [ours])
    assert go == SubnetCreate("e1", TABLE).to_json().decode()
    # A Go orchestrator's create (no CIDR) still tells us the network: the table's /24.
    assert SubnetCreate.from_json(go).cidr == "10.4.7.0/24"
