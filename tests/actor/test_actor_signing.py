"""Envelope signatures (spec §2.2): Ed25519 and secp256k1, tampering, expiry, wrong signers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms.actor import (
    Address,
    Envelope,
    EnvelopeExpired,
    EnvelopeOptions,
    Handle,
    InvalidSignature,
)
from dms.crypto import ID, Ed25519PrivateKey, EthPrivateKey, PrivateKey, Secp256k1PrivateKey
from dms.did import did_from_public_key
from dms.errors import CryptoError, DMSError

NOW = 1_731_000_000_000_000_000
ED_KEY = Ed25519PrivateKey(bytes(range(32)))
SECP_KEY = Secp256k1PrivateKey(bytes(range(1, 33)))


def _handle(key: PrivateKey, inbox: str = "root") -> Handle:
    return Handle(
        ID.from_public_key(key.public_key),
        did_from_public_key(key.public_key),
        Address("12D3KooWhost", inbox),
    )


def _envelope(key: PrivateKey) -> Envelope:
    return Envelope(
        to=_handle(Ed25519PrivateKey(bytes(32))),
        behavior="/dms/node/peers/self",
        from_=_handle(key, "user-1"),
        nonce=NOW + 1,
        options=EnvelopeOptions(NOW + 30_000_000_000, reply_to="/private/user/1"),
        capability=b'{"tok":[]}',
    ).with_payload({"q": "<&>"})


@pytest.mark.parametrize("key", [ED_KEY, SECP_KEY], ids=["ed25519", "secp256k1"])
def test_sign_then_verify(key: PrivateKey) -> None:
    signed = _envelope(key).sign(key)
    assert signed.signature
    signed.verify(NOW)
    Envelope.from_json(signed.to_json()).verify(NOW)
    assert key.public_key.verify(signed.signing_bytes(), signed.signature)


@pytest.mark.parametrize("key", [ED_KEY, SECP_KEY], ids=["ed25519", "secp256k1"])
def test_changed_fields_break_the_signature(key: PrivateKey) -> None:
    signed = _envelope(key).sign(key)
    for change in (
        {"behavior": "/dms/node/peers/list"},
        {"nonce": signed.nonce + 1},
        {"capability": b""},
        {"message": None},
        {"options": EnvelopeOptions(signed.options.expire, signed.options.reply_to, "t")},
        {"to": Handle()},
    ):
        with pytest.raises(InvalidSignature):
            dataclasses.replace(signed, **change).verify(NOW)


def test_unsigned_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="not signed"):
        _envelope(ED_KEY).verify(NOW)


def test_expired_is_refused_even_when_signed() -> None:
    signed = _envelope(ED_KEY).sign(ED_KEY)
    exp = signed.options.expire
    signed.verify(exp)  # now == exp is still valid: Go rejects only now > exp
    assert not signed.expired(exp)
    assert signed.expired(exp + 1)
    with pytest.raises(EnvelopeExpired) as info:
        signed.verify(exp + 1)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, DMSError)
    assert signed.expired()  # default now is the real clock, far past 2024


def test_wrong_signer_is_refused() -> None:
    with pytest.raises(CryptoError, match="not the sender"):
        _envelope(ED_KEY).sign(SECP_KEY)
    with pytest.raises(CryptoError, match="not the sender"):
        _envelope(ED_KEY).sign(Ed25519PrivateKey(bytes(31) + b"\x01"))


def test_signature_from_another_key_is_refused() -> None:
    other = Ed25519PrivateKey(b"\x07" * 32)
    env = _envelope(ED_KEY)
    forged = dataclasses.replace(env, signature=other.sign(env.signing_bytes()))
    with pytest.raises(InvalidSignature, match="does not match"):
        forged.verify(NOW)


def test_disallowed_key_types_are_refused() -> None:
    eth = EthPrivateKey(bytes(range(1, 33)))
    env = dataclasses.replace(_envelope(ED_KEY), from_=_handle(eth))
    with pytest.raises(CryptoError, match="ETH"):
        env.sign(eth)
    forged = dataclasses.replace(env, signature=eth.sign(env.signing_bytes()))
    with pytest.raises(InvalidSignature, match="not allowed"):
        forged.verify(NOW)


def test_sender_without_a_key_is_refused() -> None:
    env = dataclasses.replace(_envelope(ED_KEY), from_=Handle(), signature=b"x" * 64)
    with pytest.raises(InvalidSignature, match="no actor ID"):
        env.verify(NOW)
    env = dataclasses.replace(env, from_=Handle(ID(b"\x08\x01\x12\x01\x00")))
    with pytest.raises(InvalidSignature, match="not a public key"):
        env.verify(NOW)


_SIGNED = {
    "ed25519": _envelope(ED_KEY).sign(ED_KEY).to_json(),
    "secp256k1": _envelope(SECP_KEY).sign(SECP_KEY).to_json(),
}


@given(st.sampled_from(sorted(_SIGNED)), st.data())
@settings(max_examples=400)
def test_tampering_with_any_byte_is_detected(kind: str, data: st.DataObject) -> None:
    """A changed byte is unparseable, fails verification, or parses to the very same envelope.

    The last case is real and harmless: Go matches keys case-insensitively and ignores unused
    base64 padding bits, so e.g. ``"To"`` for ``"to"`` is the same message to Go and to us.
    """
    original = _SIGNED[kind]
    index = data.draw(st.integers(0, len(original) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[index]), label="byte")
    tampered = original[:index] + bytes([value]) + original[index + 1 :]
    try:
        env = Envelope.from_json(tampered)
        env.verify(NOW)
    except DMSError:
        return
    assert env.to_json() == original
