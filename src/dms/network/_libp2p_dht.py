"""Kademlia DHT on the Go DMS's protocol ID, ``/nunet/kad/1.0.0``, answering only with addresses.

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

py-libp2p also answers FIND_NODE for itself with an empty peer-store entry (it adds the local
peer to the answer whether or not it has addresses), so a remote FindPeer could end with the
peer "found" and nothing to dial. go-libp2p-kad-dht never sends a peer without addresses:
:class:`AddressedKadDHT` drops such peers from every answer, and :func:`own_addresses` gives
what the host puts in its own peer-store entry at start-up.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import multiaddr
import psutil  # type: ignore[import-untyped]
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import KadDHT

log = logging.getLogger(__name__)

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


class AddressedKadDHT(KadDHT):
    """py-libp2p's DHT that never puts a peer without addresses in an answer (as Go's)."""

    def _add_closer_peers_to_response(
        self, response: Any, closest_peers: Sequence[Any], exclude_peer_id: Any = None
    ) -> None:
        store = self.host.get_peerstore()
        addressed = []
        for peer in closest_peers:
            try:
                if store.addrs(peer):
                    addressed.append(peer)
            except Exception:  # no peer-store entry at all
                continue
        super()._add_closer_peers_to_response(response, addressed, exclude_peer_id)


def _interface_ips(version: int) -> list[str]:
    family = 2 if version == 4 else 10  # AF_INET, AF_INET6
    ips = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == family:
                ips.append(address.address.split("%", 1)[0])
    return ips


def own_addresses(listen: Iterable[Any]) -> list[Any]:
    """Dialable forms of our listen addresses: ``0.0.0.0``/``::`` become each interface's IP.

    The TCP listener reports the address it bound, unspecified included; a peer that learns
    ``/ip4/0.0.0.0/...`` from a DHT answer can dial nothing with it (Go expands it the same way).
    """
    result: list[Any] = []
    seen: set[str] = set()
    for address in listen:
        text = str(address)
        parts = text.split("/")
        expanded = [text]
        if len(parts) > 2 and parts[1] in ("ip4", "ip6"):
            try:
                unspecified = ipaddress.ip_address(parts[2]).is_unspecified
            except ValueError:
                unspecified = False
            if unspecified:
                version = 4 if parts[1] == "ip4" else 6
                expanded = [
                    "/".join([*parts[:2], ip, *parts[3:]]) for ip in _interface_ips(version)
                ]
        for item in expanded:
            if item not in seen:
                seen.add(item)
                try:
                    result.append(multiaddr.Multiaddr(item))
                except Exception as exc:
                    log.debug("skipping own address %s: %s", item, exc)
    return result
