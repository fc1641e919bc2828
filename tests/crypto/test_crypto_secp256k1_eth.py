"""secp256k1 (libp2p semantics) and Eth personal-sign keys."""

from __future__ import annotations

import hashlib

import coincurve
import pytest

from dms.crypto import (
    EthPrivateKey,
    EthPublicKey,
    KeyType,
    Secp256k1PrivateKey,
    Secp256k1PublicKey,
    eth_personal_digest,
)
from dms.crypto._der import SECP256K1_N, decode_der_signature, encode_der_signature
from dms.errors import CryptoError


def _high_s(sig: bytes) -> bytes:
    r, s = decode_der_signature(sig)
    return encode_der_signature(r, SECP256K1_N - s)


def test_secp256k1_signs_sha256_of_data_in_der() -> None:
    key = Secp256k1PrivateKey.generate()
    sig = key.sign(b"hello")
    decode_der_signature(sig)  # strict DER
    point = coincurve.PublicKey(key.public_key.raw())
    assert point.verify(sig, hashlib.sha256(b"hello").digest(), hasher=None)
    assert key.public_key.verify(b"hello", sig)
    assert not key.public_key.verify(b"hellO", sig)
    assert key.key_type == KeyType.SECP256K1 and len(key.raw()) == 32


def test_secp256k1_accepts_high_s_like_go() -> None:
    key = Secp256k1PrivateKey.generate()
    sig = key.sign(b"data")
    assert key.public_key.verify(b"data", _high_s(sig))


def test_secp256k1_bad_signatures_are_false_not_errors() -> None:
    pub = Secp256k1PrivateKey.generate().public_key
    for sig in [b"", b"junk", b"\x30" * 70, encode_der_signature(1, 1)]:
        assert pub.verify(b"data", sig) is False


def test_secp256k1_public_key_normalises_uncompressed() -> None:
    key = coincurve.PrivateKey()
    compressed = key.public_key.format(compressed=True)
    pub = Secp256k1PublicKey(key.public_key.format(compressed=False))
    assert pub.raw() == compressed and len(pub.raw()) == 33
    assert pub == Secp256k1PublicKey(compressed)


@pytest.mark.parametrize("raw", [b"", b"\x02" + b"\xff" * 32, b"\x05" + b"\x01" * 32, b"\x04" * 10])
def test_secp256k1_refuses_bad_points(raw: bytes) -> None:
    with pytest.raises(CryptoError):
        Secp256k1PublicKey(raw)


@pytest.mark.parametrize("secret", [bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\x01" * 31])
def test_secp256k1_refuses_bad_secrets(secret: bytes) -> None:
    with pytest.raises(CryptoError):
        Secp256k1PrivateKey(secret)


def test_eth_personal_digest_matches_ethereum_hash_message() -> None:
    # ethers.js hashMessage("Hello World") / hashMessage("hello")
    assert (
        eth_personal_digest(b"Hello World").hex()
        == "a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"
    )
    assert (
        eth_personal_digest(b"hello").hex()
        == "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
    )


def test_eth_address_of_private_key_one() -> None:
    key = EthPrivateKey((1).to_bytes(32, "big"))
    assert key.public_key.address() == "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"


def test_eth_verify_uses_personal_sign_not_sha256() -> None:
    secret = coincurve.PrivateKey()
    eth_pub = EthPublicKey(secret.public_key.format(compressed=False))
    data = b'{"some":"token"}'
    sig = secret.sign(eth_personal_digest(data), hasher=None)
    assert eth_pub.verify(data, sig)
    assert eth_pub.verify(data, _high_s(sig))
    assert not eth_pub.verify(data + b" ", sig)
    libp2p_style = secret.sign(data)  # SHA-256, as a Secp256k1 key would sign
    assert not eth_pub.verify(data, libp2p_style)
    assert eth_pub.key_type == KeyType.ETH


def test_eth_private_key_round_trip() -> None:
    key = EthPrivateKey.generate()
    assert key.public_key.verify(b"x", key.sign(b"x"))
    assert not Secp256k1PublicKey(key.public_key.raw()).verify(b"x", key.sign(b"x"))
    assert EthPrivateKey(key.raw()).public_key == key.public_key


def test_keys_of_different_types_are_not_equal() -> None:
    raw = Secp256k1PrivateKey.generate().public_key.raw()
    assert Secp256k1PublicKey(raw) != EthPublicKey(raw)
    assert hash(Secp256k1PublicKey(raw)) == hash(Secp256k1PublicKey(raw))
