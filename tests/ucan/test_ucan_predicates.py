"""Capability matching and the authorisation predicates (spec §3.2, §3.3 helpers)."""

from __future__ import annotations

import pytest

from dms.did import DID
from dms.errors import InvalidInput
from dms.ucan import (
    allow_action,
    allow_broadcast,
    allow_delegation,
    allow_invocation,
    capability,
    implies,
    subsumes,
    verify_depth,
)
from tests.ucan.helpers import HOUR, NOW, key, make

A, B, C, D = key("a"), key("b"), key("c"), key("d")


@pytest.mark.parametrize(
    ("c", "o", "expected"),
    [
        ("/dms", "/dms", True),
        ("/", "/anything", True),
        ("/", "/", True),
        ("/dms", "/dms/deploy", True),
        ("/dms", "/dmsx", False),
        ("/dms/deploy", "/dms", False),
        ("/dms/", "/dms/x", False),  # "/dms/" + "/" is not a prefix of "/dms/x"
        ("", "/x", True),  # as in Go: "" + "/" prefixes every path (we never issue "")
    ],
)
def test_implies(c: str, o: str, expected: bool) -> None:
    assert implies(c, o) is expected


def test_capability_validation() -> None:
    assert capability("/public") == "/public"
    for bad in ("public", "", "/a b"):
        with pytest.raises(InvalidInput):
            capability(bad)


def test_allow_invocation() -> None:
    t = make(A, "invoke", B.did, audience=C.did, caps=["/dms"]).dms
    assert allow_invocation(t, B.did, C.did, "/dms/x")
    assert not allow_invocation(t, C.did, C.did, "/dms/x")  # wrong subject
    assert not allow_invocation(t, B.did, D.did, "/dms/x")  # wrong audience
    assert not allow_invocation(t, B.did, C.did, "/public")  # cap not covered
    anyone = make(A, "invoke", B.did, caps=["/dms"]).dms
    assert allow_invocation(anyone, B.did, D.did, "/dms")
    assert not allow_invocation(make(A, "delegate", B.did).dms, B.did, C.did, "/dms")


def test_allow_broadcast() -> None:
    t = make(A, "broadcast", B.did, topics=["/nunet"], caps=["/dms"]).dms
    assert allow_broadcast(t, B.did, "/nunet/x", "/dms/y")
    assert not allow_broadcast(t, B.did, "/other", "/dms")
    assert not allow_broadcast(t, B.did, "/nunet", "/public")
    assert not allow_broadcast(t, C.did, "/nunet", "/dms")
    aimed = make(A, "broadcast", B.did, audience=C.did, topics=["/nunet"], caps=["/dms"]).dms
    assert not allow_broadcast(aimed, B.did, "/nunet", "/dms")  # audience must be empty


def test_allow_action_accepts_side_chains_within_the_require_anchor() -> None:
    # D requires: "whatever B vouches for within /public (topic /nunet)".
    anchor = make(
        D, "delegate", B.did, topics=["/nunet"], caps=["/public"], depth=1, expire=NOW + 3 * HOUR
    ).dms
    b_to_c = make(B, "delegate", C.did, caps=["/public"], expire=NOW + 2 * HOUR)
    direct = make(B, "invoke", C.did, caps=["/public/x"]).dms
    side = make(C, "invoke", A.did, caps=["/public/x"], topics=["/nunet"], chain=b_to_c).dms
    assert allow_action(anchor, direct)
    assert allow_action(anchor, side)
    # beyond the anchor's caps, topics, time, depth, or not anchored on B at all:
    assert not allow_action(anchor, make(B, "invoke", C.did, caps=["/private"]).dms)
    assert not allow_action(anchor, make(B, "invoke", C.did, topics=["/x"], caps=["/public"]).dms)
    assert not allow_action(anchor, make(B, "invoke", C.did, expire=NOW + 4 * HOUR).dms)
    assert not allow_action(anchor, make(C, "invoke", A.did, caps=["/public"]).dms)
    c_to_a = make(C, "delegate", A.did, caps=["/public"], chain=b_to_c, expire=NOW + 2 * HOUR)
    two_hops = make(A, "invoke", D.did, caps=["/public"], chain=c_to_a).dms
    assert not allow_action(anchor, two_hops)
    # only delegate tokens can be require anchors
    invoke_anchor = make(D, "invoke", B.did, caps=["/public"], expire=NOW + 3 * HOUR).dms
    assert not allow_action(invoke_anchor, direct)


def test_verify_depth_and_allow_delegation() -> None:
    d1 = make(A, "delegate", B.did, caps=["/dms"], depth=1).dms
    assert verify_depth(d1, 1)
    assert not verify_depth(d1, 2)
    assert allow_delegation(d1, "invoke", B.did, DID(), topics=(), expire_ns=NOW, c="/dms/x")
    assert not allow_delegation(d1, "delegate", B.did, DID(), topics=(), expire_ns=NOW, c="/dms")
    assert not allow_delegation(d1, "invoke", C.did, DID(), topics=(), expire_ns=NOW, c="/dms")
    assert not allow_delegation(
        d1, "invoke", B.did, DID(), topics=(), expire_ns=NOW + 2 * HOUR, c="/dms"
    )


def test_subsumes() -> None:
    wide = make(A, "delegate", B.did, caps=["/dms"], expire=NOW + 2 * HOUR).dms
    narrow = make(A, "invoke", B.did, caps=["/dms/x"], topics=["/t"]).dms
    assert subsumes(wide, narrow)  # action and topics are not compared
    assert not subsumes(narrow, wide)
    assert not subsumes(make(A, "delegate", C.did, caps=["/"], expire=NOW + 9 * HOUR).dms, narrow)
