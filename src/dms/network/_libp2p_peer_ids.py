"""Peer IDs parsed from text once, not on every stream.

py-libp2p 0.8.1 turns peer IDs back and forth between ``ID`` objects and base58 text on its
stream paths: the resource manager parses ``str(peer_id)`` back into an ``ID`` for every stream
it admits, in each direction (``ResourceManager.acquire_stream``), and our own sends parse the
destination's text. base58 is pure-Python big-integer arithmetic, and a freshly parsed ``ID``
also has to encode itself again the first time anything prints or hashes it as text (its
``base58`` is a cached property of the object). A Go-style message (one new stream each way)
paid for about six such conversions per round trip at each end.

:func:`patch_peer_id_parsing` makes ``ID.from_base58`` return the same ``ID`` object for the
same text, from a bounded cache: what the library parses and what it hands back are unchanged
(an ``ID`` is a value: its bytes never change after construction, and equality and hashing use
them), and text that does not parse raises exactly as before (failures are not cached).
Process-wide and idempotent, like the other module-level replacements; pinned to libp2p 0.8.1.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from libp2p.peer.id import ID

_PATCHED = "_dms_cached_from_base58"
#: Distinct peer IDs kept (a node talks to hundreds of peers; each entry is ~0.3 KiB).
CACHE_SIZE = 4096

_cache: OrderedDict[str, ID] = OrderedDict()


def patch_peer_id_parsing() -> None:
    """Wrap ``ID.from_base58`` with the cache (once per process)."""
    if getattr(ID, _PATCHED, False):
        return
    original = vars(ID).get("from_base58")
    if not isinstance(original, classmethod):
        raise RuntimeError("libp2p ID changed: from_base58 is not a classmethod")
    parse = original.__func__

    def from_base58(cls: Any, b58_encoded_peer_id_str: str) -> Any:
        if cls is not ID or type(b58_encoded_peer_id_str) is not str:
            return parse(cls, b58_encoded_peer_id_str)
        found = _cache.get(b58_encoded_peer_id_str)
        if found is None:
            found = parse(cls, b58_encoded_peer_id_str)
            if len(_cache) >= CACHE_SIZE:
                _cache.popitem(last=False)
            _cache[b58_encoded_peer_id_str] = found
        return found

    from_base58.__doc__ = parse.__doc__
    setattr(ID, "from_base58", classmethod(from_base58))  # noqa: B010
    setattr(ID, _PATCHED, True)


__all__ = ["CACHE_SIZE", "patch_peer_id_parsing"]
