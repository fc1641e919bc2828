"""DIDs: did:key encoding, providers (signers), anchors (verifiers), conversions."""

from dms.did._context_keys import keystore_for, list_key_names, provider_for_context
from dms.did._convert import did_from_id, did_from_peer_id, id_from_did, peer_id_from_did
from dms.did._did import (
    DID,
    Anchor,
    KeyProvider,
    Provider,
    did_from_public_key,
    public_key_from_did,
)
from dms.did._ledger import LedgerProvider, is_ledger_context, ledger_account

__all__ = [
    "DID",
    "Anchor",
    "KeyProvider",
    "LedgerProvider",
    "Provider",
    "did_from_id",
    "did_from_peer_id",
    "did_from_public_key",
    "id_from_did",
    "is_ledger_context",
    "keystore_for",
    "ledger_account",
    "list_key_names",
    "peer_id_from_did",
    "provider_for_context",
    "public_key_from_did",
]
