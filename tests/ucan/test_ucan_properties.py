"""Properties: attenuation is monotone; no single-byte change slips a token past verification."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dms.errors import TokenError
from dms.ucan import Token, implies, parse_token_list, verify_token
from tests.ucan.helpers import HOUR, NOW, key, make

ROOT, MID, LEAF = key("p-root"), key("p-mid"), key("p-leaf")

segment = st.sampled_from(["a", "b", "dms", "x"])
path = st.lists(segment, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))
paths = st.lists(path, min_size=1, max_size=3, unique=True)


def chain(
    parent_caps: list[str], parent_topics: list[str], caps: list[str], topics: list[str]
) -> Token:
    parent = make(
        ROOT, "delegate", MID.did, caps=parent_caps, topics=parent_topics, expire=NOW + 2 * HOUR
    )
    return make(MID, "invoke", LEAF.did, caps=caps, topics=topics, chain=parent)


def accepted(token: Token) -> bool:
    try:
        verify_token(token, NOW)
    except TokenError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(parent_caps=paths, parent_topics=paths, caps=paths, topics=st.lists(path, max_size=2))
def test_a_child_never_holds_more_than_its_parent(
    parent_caps: list[str], parent_topics: list[str], caps: list[str], topics: list[str]
) -> None:
    within = all(any(implies(p, c) for p in parent_caps) for c in caps) and all(
        any(implies(p, t) for p in parent_topics) for t in topics
    )
    assert accepted(chain(parent_caps, parent_topics, caps, topics)) is within


@settings(max_examples=100, deadline=None)
@given(
    parent_caps=paths,
    data=st.data(),
    suffixes=st.lists(st.lists(segment, max_size=2), min_size=1, max_size=3),
)
def test_narrowing_is_always_accepted(
    parent_caps: list[str], data: st.DataObject, suffixes: list[list[str]]
) -> None:
    narrowed = []
    for suffix in suffixes:
        base = data.draw(st.sampled_from(parent_caps))
        narrowed.append("/".join([base.rstrip("/"), *suffix]) or "/")
    assert accepted(chain(parent_caps, ["/t"], narrowed, ["/t", *(f"/t/{s}" for s in "ab")]))


SIGNED = (
    b'{"tok":['
    + make(
        MID,
        "invoke",
        LEAF.did,
        audience=ROOT.did,
        caps=["/dms/x"],
        topics=["/t/a"],
        chain=make(
            ROOT, "delegate", MID.did, caps=["/dms"], topics=["/t"], depth=3, expire=NOW + 2 * HOUR
        ),
    ).to_json()
    + b"]}"
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(SIGNED) - 1), byte=st.integers(0, 255))
def test_any_single_byte_change_is_rejected_or_harmless(index: int, byte: int) -> None:
    check_mutation(index, byte)


def check_mutation(index: int, byte: int) -> None:
    """Replace one byte of :data:`SIGNED`; the result must not verify as a different token."""
    if SIGNED[index] == byte:
        return
    mutated = SIGNED[:index] + bytes([byte]) + SIGNED[index + 1 :]
    try:
        tokens = parse_token_list(mutated)
    except TokenError:
        return  # unparseable
    if not all(accepted(t) for t in tokens.tokens) or not tokens.tokens:
        return  # rejected
    # Still accepted: only possible if the change was a different spelling of the same token
    # (a key's letter case, or unused low bits of a base64 final character) - it re-marshals to
    # the very bytes that were signed.
    assert tokens.to_json() == SIGNED


def test_original_signed_list_is_accepted() -> None:
    assert all(accepted(t) for t in parse_token_list(SIGNED).tokens)


def test_every_position_flipped_exhaustively() -> None:
    # Deterministic complement to the random test: flip bit 0 and the ASCII case bit everywhere.
    for index in range(len(SIGNED)):
        for mask in (0x01, 0x20):
            check_mutation(index, SIGNED[index] ^ mask)
