"""DID ↔ actor ID ↔ peer ID: three names of one key."""

from __future__ import annotations

import pytest

from dms.crypto import ID, Ed25519PrivateKey, PeerID, Secp256k1PrivateKey
from dms.did import (
    DID,
    did_from_id,
    did_from_peer_id,
    did_from_public_key,
    id_from_did,
    peer_id_from_did,
)
from dms.errors import CryptoError


@pytest.mark.parametrize("factory", [Ed25519PrivateKey.generate, Secp256k1PrivateKey.generate])
def test_conversions_agree(factory: object) -> None:
    key = factory()  # type: ignore[operator]
    did = did_from_public_key(key.public_key)
    actor_id = ID.from_public_key(key.public_key)
    assert id_from_did(did) == actor_id
    assert did_from_id(actor_id) == did
    peer = peer_id_from_did(did)
    assert did_from_peer_id(peer) == did
    assert did_from_peer_id(PeerID.parse(str(peer))) == did


def test_spec_vector_peer_id_to_did() -> None:
    did = did_from_peer_id(PeerID.parse("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"))
    assert did.uri.startswith("did:key:z6Mk")
    assert str(peer_id_from_did(did)) == "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"


def test_hashed_peer_id_has_no_did() -> None:
    with pytest.raises(CryptoError):
        did_from_peer_id(PeerID.parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"))


def test_empty_id_has_no_did() -> None:
    with pytest.raises(CryptoError):
        did_from_id(ID())
    with pytest.raises(CryptoError):
        id_from_did(DID("did:web:x"))
