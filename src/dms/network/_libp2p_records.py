"""Signed peer records on every pubsub RPC, at the cost of one check per record, not per RPC.

py-libp2p 0.8.1 attaches the sender's signed peer record (an Ed25519-signed envelope listing
its addresses) to *every* pubsub RPC, and the receiver verifies and stores it on every RPC
(``maybe_consume_signed_record``: protobuf parse, one signature verification, multiaddr
parsing, a peerstore rewrite). The sender re-derives its advertised addresses for every RPC
(``env_to_send_in_RPC``: ``host.get_addrs()`` builds and compares multiaddrs) to decide
whether its cached record is still current. On gossip traffic the two were ~13 % of the CPU
of a node (profile in bench/README.md), more than the message's own signature check, and the
receiver's part is paid again for every duplicate a mesh delivers.

A peer sends the same record bytes until its addresses change, so both ends can remember:

* :func:`consume_signed_record`: a record this host already verified and stored for this very
  peer is skipped while the peerstore still holds that same envelope (so a newer record consumed by
  identify, or a peerstore reset, sends the next RPC down the full path); entries expire after
  :data:`RECORD_RECHECK_S` (the full path then refreshes the address TTL) and only successes
  are remembered: a record that failed is checked again every time (fail closed).
* :func:`record_to_send`: the library's answer is reused for :data:`LOCAL_RECORD_TTL_S`
  while the host's cached local record is the same object, so an address change reaches
  peers' pubsub at most that much later (identify pushes it at once).

:func:`patch_signed_records` installs both in the two pubsub modules that import them
(module globals, like the queue sizes in ``_libp2p_pubsub``); pinned to libp2p 0.8.1.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from typing import Any

from libp2p.peer import peerstore as peerstore_module
from libp2p.pubsub import gossipsub as gossipsub_module
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub import utils as pubsub_utils

#: How long a verified peer record is trusted without re-running the library's full path.
RECORD_RECHECK_S = 60.0
#: Verified records remembered (peers x record versions), oldest evicted.
RECORD_CACHE_SIZE = 4096
#: How long this host's outgoing record is reused without re-deriving its addresses. Deriving
#: them (multiaddrs built, parsed and compared) costs ~1 ms of Python; at 1 s it was still ~2 %
#: of a gossiping node's CPU. Addresses change rarely, and identify pushes a change at once;
#: only the record riding on pubsub RPCs lags, by at most this long.
LOCAL_RECORD_TTL_S = 10.0

_original_consume = pubsub_utils.maybe_consume_signed_record
_original_to_send = peerstore_module.env_to_send_in_RPC

#: (receiving host's peer ID, sender's peer ID, record bytes) -> (monotonic expiry, the
#: envelope the receiver's peerstore stored). Several hosts can share a process (tests, benches).
_consumed: OrderedDict[tuple[bytes, bytes, bytes], tuple[float, Any]] = OrderedDict()
#: host -> (monotonic expiry, local record object, the library's answer).
_to_send: weakref.WeakKeyDictionary[Any, tuple[float, Any, tuple[bytes, bool]]] = (
    weakref.WeakKeyDictionary()
)


def _stored_envelope(host: Any, peer_id: Any) -> Any:
    state = host.get_peerstore().peer_record_map.get(peer_id)
    return None if state is None else state.envelope


def consume_signed_record(msg: Any, host: Any, peer_id: Any) -> bool:
    """``maybe_consume_signed_record`` that skips a record it already verified for this peer."""
    if not msg.HasField("senderRecord"):
        return True
    record = bytes(msg.senderRecord)
    key = (host.get_id().to_bytes(), peer_id.to_bytes(), record)
    now = time.monotonic()
    hit = _consumed.get(key)
    if hit is not None:
        expiry, envelope = hit
        if now < expiry and envelope is not None and _stored_envelope(host, peer_id) is envelope:
            return True
        del _consumed[key]
    accepted: bool = _original_consume(msg, host, peer_id)
    if accepted:
        _consumed[key] = (now + RECORD_RECHECK_S, _stored_envelope(host, peer_id))
        while len(_consumed) > RECORD_CACHE_SIZE:
            _consumed.popitem(last=False)
    return accepted


def record_to_send(host: Any) -> tuple[bytes, bool]:
    """``env_to_send_in_RPC`` that re-derives the host's addresses at most every
    :data:`LOCAL_RECORD_TTL_S` seconds."""
    now = time.monotonic()
    local = host.get_peerstore().get_local_record()
    hit = _to_send.get(host)
    if hit is not None and now < hit[0] and local is not None and hit[1] is local:
        return hit[2][0], False
    answer: tuple[bytes, bool] = _original_to_send(host)
    _to_send[host] = (now + LOCAL_RECORD_TTL_S, host.get_peerstore().get_local_record(), answer)
    return answer


def patch_signed_records() -> None:
    """Install :func:`consume_signed_record` and :func:`record_to_send`, idempotently."""
    for module in (pubsub_module, gossipsub_module):
        if getattr(module, "maybe_consume_signed_record", None) is not _original_consume and (
            getattr(module, "maybe_consume_signed_record", None) is not consume_signed_record
        ):
            raise RuntimeError(f"{module.__name__}.maybe_consume_signed_record changed")
        if getattr(module, "env_to_send_in_RPC", None) not in (_original_to_send, record_to_send):
            raise RuntimeError(f"{module.__name__}.env_to_send_in_RPC changed")
        module.maybe_consume_signed_record = consume_signed_record  # type: ignore[attr-defined]
        module.env_to_send_in_RPC = record_to_send  # type: ignore[attr-defined]


def clear_record_caches() -> None:
    """Forget every remembered record (tests)."""
    _consumed.clear()
    _to_send.clear()
