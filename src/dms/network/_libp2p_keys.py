"""Our Ed25519 identity as a libp2p key pair.

The DMS's DID key *is* the libp2p host key (Go does the same), so a peer ID seen on a stream
names the same key as the ``did:key`` in an envelope's ``from``. libp2p's Ed25519 key is built
from the 32-byte seed; the resulting peer ID is checked against our own peer-ID code so the two
implementations can never silently disagree.
"""

from __future__ import annotations

from typing import Any

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.errors import CryptoError


def libp2p_key_pair(key: Ed25519PrivateKey) -> Any:
    """The libp2p ``KeyPair`` for ``key``; refuse it if the peer IDs disagree."""
    pair = create_new_key_pair(key.seed)
    theirs = str(ID.from_pubkey(pair.public_key))
    ours = str(peer_id_from_public_key(key.public_key))
    if theirs != ours:
        raise CryptoError(f"libp2p derives peer ID {theirs} from our key, we derive {ours}")
    return pair
