"""The curated public surface of dms.did."""

from __future__ import annotations

import dms.did


def test_all_names_exist_and_are_public() -> None:
    for name in dms.did.__all__:
        assert not name.startswith("_")
        assert hasattr(dms.did, name), name
    assert len(dms.did.__all__) == len(set(dms.did.__all__))
    assert {"LedgerProvider", "provider_for_context", "did_from_peer_id"} <= set(dms.did.__all__)
