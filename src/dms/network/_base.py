"""The ``Network`` interface the actor system runs on.

Two implementations: ``MemoryNetwork`` (in-process, for tests and large simulations) and
``Libp2pNetwork`` (the real one). The actor layer only ever sees this interface, so every actor
test can run on memory and the same code runs over libp2p.

Contract, for every implementation:

* **Direct messages** are opaque bytes (an envelope's Go JSON) addressed to ``(peer, inbox)``;
  the receiving side hands them to the handler registered for that inbox together with the
  *authenticated* remote peer ID, so the actor layer can refuse an envelope whose sender host is
  not the peer that delivered it (anti-spoofing). A message to our own host ID is delivered
  locally without touching the wire. ``send`` returns once the bytes are handed to the peer's
  transport (Go's ``SendMessageSync``) and raises :class:`dms.errors.NetworkError`, or
  :class:`dms.errors.NetworkTimeout` when ``timeout`` passes; it never blocks past ``timeout``.
* **Pubsub** delivers ``data`` published on a topic to every *other* subscriber; each received
  message first passes the subscriber's validator (reject / ignore / accept). Delivery is best
  effort: nothing that must arrive depends on it.
* **Size**: a direct message whose frame (8-byte length prefix + data) exceeds
  :data:`~dms.network._frame.MAX_MESSAGE_SIZE` is refused by the sender and by the receiver
  (:func:`~dms.network._frame.check_message_size`), on every back-end alike.
* Handlers are awaited in tasks owned by the network; a handler that raises is logged and
  does not take the network down.
* **Raw streams** (:meth:`Network.open_stream`, :meth:`Network.set_stream_handler`) are for
  protocols of our own that carry their own framing (the subnet packet path): a byte stream
  to one authenticated peer, no size limit, no deadlines of its own (the caller bounds every
  read and write with a trio deadline, as for everything on the network).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's inline types for mypy.
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

#: Default deadline for one network operation (dial, stream open, read, write), in seconds.
DEFAULT_TIMEOUT = 10.0

InboxHandler = Callable[[bytes, str], Awaitable[None]]
"""Receives ``(data, remote_peer_id)`` for one direct message to an inbox."""

TopicHandler = Callable[[bytes, str], Awaitable[None]]
"""Receives ``(data, source_peer_id)`` for one pubsub message that passed validation."""


class Validation(enum.Enum):
    """A pubsub validator's verdict (libp2p semantics)."""

    ACCEPT = "accept"
    REJECT = "reject"  # invalid: drop and penalise the forwarder
    IGNORE = "ignore"  # not for us (e.g. expired): drop silently


TopicValidator = Callable[[bytes, str], Validation]
"""Checks ``(data, source_peer_id)`` before delivery; must be fast and not block."""


class RawStream(ABC):
    """A bidirectional byte stream to one authenticated peer on one protocol.

    ``read`` returns what has arrived (at most ``max_bytes``; ``-1`` = whatever is buffered)
    and ``b""`` once the peer closed its side; a reset or broken stream raises
    :class:`dms.errors.NetworkError`. Nothing here has a deadline: callers wrap reads and writes
    in ``trio.fail_after`` and :meth:`reset` the stream when one passes.
    """

    @property
    @abstractmethod
    def remote_peer(self) -> str:
        """The authenticated peer ID at the other end."""

    @abstractmethod
    async def read(self, max_bytes: int = -1) -> bytes:
        """Bytes that arrived (``b""`` at EOF); NetworkError if the stream broke."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Send ``data`` (all of it); NetworkError if the stream broke."""

    @abstractmethod
    async def close(self) -> None:
        """Close our side (the peer reads EOF); never raises."""

    @abstractmethod
    async def reset(self) -> None:
        """Abort the stream in both directions; never raises."""

    def set_receive_window(self, size: int) -> None:  # noqa: B027 - optional hint
        """Let the peer send up to ``size`` unread bytes (a throughput hint; may be ignored)."""


StreamHandler = Callable[[RawStream], Awaitable[None]]
"""Serves one inbound raw stream; the network resets the stream if it raises."""


@dataclass(frozen=True)
class PeerInfo:
    """What we know about a connected peer."""

    peer_id: str
    addresses: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    rtt_seconds: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Network(ABC):
    """A host on a peer-to-peer network; see the module docstring for the contract."""

    @property
    @abstractmethod
    def host_id(self) -> str:
        """Our peer ID (``12D3KooW...`` on libp2p)."""

    @abstractmethod
    def listen_addresses(self) -> list[str]:
        """Multiaddrs others can dial us on (with ``/p2p/<id>`` suffix)."""

    @abstractmethod
    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the host until cancelled: ``await nursery.start(network.run)``.

        Returns (after cancellation) only once every task, stream and socket it opened is
        closed, so cancelling the caller's scope is a complete shutdown.
        """

    # -- direct messages -------------------------------------------------------------------
    @abstractmethod
    def register_inbox(self, inbox: str, handler: InboxHandler) -> None:
        """Deliver messages addressed to ``inbox`` on this host to ``handler``."""

    @abstractmethod
    def unregister_inbox(self, inbox: str) -> None:
        """Stop delivering to ``inbox`` (unknown inboxes are ignored)."""

    @abstractmethod
    async def send(self, peer_id: str, inbox: str, data: bytes, *, timeout: float) -> None:
        """Deliver ``data`` to ``inbox`` on ``peer_id`` (see the module docstring)."""

    # -- pubsub ----------------------------------------------------------------------------
    @abstractmethod
    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` on ``topic`` (best effort)."""

    @abstractmethod
    async def subscribe(
        self, topic: str, handler: TopicHandler, validator: TopicValidator | None = None
    ) -> None:
        """Deliver validated messages on ``topic`` (not our own) to ``handler``."""

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None:
        """Stop delivering ``topic``."""

    # -- peers -----------------------------------------------------------------------------
    @abstractmethod
    async def connect(self, address: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Dial a multiaddr ending in ``/p2p/<peer id>``; return the peer ID."""

    @abstractmethod
    def peers(self) -> list[PeerInfo]:
        """Currently connected peers."""

    def is_connected(self, peer_id: str) -> bool:
        """True if ``peer_id`` is connected now.

        Cheaper than scanning :meth:`peers`, which renders every peer's addresses and
        protocols: callers on a message path (a hello from an unknown DID) use this.
        """
        return any(p.peer_id == peer_id for p in self.peers())

    @abstractmethod
    async def ping(self, peer_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> float:
        """Round-trip time to ``peer_id`` in seconds (NetworkTimeout past ``timeout``)."""

    @abstractmethod
    async def find_peer(self, peer_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Sequence[str]:
        """Addresses of ``peer_id`` from the peer store or the DHT (empty if unknown)."""

    # -- raw streams -----------------------------------------------------------------------
    @abstractmethod
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve inbound streams of ``protocol`` with ``handler`` (one task per stream)."""

    @abstractmethod
    def remove_stream_handler(self, protocol: str) -> None:
        """Refuse new streams of ``protocol`` (unknown protocols are ignored)."""

    @abstractmethod
    async def open_stream(self, peer_id: str, protocol: str, *, timeout: float) -> RawStream:
        """A new stream of ``protocol`` to ``peer_id`` (NetworkError / NetworkTimeout)."""
