"""Actor IDs: Go's crypto.ID (padded base32 of the marshalled public key)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.crypto import ID, Ed25519PrivateKey, Secp256k1PrivateKey, marshal_public_key
from dms.errors import CryptoError


def test_id_of_ed25519_key_starts_like_go() -> None:
    key = Ed25519PrivateKey(bytes(32)).public_key
    actor_id = ID.from_public_key(key)
    assert actor_id.public_key_bytes == marshal_public_key(key)
    text = actor_id.to_base32()
    assert text.startswith("BAAREI")  # base32 of 08 01 12 20 (Go base32.StdEncoding)
    assert text.endswith("====")  # 36 bytes → padded
    assert ID.from_base32(text) == actor_id
    assert actor_id.public_key() == key
    assert str(actor_id) == text


def test_empty_id() -> None:
    assert ID().to_base32() == ""
    assert ID.from_base32("") == ID()
    assert ID().empty()
    with pytest.raises(CryptoError):
        ID().public_key()


@pytest.mark.parametrize("bad", ["CAESI", "caesi===", "!!!!!!!!", "CAESIé=="])
def test_bad_base32_is_refused(bad: str) -> None:
    with pytest.raises(CryptoError):
        ID.from_base32(bad)


@given(st.binary(max_size=100))
def test_base32_round_trip(data: bytes) -> None:
    actor_id = ID(data)
    assert actor_id.to_base32() == base64.b32encode(data).decode()
    assert ID.from_base32(actor_id.to_base32()) == actor_id


def test_secp256k1_id_round_trip() -> None:
    pub = Secp256k1PrivateKey.generate().public_key
    assert ID.from_base32(ID.from_public_key(pub).to_base32()).public_key() == pub
