"""did:key for every codec, against the W3C did:key test vectors and NuNet's public DID."""

from __future__ import annotations

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.crypto import (
    CardanoPublicKey,
    Ed25519PrivateKey,
    EthPrivateKey,
    EthPublicKey,
    KeyType,
    Secp256k1PrivateKey,
    Secp256k1PublicKey,
)
from dms.did import DID, Anchor, KeyProvider, did_from_public_key, public_key_from_did
from dms.errors import CryptoError

# w3c-ccg/did-method-key test-vectors/ed25519-x25519.json (seed → DID)
ED25519_VECTORS = [
    ("00" * 32, "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"),
    ("00" * 31 + "01", "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"),
    ("00" * 31 + "02", "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf"),
]
# w3c-ccg/did-method-key test-vectors/secp256k1.json (privateKeyBase58, publicKeyBase58, DID)
SECP256K1_VECTORS = [
    (
        "AjA4cyPUbbfW5wr6iZeRbJLhgH3qDt6q6LMkRw36KpxT",
        "23o6Sau8NxxzXcgSc3PLcNxrzrZpbLeBn1izfv3jbKhuv",
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
    ),
    (
        "HDbR1D5W3CoNbUKYzUbHH2PRF1atshtVupXgXTQhNB9E",
        "291KzQhqCPC18PqH83XKhxv1HdqrdnxyS7dh15t2uNRzJ",
        "did:key:zQ3shtxV1FrJfhqE1dvxYRcCknWNjHc3c5X1y3ZSoPDi2aur2",
    ),
]
NUNET_DID = "did:key:zzCHUybNYmK8QsttZwXqUX8aDLoBGHnMCakDX2RpsGwmXmYHEW"


@pytest.mark.parametrize(("seed", "did"), ED25519_VECTORS)
def test_ed25519_vectors(seed: str, did: str) -> None:
    pub = Ed25519PrivateKey(bytes.fromhex(seed)).public_key
    assert did_from_public_key(pub) == DID(did)
    assert public_key_from_did(DID(did)) == pub


@pytest.mark.parametrize(("priv", "pub", "did"), SECP256K1_VECTORS)
def test_secp256k1_vectors(priv: str, pub: str, did: str) -> None:
    key = Secp256k1PrivateKey(base58.b58decode(priv))
    assert key.public_key.raw() == base58.b58decode(pub)
    assert did_from_public_key(key.public_key) == DID(did)
    decoded = public_key_from_did(DID(did))
    assert isinstance(decoded, Secp256k1PublicKey) and decoded == key.public_key


def test_nunet_public_did_is_an_eth_key() -> None:
    data = base58.b58decode(NUNET_DID[len("did:key:z") :])
    assert data[:3] == bytes.fromhex("81de03") and len(data) == 36
    key = public_key_from_did(DID(NUNET_DID))
    assert isinstance(key, EthPublicKey) and key.key_type == KeyType.ETH
    assert key.raw() == data[3:]
    assert did_from_public_key(key).uri == NUNET_DID


def test_eth_did_prefix_and_verification() -> None:
    key = EthPrivateKey.generate()
    did = did_from_public_key(key.public_key)
    assert did.uri.startswith("did:key:zz")
    assert Anchor.from_did(did).verify(b"token", key.sign(b"token"))
    assert not Anchor.from_did(did).verify(b"token2", key.sign(b"token"))


def test_cardano_is_recognised_but_not_verified() -> None:
    raw = Ed25519PrivateKey.generate().public_key.raw()
    did = did_from_public_key(CardanoPublicKey(raw))
    assert base58.b58decode(did.uri[9:])[:3] == bytes.fromhex("82de03")
    key = public_key_from_did(did)
    assert isinstance(key, CardanoPublicKey) and key.raw() == raw
    with pytest.raises(CryptoError, match="cardano signatures not supported"):
        key.verify(b"x", b"y")


@pytest.mark.parametrize(
    ("did", "match"),
    [
        ("did:web:example.com", "only did:key"),
        ("did:key:f6d6b6579", "base58btc"),
        ("did:key:z0OIl", "not base58btc"),
        ("did:key:z" + base58.b58encode(b"\x12\x00" + bytes(32)).decode(), "codec 0x12"),
        ("did:key:z" + base58.b58encode(b"\xed\x01" + bytes(31)).decode(), "32 bytes"),
        ("did:key:z" + base58.b58encode(b"\xe7\x01" + b"\x02" * 5).decode(), "33 or 65"),
        ("did:key:z" + base58.b58encode(b"\x81").decode(), "truncated varint"),
        ("did:key:z" + base58.b58encode(b"\xed\x81\x00" + bytes(32)).decode(), "minimally"),
    ],
)
def test_bad_dids_give_clear_errors(did: str, match: str) -> None:
    with pytest.raises(CryptoError, match=match):
        public_key_from_did(DID(did))


@given(st.binary(min_size=32, max_size=32))
def test_ed25519_did_round_trip(seed: bytes) -> None:
    pub = Ed25519PrivateKey(seed).public_key
    did = did_from_public_key(pub)
    assert did.uri.startswith("did:key:z6Mk")
    assert public_key_from_did(did) == pub


@given(st.integers(min_value=1, max_value=2**255), st.booleans())
def test_secp_and_eth_did_round_trip(scalar: int, eth: bool) -> None:
    secret = scalar.to_bytes(32, "big")
    key = EthPrivateKey(secret) if eth else Secp256k1PrivateKey(secret)
    did = did_from_public_key(key.public_key)
    assert public_key_from_did(did) == key.public_key


def test_key_provider_for_each_signing_type() -> None:
    for key in (Ed25519PrivateKey.generate(), Secp256k1PrivateKey.generate()):
        provider = KeyProvider(key)
        assert provider.anchor().verify(b"m", provider.sign(b"m"))
