"""CapabilityContext between real Ed25519 contexts: consume/require/provide, anchors, revocation."""

from __future__ import annotations

import pytest

from dms.crypto import Ed25519PrivateKey
from dms.did import DID, KeyProvider
from dms.errors import CapabilityError, TokenError
from dms.ucan import (
    MAX_CAPABILITY_SIZE,
    CapabilityContext,
    Token,
    TokenList,
    parse_token_list,
    verify_token,
)
from tests.ucan.helpers import HOUR, NOW, make


class Clock:
    """A settable clock for the contexts."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class Node:
    """A context plus a separate actor key, as a DMS or a CLI has."""

    def __init__(self, clock: Clock) -> None:
        self.ctx = CapabilityContext(KeyProvider(Ed25519PrivateKey.generate()), clock=clock)
        self.actor = KeyProvider(Ed25519PrivateKey.generate()).did

    @property
    def did(self) -> DID:
        return self.ctx.did


@pytest.fixture
def clock() -> Clock:
    return Clock()


def send(sender: Node, receiver: Node, caps: list[str], reply: str = "") -> bytes:
    """What the actor layer does: Provide on the sender, Consume on the receiver."""
    blob = sender.ctx.provide(
        receiver.did,
        sender.actor,
        receiver.actor,
        expire_ns=NOW + 30 * 10**9,
        invoke=caps,
        delegate=[reply] if reply else [],
    )
    receiver.ctx.consume(sender.did, blob)
    return blob


def allowed(sender: Node, receiver: Node, caps: list[str]) -> bool:
    return receiver.ctx.require(receiver.did, sender.actor, receiver.actor, caps)


def test_root_anchor_round_trip(clock: Clock) -> None:
    user, dms = Node(clock), Node(clock)
    send(user, dms, ["/dms/node/peers/self"])
    assert not allowed(user, dms, ["/dms/node/peers/self"])  # dms does not trust user yet
    dms.ctx.add_roots([user.did])
    send(user, dms, ["/dms/node/peers/self"])
    assert allowed(user, dms, ["/dms/node/peers/self"])
    assert not allowed(user, dms, ["/dms/other"])  # the tokens name exactly the behaviour
    assert not allowed(user, dms, [])  # nothing asked, nothing authorised
    clock.now = NOW + 31 * 10**9
    assert not allowed(user, dms, ["/dms/node/peers/self"])  # expired


def test_reply_continuation_via_delegate_token(clock: Clock) -> None:
    invoker, replier = Node(clock), Node(clock)
    replier.ctx.add_roots([invoker.did])
    blob = send(invoker, replier, ["/dms/node/hello"], reply="/dms/actor/replyto/7")
    assert [t.dms.action for t in parse_token_list(blob).tokens] == ["invoke", "delegate"]
    assert allowed(invoker, replier, ["/dms/node/hello"])
    # The replier trusts nobody in particular on the invoker's side, yet the invoker accepts
    # the reply: it is chained from the invoker's own delegate token.
    reply = send(replier, invoker, ["/dms/actor/replyto/7"])
    chained = [t for t in parse_token_list(reply).tokens if t.dms.chain is not None]
    assert len(chained) == 1 and chained[0].dms.chain is not None
    assert chained[0].dms.chain.dms.issuer == invoker.did
    assert allowed(replier, invoker, ["/dms/actor/replyto/7"])
    assert not allowed(replier, invoker, ["/dms/actor/replyto/8"])


def test_provide_anchor_chain_and_delegate(clock: Clock) -> None:
    org, user, dms = Node(clock), Node(clock), Node(clock)
    dms.ctx.add_roots([org.did])
    grant = org.ctx.grant(
        "delegate", user.did, caps=["/dms/deployment"], topics=["/nunet"], expire_ns=NOW + HOUR
    )
    user.ctx.add_provide(grant.tokens)
    send(user, dms, ["/dms/deployment/bid"])
    assert allowed(user, dms, ["/dms/deployment/bid"])
    assert not allowed(user, dms, ["/dms/other"])
    # re-delegation inherits the parent's expiry when none is given
    delegated = user.ctx.delegate("delegate", dms.did, caps=["/dms/deployment/bid"])
    assert [t.dms.expire for t in delegated.tokens] == [NOW + HOUR]
    verify_token(delegated.tokens[0], NOW)
    with pytest.raises(CapabilityError, match="no provide anchor"):
        user.ctx.delegate("delegate", dms.did, caps=["/public"])
    also = user.ctx.delegate(
        "invoke", dms.did, caps=["/dms/deployment"], expire_ns=NOW + 60, self_sign="also"
    )
    assert [t.dms.chain is not None for t in also.tokens] == [True, False]
    only = user.ctx.delegate(
        "invoke", dms.did, caps=["/public"], expire_ns=NOW + 60, self_sign="only"
    )
    assert len(only) == 1 and only.tokens[0].dms.chain is None
    with pytest.raises(CapabilityError, match="explicit expiry"):
        user.ctx.delegate("invoke", dms.did, caps=["/public"], self_sign="only")
    with pytest.raises(CapabilityError, match="self-sign"):
        user.ctx.delegate("invoke", dms.did, caps=["/public"], self_sign="maybe")


def test_require_anchor_accepts_side_chains(clock: Clock) -> None:
    # The public-testnet recipe: the DMS requires "whatever NuNet vouches for within /public".
    nunet, user, dms = Node(clock), Node(clock), Node(clock)
    dms.ctx.add_require(
        dms.ctx.grant(
            "delegate", nunet.did, caps=["/public"], topics=["/nunet"], expire_ns=NOW + 2 * HOUR
        ).tokens
    )
    send(user, dms, ["/public/hello"])
    assert not allowed(user, dms, ["/public/hello"])  # self-signed only: not enough
    user.ctx.add_provide(
        nunet.ctx.grant("delegate", user.did, caps=["/public"], expire_ns=NOW + HOUR).tokens
    )
    send(user, dms, ["/public/hello"])
    assert allowed(user, dms, ["/public/hello"])
    # NuNet granting more than the require anchor covers does not widen what the DMS accepts.
    user.ctx.add_provide(
        nunet.ctx.grant("delegate", user.did, caps=["/private"], expire_ns=NOW + HOUR).tokens
    )
    send(user, dms, ["/private/x"])
    assert not allowed(user, dms, ["/private/x"])


def test_broadcast(clock: Clock) -> None:
    org, node, peer = Node(clock), Node(clock), Node(clock)
    peer.ctx.add_roots([org.did])
    node.ctx.add_provide(
        org.ctx.grant(
            "delegate", node.did, caps=["/dms/deployment"], topics=["/nunet"], expire_ns=NOW + HOUR
        ).tokens
    )
    blob = node.ctx.provide_broadcast(
        node.actor, "/nunet", expire_ns=NOW + 10**9, caps=["/dms/deployment/request"]
    )
    tokens = parse_token_list(blob).tokens
    assert [t.dms.action for t in tokens] == ["broadcast", "broadcast"]
    assert all(t.dms.audience.empty() for t in tokens)
    peer.ctx.consume(node.did, blob)
    req = peer.ctx.require_broadcast
    assert req(peer.did, node.actor, "/nunet", ["/dms/deployment/request"])
    assert not req(peer.did, node.actor, "/other", ["/dms/deployment/request"])
    assert not peer.ctx.require(peer.did, node.actor, peer.actor, ["/dms/deployment/request"])


def test_revocation_kills_child_tokens(clock: Clock) -> None:
    org, user, dms = Node(clock), Node(clock), Node(clock)
    dms.ctx.add_roots([org.did])
    grant = org.ctx.grant("delegate", user.did, caps=["/dms"], expire_ns=NOW + HOUR)
    user.ctx.add_provide(grant.tokens)
    send(user, dms, ["/dms/x"])
    assert allowed(user, dms, ["/dms/x"])

    with pytest.raises(CapabilityError, match="only the issuer"):
        user.ctx.revoke(grant.tokens[0])
    revocation = org.ctx.revoke(grant.tokens[0])
    assert revocation.dms.action == "revoke"
    assert revocation.dms.capability == ("/dms",)  # newest Go form copies cap
    assert revocation.dms.nonce == grant.tokens[0].dms.nonce
    dms.ctx.add_revoke([revocation])
    assert not allowed(user, dms, ["/dms/x"])  # already-consumed child is dead
    # The user no longer chains from the revoked grant, and the receiver would refuse it anyway.
    kept = dms.ctx.consume(user.did, send(user, dms, ["/dms/x"]))
    assert all(t.dms.chain is None for t in kept)
    assert not allowed(user, dms, ["/dms/x"])
    child = make(
        user.ctx.provider,
        "invoke",
        user.actor,
        caps=["/dms/x"],
        chain=grant.tokens[0],
        expire=NOW + 60,
    )
    assert dms.ctx.consume(user.did, TokenList((child,)).to_json()) == []


def test_older_revoke_form_with_null_cap_is_accepted(clock: Clock) -> None:
    org, user = Node(clock), Node(clock)
    old = make(org.ctx.provider, "revoke", user.did, caps=None)
    assert b'"cap":null' in old.to_json()
    user.ctx.add_revoke([old])
    assert user.ctx.list().revoke.tokens == (old,)


def test_anchors_must_verify(clock: Clock) -> None:
    org, user = Node(clock), Node(clock)
    forged = make(
        org.ctx.provider,
        "delegate",
        user.did,
        signer=user.ctx.provider,
    )
    with pytest.raises(CapabilityError, match="invalid signature"):
        user.ctx.add_provide([forged])
    with pytest.raises(CapabilityError, match="invalid signature"):
        user.ctx.add_require([forged])
    expired = make(org.ctx.provider, "delegate", user.did, expire=NOW - 1)
    with pytest.raises(CapabilityError, match="expired"):
        user.ctx.add_provide([expired])
    not_ours = org.ctx.grant("delegate", org.did, caps=["/x"], expire_ns=NOW + 1)
    with pytest.raises(CapabilityError, match="granted to"):
        user.ctx.add_provide(not_ours.tokens)
    with pytest.raises(CapabilityError, match="not a revoke token"):
        user.ctx.add_revoke(not_ours.tokens)
    with pytest.raises(CapabilityError, match="root"):
        user.ctx.add_roots([DID("did:web:example.com")])


def test_subsumed_anchors_are_deduplicated_and_remove_works(clock: Clock) -> None:
    org, user = Node(clock), Node(clock)

    def grant(caps: list[str], exp: int) -> Token:
        return org.ctx.grant("delegate", user.did, caps=caps, expire_ns=exp).tokens[0]

    narrow, wide, newer = (
        grant(["/dms/x"], NOW + HOUR),
        grant(["/dms"], NOW + HOUR),
        grant(["/dms/x"], NOW + HOUR),
    )
    user.ctx.add_provide([narrow])
    user.ctx.add_provide([wide])  # subsumes narrow, which goes
    user.ctx.add_provide([newer])  # subsumed by wide: dropped
    assert user.ctx.list().provide.tokens == (wide,)
    user.ctx.add_roots([org.did, org.did])
    assert user.ctx.list().roots == (org.did,)
    user.ctx.remove(roots=[org.did], provide=[wide])
    view = user.ctx.list()
    assert view.roots == () and view.provide == TokenList()


def test_consume_refuses_oversized_and_malformed_blobs(clock: Clock) -> None:
    node = Node(clock)
    with pytest.raises(TokenError, match="too large"):
        node.ctx.consume(node.did, b" " * (MAX_CAPABILITY_SIZE + 1))
    with pytest.raises(TokenError):
        node.ctx.consume(node.did, b"{nope")


def test_discard_forgets_consumed_tokens(clock: Clock) -> None:
    user, dms = Node(clock), Node(clock)
    dms.ctx.add_roots([user.did])
    blob = send(user, dms, ["/x"])
    assert dms.ctx.consumed(user.actor)
    dms.ctx.discard(blob)
    assert not dms.ctx.consumed(user.actor)
    assert not allowed(user, dms, ["/x"])


def test_provide_needs_capabilities(clock: Clock) -> None:
    node = Node(clock)
    with pytest.raises(CapabilityError):
        node.ctx.provide(node.did, node.actor, node.actor, expire_ns=NOW + 1, invoke=[])
    with pytest.raises(CapabilityError):
        node.ctx.grant("revoke", node.did, caps=["/x"], expire_ns=NOW + 1)
    with pytest.raises(CapabilityError):
        node.ctx.grant("delegate", node.did, caps=[], expire_ns=NOW + 1)


def test_consumed_tokens_are_bounded_pruned_and_presented_ones_checked_first(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dms.ucan._context as context_module

    monkeypatch.setattr(context_module, "MAX_CONSUMED_PER_SUBJECT", 10)
    user, dms = Node(clock), Node(clock)
    dms.ctx.add_roots([user.did])
    for _ in range(25):  # every message brings fresh tokens
        send(user, dms, ["/public/hello"])
    assert len(dms.ctx.consumed(user.actor)) == 10  # the oldest were dropped
    # the tokens a message carries settle the check on their own...
    blob = user.ctx.provide(
        dms.did, user.actor, dms.actor, expire_ns=NOW + 30 * 10**9, invoke=["/dms/node"]
    )
    presented = dms.ctx.consume(user.did, blob)
    assert dms.ctx.require(dms.did, user.actor, dms.actor, ["/dms/node/peers/list"], presented)
    # ...and stored ones still count afterwards, as in Go (a message without tokens)
    assert dms.ctx.require(dms.did, user.actor, dms.actor, ["/dms/node/peers/list"])
    # tokens presented by somebody else never speak for this subject
    other = Node(clock)
    assert not dms.ctx.require(dms.did, other.actor, dms.actor, ["/dms/node"], presented)
    # expired tokens are pruned (and the subject forgotten) on a later consume
    clock.now = NOW + 3600 * 10**9
    fresh = Node(clock)
    dms.ctx.add_roots([fresh.did])
    blob = fresh.ctx.provide(
        dms.did, fresh.actor, dms.actor, expire_ns=clock.now + 30 * 10**9, invoke=["/public"]
    )
    dms.ctx.consume(fresh.did, blob)
    assert user.actor not in dms.ctx._consumed


def test_each_reply_chains_only_from_its_own_continuation_grant(clock: Clock) -> None:
    invoker, replier = Node(clock), Node(clock)
    replier.ctx.add_roots([invoker.did])
    for n in range(60):  # 60 past invocations leave 60 continuation grants about the replier
        send(invoker, replier, ["/dms/node/hello"], reply=f"/dms/actor/replyto/{n}")
    reply = send(replier, invoker, ["/dms/actor/replyto/41"])
    chained = [t for t in parse_token_list(reply).tokens if t.dms.chain is not None]
    assert [t.dms.chain.dms.capability for t in chained if t.dms.chain] == [
        ("/dms/actor/replyto/41",)
    ]
    assert allowed(replier, invoker, ["/dms/actor/replyto/41"])
    # a broader grant about the replier is found through its prefix too
    broad = invoker.ctx.grant(
        "delegate", replier.did, audience=invoker.actor, expire_ns=NOW + HOUR, caps=["/dms/actor"]
    )
    replier.ctx.consume(invoker.did, broad.to_json())
    reply = send(replier, invoker, ["/dms/actor/replyto/99"])
    assert any(
        t.dms.chain and t.dms.chain.dms.capability == ("/dms/actor",)
        for t in parse_token_list(reply).tokens
    )
