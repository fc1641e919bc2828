"""The verified-signature cache never lets a tampered link through and never skips time checks."""

from __future__ import annotations

import dataclasses

import pytest

from dms.errors import TokenError
from dms.ucan import RevocationSet, Token, verify_token
from dms.ucan._chain import _SIGNED_FIELDS, VERIFIED
from dms.ucan._token import DMSToken
from tests.ucan.helpers import HOUR, NOW, key
from tests.ucan.test_ucan_chain_rules import child, parent

OTHER = key("other-cache")


def _tampered(t: DMSToken, name: str) -> DMSToken:
    value = getattr(t, name)
    changes: dict[str, object] = {
        "action": "delegate" if value != "delegate" else "invoke",
        "issuer": OTHER.did,
        "subject": OTHER.did,
        "audience": OTHER.did,
        "topic": (*t.topic, "/extra"),
        "capability": (*(t.capability or ()), "/more"),
        "nonce": (t.nonce or b"") + b"x",
        "expire": t.expire + 1,
        "depth": t.depth + 1,
        "signature": t.signature[:-1] + bytes([t.signature[-1] ^ 1]),
    }
    return dataclasses.replace(t, **{name: changes[name]})


def test_every_signed_field_is_covered() -> None:
    # A new DMSToken field must be compared by the cache: this fails until it is considered.
    assert set(_SIGNED_FIELDS) == {
        "action", "issuer", "subject", "audience", "topic", "capability", "nonce", "expire",
        "depth", "signature",
    }  # fmt: skip


@pytest.mark.parametrize("name", _SIGNED_FIELDS)
def test_a_cached_signature_does_not_cover_a_tampered_leaf(name: str) -> None:
    good = child()
    verify_token(good, NOW)  # now cached
    assert VERIFIED.known(good.dms)
    forged = Token(_tampered(good.dms, name))
    with pytest.raises(TokenError):
        verify_token(forged, NOW)


def test_a_cached_leaf_with_a_tampered_parent_is_rejected() -> None:
    good = child()
    verify_token(good, NOW)
    bad_parent = Token(dataclasses.replace(parent().dms, capability=("/",)))
    forged = Token(dataclasses.replace(good.dms, chain=bad_parent))
    with pytest.raises(TokenError, match="invalid signature"):
        verify_token(forged, NOW)


def test_cached_tokens_are_still_checked_for_expiry_and_revocation() -> None:
    good = child()
    verify_token(good, NOW)
    with pytest.raises(TokenError, match="expired"):
        verify_token(good, NOW + 2 * HOUR)
    with pytest.raises(TokenError, match="revoked"):
        verify_token(good, NOW, RevocationSet([parent()]))
