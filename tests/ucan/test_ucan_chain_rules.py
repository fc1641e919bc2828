"""Every chain-verification rule of spec §3.3: a valid baseline, and one token breaking each rule.

Each rejection is matched on the rule's own message, so a token rejected for some *other* reason
would fail the test.
"""

from __future__ import annotations

import dataclasses

import pytest

from dms.did import DID
from dms.errors import TokenError
from dms.ucan import RevocationSet, Token, verify_token
from tests.ucan.helpers import HOUR, NOW, key, make

ROOT = key("root")
MID = key("mid")
LEAF = key("leaf")
AUD = key("audience")
OTHER = key("other")


def parent(**kw: object) -> Token:
    """The baseline parent: root delegates /dms (topic /nunet) to MID for two hours."""
    args: dict[str, object] = {
        "topics": ["/nunet"],
        "caps": ["/dms"],
        "expire": NOW + 2 * HOUR,
        "nonce": b"parent-nonce",
    }
    args.update(kw)
    return make(ROOT, "delegate", MID.did, **args)  # type: ignore[arg-type]


def child(chain: Token | None = None, **kw: object) -> Token:
    """The baseline child: MID invokes /dms/deploy on AUD, chained from :func:`parent`."""
    args: dict[str, object] = {
        "audience": AUD.did,
        "topics": ["/nunet/eu"],
        "caps": ["/dms/deploy"],
        "expire": NOW + HOUR,
        "nonce": b"child-nonce!",
        "chain": parent() if chain is None else chain,
    }
    args.update(kw)
    return make(MID, "invoke", LEAF.did, **args)  # type: ignore[arg-type]


def rejected(token: Token, match: str, revoked: RevocationSet | None = None) -> None:
    with pytest.raises(TokenError, match=match):
        verify_token(token, NOW, revoked)


def test_baseline_chain_verifies() -> None:
    verify_token(child(), NOW)
    verify_token(child(), NOW + HOUR)  # exactly at expiry is still valid (Go: now > exp)


# rule 1: expiry of the token or any link -------------------------------------------------------


def test_expired_leaf_is_rejected() -> None:
    with pytest.raises(TokenError, match="expired"):
        verify_token(child(), NOW + HOUR + 1)


def test_expired_parent_is_rejected_even_if_the_leaf_is_fresh() -> None:
    # Parent expired at NOW-1; the leaf claims NOW+HOUR. Expiry is checked before anything else.
    rejected(child(parent(expire=NOW - 1)), "expired")


# rule 2: revoke tokens only need a good signature ----------------------------------------------


def test_revoke_token_only_checks_signature() -> None:
    # A revoke token with a chain that would fail every other rule still verifies...
    bogus_chain = make(OTHER, "invoke", OTHER.did, expire=NOW - 1 + 2 * HOUR)
    revoke = make(ROOT, "revoke", MID.did, caps=None, chain=bogus_chain)
    verify_token(revoke, NOW)
    # ...but not with somebody else's signature, and not once expired.
    rejected(make(ROOT, "revoke", MID.did, caps=None, signer=OTHER), "invalid signature")
    with pytest.raises(TokenError, match="expired"):
        verify_token(revoke, NOW + 2 * HOUR)


# rule 3: depth limit ---------------------------------------------------------------------------


def test_depth_limit() -> None:
    # root -(delegate, depth d)-> MID -(delegate)-> LEAF -(invoke)-> AUD: the root link sits at
    # depth 2 below the leaf.
    def chain_with_root_depth(depth: int) -> Token:
        root = make(ROOT, "delegate", MID.did, caps=["/dms"], depth=depth, expire=NOW + 3 * HOUR)
        mid = make(MID, "delegate", LEAF.did, caps=["/dms"], chain=root, expire=NOW + 2 * HOUR)
        return make(LEAF, "invoke", AUD.did, caps=["/dms/x"], chain=mid)

    verify_token(chain_with_root_depth(0), NOW)  # 0 = unlimited
    verify_token(chain_with_root_depth(2), NOW)
    rejected(chain_with_root_depth(1), "too deep")


# rule 4: revocation at every level -------------------------------------------------------------


def test_revoked_leaf_is_rejected() -> None:
    token = child()
    rejected(
        token, "revoked", RevocationSet([make(MID, "revoke", LEAF.did, nonce=b"child-nonce!")])
    )


def test_revoking_the_parent_kills_the_child() -> None:
    revocation = make(ROOT, "revoke", MID.did, caps=None, nonce=b"parent-nonce")
    rejected(child(), "revoked", RevocationSet([revocation]))


def test_revocation_is_keyed_on_issuer_subject_and_nonce() -> None:
    other_nonce = make(ROOT, "revoke", MID.did, nonce=b"other-nonce!")
    other_subject = make(ROOT, "revoke", LEAF.did, nonce=b"parent-nonce")
    verify_token(child(), NOW, RevocationSet([other_nonce, other_subject]))


# rule 5: chain links ---------------------------------------------------------------------------


def test_chain_must_be_a_delegate_token() -> None:
    rejected(
        child(make(ROOT, "invoke", MID.did, caps=["/dms"], expire=NOW + 2 * HOUR)),
        "not a delegate token",
    )


def test_chain_must_not_expire_before_the_token() -> None:
    rejected(child(parent(expire=NOW + HOUR - 1)), "outlives")


def test_chain_is_verified_recursively() -> None:
    forged_parent = parent(signer=OTHER)
    rejected(child(forged_parent), "invalid signature on delegate token")


def test_issuer_must_be_the_parents_subject() -> None:
    impostor = make(
        OTHER, "invoke", LEAF.did, audience=AUD.did, caps=["/dms/deploy"], chain=parent()
    )
    rejected(impostor, "not the subject of its parent")


def test_audience_may_only_narrow() -> None:
    verify_token(child(parent(audience=AUD.did)), NOW)  # same audience
    verify_token(child(parent(), audience=DID()), NOW)  # parent unrestricted
    rejected(child(parent(audience=OTHER.did)), "audience not allowed")
    rejected(child(parent(audience=AUD.did), audience=DID()), "audience not allowed")


def test_topics_may_only_narrow() -> None:
    verify_token(child(topics=["/nunet"]), NOW)
    verify_token(child(topics=[]), NOW)
    rejected(child(topics=["/other"]), "topic '/other' not allowed")
    rejected(child(topics=["/nunetx"]), "topic '/nunetx' not allowed")
    rejected(child(parent(topics=[])), "topic '/nunet/eu' not allowed")


def test_capabilities_may_only_narrow() -> None:
    verify_token(child(caps=["/dms"]), NOW)
    verify_token(child(parent(caps=["/"]), caps=["/anything/at/all"]), NOW)
    rejected(child(caps=["/dms/deploy", "/public"]), "'/public'.*not implied")
    rejected(child(caps=["/dmsx"]), "not implied")
    rejected(child(parent(caps=None)), "not implied")


def test_empty_capability_list_passes_the_attenuation_loop() -> None:
    # Go checks attenuation per capability, so a child asking for nothing passes (and is useless).
    verify_token(child(caps=[]), NOW)


# rule 6: the issuer's signature ----------------------------------------------------------------


def test_leaf_signature_must_be_the_issuers() -> None:
    rejected(child(signer=OTHER), "invalid signature on invoke token")


def test_unsigned_token_is_rejected() -> None:
    token = child()
    unsigned = Token(dataclasses.replace(token.dms, signature=b""))
    rejected(unsigned, "invalid signature")


@pytest.mark.parametrize("uri", ["did:key:zNotBase58!", "did:web:example.com", "", "did:key:z6Mk"])
def test_unresolvable_issuer_fails_closed(uri: str) -> None:
    token = child()
    bad = Token(dataclasses.replace(token.dms, issuer=DID(uri)))
    with pytest.raises(TokenError):
        verify_token(bad, NOW)
