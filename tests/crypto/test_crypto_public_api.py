"""The curated public surface of dms.crypto."""

from __future__ import annotations

import dms.crypto


def test_all_names_exist_and_are_public() -> None:
    for name in dms.crypto.__all__:
        assert not name.startswith("_")
        assert hasattr(dms.crypto, name), name
    assert sorted(dms.crypto.__all__) == sorted(set(dms.crypto.__all__))
    assert {"Keystore", "PeerID", "ID", "EthPublicKey", "marshal_public_key"} <= set(
        dms.crypto.__all__
    )
