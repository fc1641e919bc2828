"""Peer IDs, checked against published libp2p values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms.crypto import (
    Ed25519PrivateKey,
    PeerID,
    Secp256k1PrivateKey,
    extract_public_key,
    peer_id_from_public_key,
    unmarshal_private_key,
)
from dms.errors import CryptoError

# (protobuf private key, peer ID): the libp2p spec's Ed25519 and secp256k1 vectors, and a relay
# key published with its peer ID.
VECTORS = [
    (
        "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a1"
        "44b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
    ),
    (
        "0802122053dadf1d5a164d6b4acdb15e24aa4c5b1d3461bdbd42abedb0a4404d56ced8fb",
        "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
    ),
    (
        "08011240821cb6bc3d4547fcccb513e82e4d718089f8a166b23ffcd4a436754b6b0774cf07447d1693cd10"
        "ce11ef950d7517bad6e9472b41a927cd17fc3fb23f8c70cd99",
        "12D3KooWAJjbRkp8FPF5MKgMU53aUTxWkqvDrs4zc1VMbwRwfsbE",
    ),
]


@pytest.mark.parametrize(("priv_hex", "expected"), VECTORS)
def test_known_peer_ids(priv_hex: str, expected: str) -> None:
    pub = unmarshal_private_key(bytes.fromhex(priv_hex)).public_key
    pid = peer_id_from_public_key(pub)
    assert str(pid) == expected
    assert PeerID.parse(expected) == pid
    assert extract_public_key(pid) == pub
    assert PeerID.parse(pid.to_cid()) == pid


def test_cid_form_starts_bafz() -> None:
    pid = peer_id_from_public_key(Ed25519PrivateKey.generate().public_key)
    assert pid.to_cid().startswith("bafz")


def test_hashed_peer_id_parses_but_has_no_key() -> None:
    pid = PeerID.parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    assert pid.multihash[:2] == b"\x12\x20"
    with pytest.raises(CryptoError, match="hashed"):
        extract_public_key(pid)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "12D3KooW0000",  # '0' is not base58
        "1111",  # multihash of zeros: identity of length 0 with junk
        "bafzzzz",  # not a CID
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # CIDv1 dag-pb, not a key
    ],
)
def test_bad_peer_ids_are_refused(bad: str) -> None:
    with pytest.raises(CryptoError):
        PeerID.parse(bad)


@given(st.integers(min_value=1, max_value=2**255))
def test_secp256k1_peer_ids_round_trip(scalar: int) -> None:
    pub = Secp256k1PrivateKey(scalar.to_bytes(32, "big")).public_key
    pid = peer_id_from_public_key(pub)
    assert str(pid).startswith("16Uiu2")
    assert extract_public_key(PeerID.parse(str(pid))) == pub
