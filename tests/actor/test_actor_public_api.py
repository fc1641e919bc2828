"""The curated public surface of dms.actor."""

from __future__ import annotations

import dms.actor


def test_all_names_exist_and_are_public() -> None:
    for name in dms.actor.__all__:
        assert not name.startswith("_")
        assert hasattr(dms.actor, name), name
    assert sorted(dms.actor.__all__) == sorted(set(dms.actor.__all__))
    assert {"Envelope", "EnvelopeOptions", "Handle", "Address", "NonceSource"} <= set(
        dms.actor.__all__
    )
    # Framing is the network's (dms.network); the actor layer does not re-export it.
    assert not {"MAX_MESSAGE_SIZE", "encode_frame", "decode_frame"} & set(dms.actor.__all__)
