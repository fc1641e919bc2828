"""Conversions between a DID and the other names of the same key: actor ID and peer ID.

In the DMS one Ed25519 key is the node's DID, actor ID and libp2p peer ID, so each can be
derived from any other (peer IDs only when they embed the key, which Ed25519 ones do).
"""

from __future__ import annotations

import functools

from dms.crypto import ID, PeerID, extract_public_key, peer_id_from_public_key
from dms.did._did import DID, did_from_public_key, public_key_from_did


@functools.lru_cache(maxsize=1024)
def did_from_id(actor_id: ID) -> DID:
    """The ``did:key`` of an actor ID's public key (cached: every message converts two)."""
    return did_from_public_key(actor_id.public_key())


def id_from_did(did: DID) -> ID:
    """The actor ID of a ``did:key``."""
    return ID.from_public_key(public_key_from_did(did))


def peer_id_from_did(did: DID) -> PeerID:
    """The libp2p peer ID of a ``did:key``."""
    return peer_id_from_public_key(public_key_from_did(did))


def did_from_peer_id(peer_id: PeerID) -> DID:
    """The ``did:key`` of a peer ID that embeds its key (identity multihash)."""
    return did_from_public_key(extract_public_key(peer_id))
