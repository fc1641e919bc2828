"""Ping connected peers and cut off the ones that stop answering.

A SIGSTOPped (or otherwise frozen) peer keeps its TCP connection open, so py-libp2p lists it as
connected forever and a reader blocked on it never wakes; Yamux's own RTT ping never closes a
connection either (spec/py-libp2p-0.8.1.md §6). This task pings every connected peer
periodically; after ``max_failures`` consecutive failed pings it closes the peer's connections
(and, through ``on_dead``, drops our reuse stream to it), which wakes every reader and writer
blocked on that peer with an error.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.host.ping import ID as PING_PROTOCOL

from dms.errors import NetworkError
from dms.network._libp2p_streams import close_quietly, network_errors, read_exactly, reset_quietly

log = logging.getLogger(__name__)

_PING_SIZE = 32


async def ping_once(host: Any, peer: Any, timeout: float) -> float:
    """One ``/ipfs/ping/1.0.0`` round trip on a fresh stream; RTT in seconds.

    Raises NetworkTimeout past ``timeout`` (the whole exchange, stream opening included) and
    NetworkError if the peer answers wrongly or the stream fails.
    """
    payload = secrets.token_bytes(_PING_SIZE)
    with network_errors(f"ping {peer}"), trio.fail_after(timeout):
        stream = await host.new_stream(peer, [PING_PROTOCOL])
        try:
            start = time.perf_counter()
            await stream.write(payload)
            echo = await read_exactly(stream, _PING_SIZE)
            rtt = time.perf_counter() - start
        except BaseException:
            await reset_quietly(stream)
            raise
        await close_quietly(stream)
    if echo != payload:
        raise NetworkError(f"ping {peer}: wrong echo")
    return rtt


class Liveness:
    """The periodic ping loop and what it learned (RTTs, failure counts)."""

    def __init__(
        self,
        host: Any,
        *,
        interval: float,
        timeout: float,
        max_failures: int,
        on_dead: Callable[[Any], Awaitable[None]],
        close_timeout: float = 2.0,
    ) -> None:
        self._host = host
        self.interval = interval
        self.timeout = timeout
        self.max_failures = max_failures
        self._on_dead = on_dead
        self._close_timeout = close_timeout
        self.rtt: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def record(self, peer: Any, rtt: float) -> None:
        """Remember a successful round trip (also from an explicit ``ping``)."""
        self.rtt[str(peer)] = rtt
        self._failures.pop(str(peer), None)

    async def run(self) -> None:
        """Ping all connected peers every ``interval`` seconds, until cancelled."""
        while True:
            await trio.sleep(self.interval)
            peers = list(self._host.get_connected_peers())
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(self._check, peer)
            connected = {str(p) for p in self._host.get_connected_peers()}
            for key in [k for k in self.rtt if k not in connected]:
                del self.rtt[key]

    async def _check(self, peer: Any) -> None:
        try:
            self.record(peer, await ping_once(self._host, peer, self.timeout))
        except NetworkError as exc:
            key = str(peer)
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            log.info("ping %s failed (%d/%d): %s", peer, failures, self.max_failures, exc)
            if failures >= self.max_failures:
                await self.disconnect(peer)

    async def disconnect(self, peer: Any) -> None:
        """Drop everything we hold for ``peer`` and close its connections (bounded)."""
        key = str(peer)
        self._failures.pop(key, None)
        self.rtt.pop(key, None)
        log.warning("peer %s stopped answering pings: disconnecting", peer)
        await self._on_dead(peer)
        with trio.move_on_after(self._close_timeout):
            try:
                await self._host.disconnect(peer)
            except Exception as exc:
                log.debug("closing connections to %s: %s", peer, exc)
