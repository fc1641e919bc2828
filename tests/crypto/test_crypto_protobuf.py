"""libp2p key protobuf, checked against the libp2p peer-id spec test vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.crypto import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    EthPrivateKey,
    KeyType,
    Secp256k1PrivateKey,
    marshal_private_key,
    marshal_public_key,
    unmarshal_private_key,
    unmarshal_public_key,
)
from dms.errors import CryptoError

# libp2p/specs peer-ids/peer-ids.md, "Test vectors".
ED25519_PRIV = (
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8"
    "be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
ED25519_PUB = "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
SECP256K1_PRIV = "0802122053dadf1d5a164d6b4acdb15e24aa4c5b1d3461bdbd42abedb0a4404d56ced8fb"
SECP256K1_PUB = "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"


@pytest.mark.parametrize(
    ("priv_hex", "pub_hex", "key_type"),
    [
        (ED25519_PRIV, ED25519_PUB, KeyType.ED25519),
        (SECP256K1_PRIV, SECP256K1_PUB, KeyType.SECP256K1),
    ],
)
def test_spec_vectors(priv_hex: str, pub_hex: str, key_type: KeyType) -> None:
    priv = unmarshal_private_key(bytes.fromhex(priv_hex))
    assert priv.key_type == key_type
    assert marshal_private_key(priv).hex() == priv_hex
    assert marshal_public_key(priv.public_key).hex() == pub_hex
    assert unmarshal_public_key(bytes.fromhex(pub_hex)) == priv.public_key
    assert priv.public_key.verify(b"msg", priv.sign(b"msg"))


def test_legacy_96_byte_ed25519_private_key() -> None:
    data = bytes.fromhex(ED25519_PRIV)[4:]
    legacy = b"\x08\x01\x12\x60" + data + data[32:]
    assert marshal_private_key(unmarshal_private_key(legacy)).hex() == ED25519_PRIV
    tampered = b"\x08\x01\x12\x60" + data + bytes(32)
    with pytest.raises(CryptoError, match="legacy"):
        unmarshal_private_key(tampered)


def test_fields_in_either_order_are_accepted() -> None:
    pub = bytes.fromhex(ED25519_PUB)
    swapped = pub[2:] + pub[:2]
    assert unmarshal_public_key(swapped) == unmarshal_public_key(pub)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0801",  # no Data
        "12020000",  # no Type
        "0801120300",  # Data truncated
        ED25519_PUB + "00",  # trailing junk
        "08010801" + ED25519_PUB[4:],  # Type twice
        ED25519_PUB + "1801",  # unknown field 3
        "080012020000",  # RSA: not supported
        "0863120100",  # unknown key type 99
        "0801120400000000",  # ed25519 key of the wrong length
    ],
)
def test_junk_is_refused_with_crypto_error(bad: str) -> None:
    with pytest.raises(CryptoError):
        unmarshal_public_key(bytes.fromhex(bad))


def test_private_junk_is_refused() -> None:
    with pytest.raises(CryptoError):
        unmarshal_private_key(bytes.fromhex(ED25519_PUB))  # 32-byte Data is not a private key


def test_eth_keys_use_type_127() -> None:
    key = EthPrivateKey.generate()
    blob = marshal_public_key(key.public_key)
    assert blob[:3] == b"\x08\x7f\x12"
    assert unmarshal_public_key(blob) == key.public_key
    assert unmarshal_private_key(marshal_private_key(key)).public_key == key.public_key


@given(st.binary(min_size=32, max_size=32))
def test_ed25519_round_trip(seed: bytes) -> None:
    key = Ed25519PrivateKey(seed)
    assert unmarshal_private_key(marshal_private_key(key)).raw() == key.raw()
    assert unmarshal_public_key(marshal_public_key(key.public_key)) == key.public_key


@given(st.integers(min_value=1, max_value=2**255))
def test_secp256k1_round_trip(scalar: int) -> None:
    key = Secp256k1PrivateKey(scalar.to_bytes(32, "big"))
    assert unmarshal_private_key(marshal_private_key(key)).raw() == key.raw()
    assert unmarshal_public_key(marshal_public_key(key.public_key)) == key.public_key


@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_crash(blob: bytes) -> None:
    try:
        key = unmarshal_public_key(blob)
    except CryptoError:
        return
    assert isinstance(key, Ed25519PublicKey) or key.key_type != KeyType.ED25519
