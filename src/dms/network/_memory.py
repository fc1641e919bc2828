"""An in-process network: many hosts in one trio run, for component tests and simulations.

It keeps the :class:`~dms.network.Network` contract (authenticated sender IDs, size limit,
timeouts, validators, no self-delivery of pubsub) so code tested on it behaves the same on libp2p.
Hosts meet through a shared :class:`MemoryFabric`; a message is handed to the receiving host's
own nursery, so a slow handler on one host never blocks another host's sender, and each message
gets its own handler task, so one blocked handler never holds up the next message. An inbox queue
that is full (the receiver is not draining) makes senders wait up to their timeout rather than
dropping messages.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from dms.errors import NetworkError, NetworkTimeout
from dms.network._base import (
    DEFAULT_TIMEOUT,
    InboxHandler,
    Network,
    PeerInfo,
    RawStream,
    StreamHandler,
    TopicHandler,
    TopicValidator,
    Validation,
)
from dms.network._frame import check_message_size

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Messages an inbox can hold before senders wait.
INBOX_QUEUE_SIZE = 1024
#: Writes a raw stream buffers before the writer waits (flow control, as a window would).
STREAM_QUEUE_SIZE = 64


class MemoryFabric:
    """The shared medium in-memory hosts find each other through (one per simulated network)."""

    def __init__(self) -> None:
        self.hosts: dict[str, MemoryNetwork] = {}
        self.partitions: set[frozenset[str]] = set()

    def address_of(self, peer_id: str) -> str:
        """The pseudo multiaddr a host listens on."""
        return f"/memory/{peer_id}/p2p/{peer_id}"

    def partition(self, a: str, b: str) -> None:
        """Cut the link between two hosts (both directions), as a network failure would."""
        self.partitions.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        """Restore a link cut by :meth:`partition`."""
        self.partitions.discard(frozenset((a, b)))

    def reachable(self, a: str, b: str) -> bool:
        """True if ``a`` can talk to ``b`` (both running, link not cut)."""
        target = self.hosts.get(b)
        return target is not None and target.running and frozenset((a, b)) not in self.partitions


class _Inbox:
    def __init__(self, handler: InboxHandler) -> None:
        self.handler = handler
        self.send_channel, self.receive_channel = trio.open_memory_channel[tuple[bytes, str]](
            INBOX_QUEUE_SIZE
        )


class _StreamState:
    """What both ends of one in-memory stream share: whether either end reset it."""

    def __init__(self) -> None:
        self.reset = False


class MemoryRawStream(RawStream):
    """One end of an in-memory stream: a bounded channel each way, partial reads buffered."""

    def __init__(
        self,
        peer: str,
        outgoing: trio.MemorySendChannel[bytes],
        incoming: trio.MemoryReceiveChannel[bytes],
        state: _StreamState,
    ) -> None:
        self._peer = peer
        self._out = outgoing
        self._in = incoming
        self._state = state
        self._pending = b""

    @property
    def remote_peer(self) -> str:
        return self._peer

    async def read(self, max_bytes: int = -1) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._in.receive()
            except trio.EndOfChannel:
                if self._state.reset:
                    raise NetworkError(f"stream from {self._peer} was reset") from None
                return b""
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise NetworkError(f"stream from {self._peer} was reset") from None
        if max_bytes < 0 or max_bytes >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def write(self, data: bytes) -> None:
        if self._state.reset:
            raise NetworkError(f"stream to {self._peer} was reset")
        try:
            await self._out.send(bytes(data))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise NetworkError(f"stream to {self._peer} is closed") from None

    async def close(self) -> None:
        self._out.close()
        await trio.lowlevel.checkpoint()

    async def reset(self) -> None:
        self._state.reset = True
        self._out.close()
        self._in.close()
        await trio.lowlevel.checkpoint()


class MemoryNetwork(Network):
    """One host on a :class:`MemoryFabric`; ``peer_id`` is normally a real libp2p peer ID."""

    def __init__(self, fabric: MemoryFabric, peer_id: str) -> None:
        if peer_id in fabric.hosts:
            raise NetworkError(f"peer {peer_id} is already on this memory network")
        self._fabric = fabric
        self._peer_id = peer_id
        self._inboxes: dict[str, _Inbox] = {}
        self._topics: dict[str, tuple[TopicHandler, TopicValidator | None]] = {}
        self._connected: set[str] = set()
        self._stream_handlers: dict[str, StreamHandler] = {}
        self._nursery: trio.Nursery | None = None
        fabric.hosts[peer_id] = self

    @property
    def host_id(self) -> str:
        return self._peer_id

    @property
    def running(self) -> bool:
        """True while :meth:`run` is active."""
        return self._nursery is not None

    def listen_addresses(self) -> list[str]:
        return [self._fabric.address_of(self._peer_id)]

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for inbox in self._inboxes.values():
                    nursery.start_soon(self._drain, inbox)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for peer in list(self._connected):
                other = self._fabric.hosts.get(peer)
                if other is not None:
                    other._connected.discard(self._peer_id)
            self._connected.clear()

    # -- direct messages -------------------------------------------------------------------
    def register_inbox(self, inbox: str, handler: InboxHandler) -> None:
        old = self._inboxes.get(inbox)
        if old is not None:
            old.send_channel.close()
        entry = _Inbox(handler)
        self._inboxes[inbox] = entry
        if self._nursery is not None:
            self._nursery.start_soon(self._drain, entry)

    def unregister_inbox(self, inbox: str) -> None:
        entry = self._inboxes.pop(inbox, None)
        if entry is not None:
            entry.send_channel.close()

    async def _drain(self, inbox: _Inbox) -> None:
        async with inbox.receive_channel:
            async for data, sender in inbox.receive_channel:
                assert self._nursery is not None
                self._nursery.start_soon(self._call_inbox, inbox.handler, data, sender)

    async def _call_inbox(self, handler: InboxHandler, data: bytes, sender: str) -> None:
        try:
            await handler(data, sender)
        except Exception:
            log.exception("inbox handler failed on %s", self._peer_id)

    async def send(self, peer_id: str, inbox: str, data: bytes, *, timeout: float) -> None:
        check_message_size(data)  # the same header-inclusive limit as the libp2p wire
        if peer_id != self._peer_id and not self._fabric.reachable(self._peer_id, peer_id):
            raise NetworkError(f"peer {peer_id} is not reachable")
        target = self._fabric.hosts[peer_id]
        entry = target._inboxes.get(inbox)
        if entry is None:
            raise NetworkError(f"peer {peer_id} has no inbox {inbox!r}")
        if peer_id != self._peer_id:
            self._link(target)
        item = (bytes(data), self._peer_id)
        try:
            entry.send_channel.send_nowait(item)  # room in the queue: no deadline scope needed
        except trio.WouldBlock:
            pass
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise NetworkError(f"inbox {inbox!r} on {peer_id} closed") from None
        else:
            await trio.lowlevel.checkpoint()  # still a checkpoint, as the blocking send is
            return
        with trio.move_on_after(timeout) as scope:
            try:
                await entry.send_channel.send(item)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise NetworkError(f"inbox {inbox!r} on {peer_id} closed") from None
        if scope.cancelled_caught:
            raise NetworkTimeout(f"sending to {peer_id}/{inbox} timed out after {timeout:g}s")

    def _link(self, other: MemoryNetwork) -> None:
        self._connected.add(other.host_id)
        other._connected.add(self._peer_id)

    # -- pubsub ----------------------------------------------------------------------------
    async def publish(self, topic: str, data: bytes) -> None:
        for peer_id, host in list(self._fabric.hosts.items()):
            if peer_id == self._peer_id or not self._fabric.reachable(self._peer_id, peer_id):
                continue
            subscription = host._topics.get(topic)
            if subscription is None or host._nursery is None:
                continue
            handler, validator = subscription
            if validator is not None and validator(data, self._peer_id) is not Validation.ACCEPT:
                continue
            host._nursery.start_soon(host._call_topic, handler, bytes(data), self._peer_id)

    async def _call_topic(self, handler: TopicHandler, data: bytes, source: str) -> None:
        try:
            await handler(data, source)
        except Exception:
            log.exception("topic handler failed on %s", self._peer_id)

    async def subscribe(
        self, topic: str, handler: TopicHandler, validator: TopicValidator | None = None
    ) -> None:
        self._topics[topic] = (handler, validator)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.pop(topic, None)

    # -- peers -----------------------------------------------------------------------------
    async def connect(self, address: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        peer_id = address.rstrip("/").rsplit("/p2p/", 1)[-1]
        if "/p2p/" not in address or not peer_id:
            raise NetworkError(f"address {address!r} has no /p2p/<peer id>")
        if not self._fabric.reachable(self._peer_id, peer_id):
            raise NetworkError(f"cannot dial {peer_id}: not reachable")
        self._link(self._fabric.hosts[peer_id])
        return peer_id

    def peers(self) -> list[PeerInfo]:
        return [
            PeerInfo(peer_id=p, addresses=(self._fabric.address_of(p),), rtt_seconds=0.0)
            for p in sorted(self._connected)
            if self._fabric.reachable(self._peer_id, p)
        ]

    def is_connected(self, peer_id: str) -> bool:
        return peer_id in self._connected and self._fabric.reachable(self._peer_id, peer_id)

    async def ping(self, peer_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> float:
        if not self._fabric.reachable(self._peer_id, peer_id):
            with trio.move_on_after(timeout):
                await trio.sleep(math.inf)  # a cut link looks like silence, as on a real network
            raise NetworkTimeout(f"ping to {peer_id} timed out after {timeout:g}s")
        start = trio.current_time()
        await trio.lowlevel.checkpoint()
        return trio.current_time() - start

    async def find_peer(self, peer_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Sequence[str]:
        if peer_id in self._fabric.hosts:
            return [self._fabric.address_of(peer_id)]
        return []

    # -- raw streams -----------------------------------------------------------------------
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        self._stream_handlers[protocol] = handler

    def remove_stream_handler(self, protocol: str) -> None:
        self._stream_handlers.pop(protocol, None)

    async def open_stream(self, peer_id: str, protocol: str, *, timeout: float) -> RawStream:
        await trio.lowlevel.checkpoint()
        if not self._fabric.reachable(self._peer_id, peer_id):
            raise NetworkError(f"open {protocol} to {peer_id}: not reachable")
        target = self._fabric.hosts[peer_id]
        handler = target._stream_handlers.get(protocol)
        if handler is None or target._nursery is None:
            raise NetworkError(f"open {protocol} to {peer_id}: protocol not supported")
        if peer_id != self._peer_id:
            self._link(target)
        state = _StreamState()
        a_send, b_recv = trio.open_memory_channel[bytes](STREAM_QUEUE_SIZE)
        b_send, a_recv = trio.open_memory_channel[bytes](STREAM_QUEUE_SIZE)
        ours = MemoryRawStream(peer_id, a_send, a_recv, state)
        theirs = MemoryRawStream(self._peer_id, b_send, b_recv, state)
        target._nursery.start_soon(target._serve_stream, protocol, handler, theirs)
        return ours

    async def _serve_stream(self, protocol: str, handler: StreamHandler, stream: RawStream) -> None:
        try:
            await handler(stream)
        except Exception:
            log.exception("%s handler failed on %s", protocol, self._peer_id)
            await stream.reset()
