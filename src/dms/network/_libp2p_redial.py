"""Dial a peer again as soon as it is back (py-libp2p 0.8.1's negative dial cache, worked around).

When every address of a peer fails, py-libp2p's swarm refuses to dial it for 60 s, and it checks
that block *before* looking for an existing connection: a peer that restarts and connects to us
again is still unreachable for the rest of the minute. For a DMS that is a restarted
orchestrator its providers cannot report to (their heartbeats fail for a minute, longer than a
liveness window), or a restarted provider nobody can reach.

Two fixes: any new connection, inbound included, lifts the block on its peer; and a block lasts
:data:`NEGATIVE_DIAL_TTL` seconds, not 60 (a refused dial on a dead peer is cheap to repeat; a
minute of unreachability is not).
"""

from __future__ import annotations

import logging
from typing import Any

from libp2p.abc import INotifee

log = logging.getLogger(__name__)

#: How long a peer whose every address failed is not dialled again (py-libp2p: 60 s).
NEGATIVE_DIAL_TTL = 2.0


class _UnblockOnConnect(INotifee):
    """Lifts the negative-cache block of every peer that connects (either direction)."""

    def __init__(self, swarm: Any) -> None:
        self._swarm = swarm

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def connected(self, network: Any, conn: Any) -> None:
        peer = getattr(getattr(conn, "muxed_conn", None), "peer_id", None)
        if peer is not None:
            self._swarm.unblock_peer(peer)

    async def disconnected(self, network: Any, conn: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


def redial_promptly(host: Any, ttl: float = NEGATIVE_DIAL_TTL) -> None:
    """Apply both fixes to ``host``'s swarm (see the module docstring)."""
    swarm = host.get_network()
    cache = getattr(swarm, "_negative_peer_cache", None)
    if cache is None or not hasattr(swarm, "unblock_peer"):
        log.debug("this py-libp2p has no negative dial cache: nothing to work around")
        return
    cache._ttl = ttl
    swarm.register_notifee(_UnblockOnConnect(swarm))
