"""Kademlia DHT on the Go DMS's protocol ID, ``/nunet/kad/1.0.0``.

The Go DMS runs its DHT with ``DHTPrefix "/nunet"`` (spec §11), so its peers speak
``/nunet/kad/1.0.0`` and ignore ``/ipfs/kad/1.0.0``; a Python node left on the library's
default would never share a routing table with a Go node. py-libp2p 0.8.1 has no prefix
option: ``libp2p.kad_dht.common.PROTOCOL_ID`` is a module constant that the DHT's modules import
by name (and ``routing_table`` re-imports lazily, on every server-mode check). Each of those
module globals is read at call time, so setting them all once, before any ``KadDHT`` is built,
moves the whole DHT (stream handler, outgoing queries, server-mode detection) to our protocol.

Process-wide by nature: every host in the process runs the same DHT protocol, which is what a
DMS (one host per process, or a test network of our own nodes) wants. Pinned to libp2p 0.8.1:
:func:`use_dht_protocol` fails loudly if a module stops defining the name.
"""

from __future__ import annotations

import importlib

from libp2p.custom_types import TProtocol

#: Go DMS: ``DHTPrefix "/nunet"`` -> ``/nunet/kad/1.0.0``.
DHT_PROTOCOL = TProtocol("/nunet/kad/1.0.0")

_MODULES = (
    "libp2p.kad_dht.common",
    "libp2p.kad_dht.kad_dht",
    "libp2p.kad_dht.peer_routing",
    "libp2p.kad_dht.value_store",
    "libp2p.kad_dht.provider_store",
)


def use_dht_protocol(protocol: TProtocol = DHT_PROTOCOL) -> None:
    """Make every py-libp2p DHT in this process speak ``protocol`` (idempotent)."""
    for name in _MODULES:
        module = importlib.import_module(name)
        if not hasattr(module, "PROTOCOL_ID"):
            raise RuntimeError(f"{name} has no PROTOCOL_ID: cannot set the DHT protocol")
        setattr(module, "PROTOCOL_ID", protocol)  # noqa: B010 (a module global, by design)
