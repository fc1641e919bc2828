"""dms.jobs deployment payloads against Go's encoding/json and crypto/ed25519, byte for byte.

The Go program (go/deployment/main.go) declares the Go DMS structs of bids, bid requests,
commits and allocations. It verifies bids we signed, signs bids we must verify, and re-marshals
our payloads so that what we send is exactly what a Go orchestrator or provider would send.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dms import gojson
from dms.actor import Address, Handle
from dms.crypto import ID, Ed25519PrivateKey, peer_id_from_public_key
from dms.did import did_from_public_key
from dms.executor import SpecConfig
from dms.jobs import (
    AllocateRequest,
    AllocationDeploymentConfig,
    AllocationKey,
    Bid,
    BidRequest,
    CommitRequest,
    EnsembleBidRequest,
    LocationConstraints,
)
from dms.resources import CPU, GPU, RAM, Disk, GPUVendor, Location, Resources
from tests.gocompat.goprog import run_lines

pytestmark = pytest.mark.go

RESOURCES = Resources(
    cpu=CPU(cores=2.5, clock_speed=3_000_000_000),
    gpus=(GPU(index=0, vendor=GPUVendor.NVIDIA, vram=8 * 1024**3),),
    ram=RAM(size=4 * 1024**3),
    disk=Disk(size=10 * 1024**3),
)


def _bid(key: Ed25519PrivateKey, **changes: Any) -> Bid:
    peer = str(peer_id_from_public_key(key.public_key))
    fields: dict[str, Any] = {
        "ensemble_id": "ens-<&>",
        "node_id": "node\u2028one",
        "peer": peer,
        "location": Location("EU", "DE", "Berlin", 3320, "DTAG"),
        "handle": Handle(
            ID.from_public_key(key.public_key),
            did_from_public_key(key.public_key),
            Address(peer, "root"),
        ),
        "free": RESOURCES,
    }
    fields.update(changes)
    return Bid(**fields)


def test_go_verifies_our_bids_and_reads_them_back(go_program: Callable[[str], Path]) -> None:
    keys = [Ed25519PrivateKey(bytes([i]) * 32) for i in range(1, 5)]
    bids = [_bid(k).sign(k) for k in keys]
    bids.append(_bid(keys[0], location=Location()).sign(keys[0]))
    forged = _bid(keys[1], node_id="other").sign(keys[1])
    forged = Bid(**{**forged.__dict__, "node_id": "changed"})
    lines = [b.to_json().decode() for b in [*bids, forged]]
    out = run_lines(go_program("deployment"), "verify", lines)
    assert [json.loads(line)["valid"] for line in out] == [True] * len(bids) + [False]
    for bid, line in zip([*bids, forged], out, strict=True):
        # {"json":<Go's re-marshalled Bid>,"valid":...}: Go drops our "Free" extension and
        # keeps V1 byte for byte.
        remarshalled = line[len('{"json":') : line.rindex(',"valid":')]
        assert remarshalled.encode() == gojson.marshal(gojson.Struct(V1=bid.__gojson__()["V1"]))


def test_we_verify_bids_go_signed(go_program: Callable[[str], Path]) -> None:
    lines = []
    for i in range(1, 4):
        key = Ed25519PrivateKey(bytes([i + 40]) * 32)
        unsigned = _bid(key, free=None)
        lines.append(json.dumps({"seed": key.seed.hex(), "bid": json.loads(unsigned.to_json())}))
    out = run_lines(go_program("deployment"), "sign", lines)
    for line in out:
        bid = Bid.from_json(line)
        assert bid.verify()
        assert bid.to_json() == line.encode()  # our bytes are Go's
        tampered = Bid(**{**bid.__dict__, "ensemble_id": "other"})
        assert not tampered.verify()


def _remarshal(go_program: Callable[[str], Path], kind: str, payloads: list[bytes]) -> list[str]:
    lines = [
        json.dumps({"kind": kind, "data": json.loads(p)}, ensure_ascii=False) for p in payloads
    ]
    return run_lines(go_program("deployment"), "remarshal", lines)


def test_bid_requests_are_go_bytes(go_program: Callable[[str], Path]) -> None:
    requests = [
        EnsembleBidRequest("e1", 0, (BidRequest("n1"),)),
        EnsembleBidRequest(
            "e<2>",
            (1 << 64) - 1,
            (
                BidRequest(
                    "n1",
                    ("docker", "wasm"),
                    RESOURCES,
                    LocationConstraints(accept=(Location("EU", "DE"),)),
                    static_ports=(8080, 9090),
                    dynamic_ports=2,
                    privileged_docker=True,
                ),
                BidRequest("n2", ("null",), location=LocationConstraints(reject=(Location("NA"),))),
            ),
            peer_exclusion=("12D3KooWA", "12D3KooWB"),
        ),
    ]
    payloads = [r.to_json() for r in requests]
    assert _remarshal(go_program, "bidrequest", payloads) == [p.decode() for p in payloads]
    for request in requests:
        assert EnsembleBidRequest.from_json(request.to_json()) == request
    # Explain is ours: a Go provider ignores it and reads everything else.
    explained = EnsembleBidRequest("e1", 3, (BidRequest("n1"),), explain=True)
    (go,) = _remarshal(go_program, "bidrequest", [explained.to_json()])
    assert go == EnsembleBidRequest("e1", 3, (BidRequest("n1"),)).to_json().decode()


def test_commit_and_allocate_payloads_are_go_bytes(go_program: Callable[[str], Path]) -> None:
    commits = [
        CommitRequest("e1", "a1", "n1"),
        CommitRequest("e1", "a2", "n1", RESOURCES, {0: 80, 10000: 8080, 9: 9}),
    ]
    payloads = [c.to_json() for c in commits]
    assert _remarshal(go_program, "commit", payloads) == [p.decode() for p in payloads]
    for commit in commits:
        assert CommitRequest.from_json(commit.to_json()) == commit

    config = AllocationDeploymentConfig(
        type="service",
        executor="docker",
        resources=RESOURCES,
        execution=SpecConfig("docker", {"image": "busybox", "cmd": ["sh", "-c", "echo <hi>"]}),
        provision_scripts=(("a-setup", b"#!/bin/sh\necho setup\n"), ("b-more", b"\x00\xff")),
        keys=(AllocationKey("ssh", "id.pub", "/root/.ssh/authorized_keys"),),
        volumes=({"name": "data", "size": "1GiB"},),
    )
    bare = AllocationDeploymentConfig(type="task", executor="null")
    allocate = [
        AllocateRequest("e1", "n1", {"web": config, "job": bare}),
        AllocateRequest("e2", "n2", {}),
    ]
    payloads = [a.to_json() for a in allocate]
    assert _remarshal(go_program, "allocate", payloads) == [p.decode() for p in payloads]
    for request in allocate:
        assert AllocateRequest.from_json(request.to_json()) == request
    # Our extensions (DNS name, dependencies, script order) are ignored by Go, kept by us.
    extended = AllocationDeploymentConfig(
        type="task",
        executor="null",
        provision_scripts=(("z", b"1"), ("a", b"2")),
        dns_name="web",
        depends_on=("db",),
    )
    request = AllocateRequest("e3", "n1", {"x": extended})
    assert AllocateRequest.from_json(request.to_json()) == request
    (go,) = _remarshal(go_program, "allocate", [request.to_json()])
    assert json.loads(go)["Allocations"]["x"]["ProvisionScripts"] == {"a": "Mg==", "z": "MQ=="}
