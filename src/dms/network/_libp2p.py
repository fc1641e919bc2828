"""``Libp2pNetwork``: the :class:`~dms.network.Network` interface on py-libp2p 0.8.1.

One host (TCP + Noise + Yamux, identify, ping) whose key is the DMS's own Ed25519 key, so the
peer ID is the DID's key. Direct messages use the Go DMS's stream protocol, or our reusable
stream with peers that advertise it (:mod:`._libp2p_streams`); pubsub is GossipSub with explicit
settings (:mod:`._libp2p_pubsub`); a Kademlia DHT in server mode answers peer lookups; a ping
loop disconnects frozen peers (:mod:`._libp2p_liveness`).

Everything is shaped by the measurements in spec/py-libp2p-0.8.1.md: every network await
runs under a trio deadline, streams are reused where possible, and shutdown goes in a safe
order (our tasks, then pubsub, then the DHT, then the host) with the library's known
"Nursery is closed to new arrivals" teardown error filtered out.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.peer.peerstore import PERMANENT_ADDR_TTL
from libp2p.tools.anyio_service import background_trio_service

from dms.crypto import Ed25519PrivateKey, peer_id_from_public_key
from dms.errors import InvalidInput, NetworkError, NetworkTimeout
from dms.network._base import (
    DEFAULT_TIMEOUT,
    InboxHandler,
    Network,
    PeerInfo,
    RawStream,
    StreamHandler,
    TopicHandler,
    TopicValidator,
)
from dms.network._libp2p_dht import AddressedKadDHT, own_addresses, use_dht_protocol
from dms.network._libp2p_eager import patch_eager_locks
from dms.network._libp2p_keys import libp2p_key_pair
from dms.network._libp2p_liveness import Liveness, ping_once
from dms.network._libp2p_multiselect import cork_negotiation
from dms.network._libp2p_notify import patch_stream_notifications
from dms.network._libp2p_peer_ids import patch_peer_id_parsing
from dms.network._libp2p_pubsub import (
    GossipSettings,
    libp2p_validator,
    make_pubsub,
    message_source,
)
from dms.network._libp2p_redial import redial_promptly
from dms.network._libp2p_security import DEFAULT_SECURITY, harden_upgrader, security_options
from dms.network._libp2p_streams import (
    REUSE_PROTOCOL,
    Libp2pRawStream,
    StreamSender,
    check_go_frame,
    close_quietly,
    go_protocol,
    network_errors,
    parse_announcement,
    read_exactly,
    read_frame_header,
    reset_quietly,
    split_reuse_body,
)
from dms.network._libp2p_tcp_reads import patch_buffered_tcp_reads
from dms.network._libp2p_yamux import (
    patch_yamux_frame_reads,
    patch_yamux_frame_writes,
    patch_yamux_window_updates,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

#: Go reads an envelope body with a 30 s deadline; so do we.
DEFAULT_READ_TIMEOUT = 30.0
_LOCAL_QUEUE = 1024


def _is_teardown_noise(exc: BaseException) -> bool:
    """py-libp2p 0.8.1 pubsub raises this while its service stops with reads in flight."""
    return isinstance(exc, RuntimeError) and "closed to new arrivals" in str(exc)


#: How long addresses found through the DHT stay in the peer store (seconds).
DISCOVERED_ADDR_TTL = 600


class Libp2pNetwork(Network):
    """A libp2p host implementing the DMS network contract (see ``dms.network._base``).

    ``timeout`` bounds dials and the bootstrap; ``read_timeout`` bounds reading one frame body
    after its header arrived; ``ping_interval``/``ping_timeout``/``ping_failures`` drive the
    liveness loop; ``security`` lists the accepted security protocols in our order of preference
    (``"noise"``, ``"tls"``; Go prefers TLS; nothing else is ever accepted);
    ``reuse_streams=False`` makes this host behave like the Go DMS (it neither advertises nor
    uses the multi-frame protocol), which tests use as a stand-in.
    """

    def __init__(
        self,
        key: Ed25519PrivateKey,
        listen_addresses: Sequence[str],
        bootstrap_peers: Sequence[str] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        ping_interval: float = 10.0,
        ping_timeout: float = 10.0,
        ping_failures: int = 3,
        reuse_streams: bool = True,
        max_connections: int = 400,
        gossip: GossipSettings | None = None,
        security: Sequence[str] = DEFAULT_SECURITY,
    ) -> None:
        self._key_pair = libp2p_key_pair(key)
        try:
            self._listen = [multiaddr.Multiaddr(a) for a in listen_addresses]
        except Exception as exc:
            raise InvalidInput(f"invalid listen address: {exc}") from None
        self._bootstrap = list(bootstrap_peers)
        self._timeout = timeout
        self._read_timeout = read_timeout
        # Limits set explicitly (§1): no auto-dialling (low watermark 0) so the library never
        # re-dials a peer the liveness loop cut off; the Go DMS's conn manager high mark is 400.
        config = ConnectionConfig(
            max_connections=max_connections,
            high_watermark=max_connections,
            low_watermark=0,
            min_connections=0,
            max_connections_per_peer=3,
            dial_timeout=timeout,
            inbound_upgrade_timeout=timeout,
            outbound_upgrade_timeout=timeout,
            outbound_stream_protocol_negotiation_timeout=timeout,
            inbound_stream_protocol_negotiation_timeout=timeout,
        )
        patch_yamux_window_updates()  # go-yamux's rule: no WINDOW_UPDATE frame per read
        patch_yamux_frame_writes()  # no debug line built per frame sent
        patch_yamux_frame_reads()  # plain frames applied without the library's per-frame work
        patch_eager_locks()  # a signed message goes on the wire at once (no lockstep batches)
        patch_stream_notifications()  # no task per notifee per stream opened or closed
        patch_peer_id_parsing()  # a peer ID's text is parsed once, not per stream
        patch_buffered_tcp_reads()  # one recv per arrival, not two per Noise message
        # Noise and TLS only, never py-libp2p's default secio and plaintext (spec §11).
        secure = security_options(self._key_pair, security)
        self._host: Any = new_host(
            key_pair=self._key_pair,
            listen_addrs=self._listen,
            connection_config=config,
            muxer_preference="YAMUX",
            sec_opt=secure,
        )
        harden_upgrader(self._host, secure)
        cork_negotiation(self._host)  # a lazy dialer's header and protocol: one reply
        redial_promptly(self._host)  # a peer that is back is reachable at once, not in 60 s
        self._id: ID = self._host.get_id()
        assert str(self._id) == str(peer_id_from_public_key(key.public_key))
        self._reuse = reuse_streams
        self._inboxes: dict[str, InboxHandler] = {}
        self._inbox_names: frozenset[str] = frozenset()  # announced in-band (_libp2p_streams)
        self._reannounced: dict[ID, float] = {}  # peer -> when we last corrected its view
        self._sender = StreamSender(
            self._host, reuse=reuse_streams, inboxes=lambda: self._inbox_names
        )
        if reuse_streams:
            self._host.set_stream_handler(REUSE_PROTOCOL, self._handle_reuse_stream)
        self._pubsub = make_pubsub(self._host, gossip or GossipSettings())
        use_dht_protocol()  # /nunet/kad/1.0.0, as the Go DMS
        self._dht = AddressedKadDHT(self._host, DHTMode.SERVER)
        self._liveness = Liveness(
            self._host,
            interval=ping_interval,
            timeout=ping_timeout,
            max_failures=ping_failures,
            on_dead=self._sender.drop,
        )
        self._topics: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._running = False
        self._local_send, self._local_recv = trio.open_memory_channel[tuple[str, bytes]](
            _LOCAL_QUEUE
        )

    # -- identity --------------------------------------------------------------------------
    @property
    def host_id(self) -> str:
        return str(self._id)

    def listen_addresses(self) -> list[str]:
        return [str(a) for a in self._host.get_addrs()]

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start host, DHT and pubsub, then our tasks; tear down in reverse on cancellation.

        Order matters (spec §3, shutdown): our readers and handlers stop first (inner
        nursery), then pubsub, then the DHT, then the host closes its connections and
        listeners. py-libp2p's pubsub may still raise ``RuntimeError("Nursery is closed to new
        arrivals")`` from a read that raced the stop; that error alone is dropped.
        """
        if self._running:
            raise NetworkError("libp2p network is already running")
        self._running = True
        try:
            async with self._host.run(listen_addrs=self._listen):
                # Our own peer-store entry before the DHT can answer for us (see _libp2p_dht).
                self._host.get_peerstore().add_addrs(
                    self._id, own_addresses(self._host.get_transport_addrs()), PERMANENT_ADDR_TTL
                )
                async with (
                    background_trio_service(self._dht),
                    background_trio_service(self._pubsub),
                ):
                    await self._serve(task_status)
        except BaseExceptionGroup as group:
            noise, rest = group.split(_is_teardown_noise)
            if noise is not None:
                log.debug("ignored libp2p teardown error: %r", noise)
            if rest is not None:
                raise rest from None
        finally:
            self._running = False

    async def _serve(self, task_status: TaskStatus[None]) -> None:
        """Our own tasks, inside the running host, DHT and pubsub (stopped first on shutdown)."""
        with trio.fail_after(self._timeout):
            await self._pubsub.wait_until_ready()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                nursery.start_soon(self._liveness.run)
                nursery.start_soon(self._local_delivery)
                nursery.start_soon(self._routing_table_loop)
                for address in self._bootstrap:
                    nursery.start_soon(self._bootstrap_one, address)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                self._topics.clear()
                await self._sender.close_all()

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._nursery is None:
            raise NetworkError("libp2p network is not running")
        self._nursery.start_soon(fn, *args)

    async def _bootstrap_one(self, address: str) -> None:
        try:
            peer = await self.connect(address, timeout=self._timeout)
            log.info("connected to bootstrap peer %s", peer)
        except (NetworkError, InvalidInput) as exc:
            log.warning("bootstrap %s failed: %s", address, exc)

    async def _routing_table_loop(self) -> None:
        """Put connected DHT servers in the routing table (connections alone do not, §5)."""
        while True:
            in_table = set(self._dht.routing_table.get_peer_ids())
            for peer in self._host.get_connected_peers():
                if peer not in in_table:
                    with trio.move_on_after(self._timeout):
                        try:
                            await self._dht.add_peer(peer)
                        except Exception as exc:
                            log.debug("routing table add %s: %s", peer, exc)
            await trio.sleep(1.0)

    # -- direct messages -------------------------------------------------------------------
    def register_inbox(self, inbox: str, handler: InboxHandler) -> None:
        self._inboxes[inbox] = handler

        async def handle(stream: Any) -> None:
            await self._handle_go_stream(inbox, stream)

        self._host.set_stream_handler(go_protocol(inbox), handle)
        self._inbox_names = frozenset(self._inboxes)

    def unregister_inbox(self, inbox: str) -> None:
        if self._inboxes.pop(inbox, None) is not None:
            self._host.remove_stream_handler(go_protocol(inbox))
            self._inbox_names = frozenset(self._inboxes)

    async def send(self, peer_id: str, inbox: str, data: bytes, *, timeout: float) -> None:
        if peer_id == self.host_id:
            check_go_frame(data)  # same size limit as the wire
            if inbox not in self._inboxes:
                raise NetworkError(f"send to {inbox!r} on this host: no such inbox")
            with network_errors(f"local send to {inbox!r}"), trio.fail_after(timeout):
                await self._local_send.send((inbox, data))
            return
        peer = self._parse_peer(peer_id)
        with network_errors(f"send to {inbox!r} on {peer_id}"), trio.fail_after(timeout):
            if not self._has_route(peer):
                await self._discover(peer, peer_id)
            await self._sender.send(peer, inbox, data)

    def _has_route(self, peer: Any) -> bool:
        """True if we are connected to ``peer`` or know an address to dial."""
        if peer in self._host.get_connected_peers():
            return True
        try:
            return bool(self._host.get_peerstore().addrs(peer))
        except Exception:
            return False

    async def _discover(self, peer: Any, peer_id: str) -> None:
        """Find a peer we have no address for through the DHT (as Go's routed host does)."""
        info = await self._dht.find_peer(peer)
        if info is None or not info.addrs:
            raise NetworkError(f"peer {peer_id} is not connected and the DHT does not know it")
        self._host.get_peerstore().add_addrs(peer, info.addrs, DISCOVERED_ADDR_TTL)

    async def _local_delivery(self) -> None:
        """Deliver self-addressed messages in order, outside the sender's task."""
        async for inbox, data in self._local_recv:
            await self._deliver(inbox, data, self.host_id)

    def _reannounce(self, peer: ID) -> None:
        """Send ``peer`` our inbox list soon (at most once a second per peer)."""
        now = trio.current_time()
        if self._nursery is None or now - self._reannounced.get(peer, -math.inf) < 1.0:
            return
        self._reannounced[peer] = now

        async def announce() -> None:
            with trio.move_on_after(self._timeout), contextlib.suppress(Exception):
                await self._sender.announce(peer)

        self._nursery.start_soon(announce)

    async def _deliver(self, inbox: str, data: bytes, remote: str) -> None:
        handler = self._inboxes.get(inbox)
        if handler is None:
            log.info("message for unknown inbox %r from %s dropped", inbox, remote)
            return
        try:
            await handler(data, remote)
        except Exception:
            log.exception("inbox %r handler failed on a message from %s", inbox, remote)

    async def _handle_go_stream(self, inbox: str, stream: Any) -> None:
        """One envelope per stream (Go protocol); reset on oversize, timeout or garbage."""
        remote = str(stream.muxed_conn.peer_id)
        data: bytes | None = None
        with trio.move_on_after(self._read_timeout):
            try:
                length = await read_frame_header(stream)
                if length is not None:
                    data = await read_exactly(stream, length)
            except Exception as exc:
                log.info("bad frame on %s from %s: %s", go_protocol(inbox), remote, exc)
        if data is None:
            await reset_quietly(stream)
            return
        # Deliver before closing: our FIN is one more frame to encrypt and send, and nothing
        # waits for it (the sender closed its side already), so it need not delay the handler.
        try:
            await self._deliver(inbox, data, remote)
        finally:
            await close_quietly(stream)

    async def _handle_reuse_stream(self, stream: Any) -> None:
        """Frames until EOF; the next header may take forever (idle), a body may not."""
        remote = str(stream.muxed_conn.peer_id)
        try:
            while True:
                length = await read_frame_header(stream)
                if length is None:
                    break
                with trio.fail_after(self._read_timeout):
                    body = await read_exactly(stream, length)
                inbox, data = split_reuse_body(body)
                if not inbox:  # the peer's inboxes, announced before a message from a new one
                    self._sender.learn(stream.muxed_conn.peer_id, parse_announcement(data))
                    continue
                if inbox not in self._inboxes:  # the peer's view of our inboxes is stale
                    log.info("message for unknown inbox %r from %s dropped", inbox, remote)
                    self._reannounce(stream.muxed_conn.peer_id)
                    continue
                await self._deliver(inbox, data, remote)
        except Exception as exc:
            log.info("reuse stream from %s closed: %s: %s", remote, type(exc).__name__, exc)
            await reset_quietly(stream)
            return
        await close_quietly(stream)

    # -- pubsub ----------------------------------------------------------------------------
    async def publish(self, topic: str, data: bytes) -> None:
        if not self._running:
            raise NetworkError("libp2p network is not running")
        with network_errors(f"publish on {topic}"), trio.fail_after(self._timeout):
            await self._pubsub.publish(topic, data)

    async def subscribe(
        self, topic: str, handler: TopicHandler, validator: TopicValidator | None = None
    ) -> None:
        if self._nursery is None:
            raise NetworkError("libp2p network is not running")
        await self.unsubscribe(topic)
        if validator is not None:
            self._pubsub.set_topic_validator(
                topic, libp2p_validator(self._id, topic, validator), False
            )
        with network_errors(f"subscribe to {topic}"), trio.fail_after(self._timeout):
            subscription = await self._pubsub.subscribe(topic)
        scope = trio.CancelScope()
        self._topics[topic] = scope
        self._spawn(self._drain, topic, subscription, handler, scope)

    async def _drain(
        self, topic: str, subscription: Any, handler: TopicHandler, scope: trio.CancelScope
    ) -> None:
        """Empty the subscription queue promptly (it drops when full) and fan out to tasks."""
        with scope:
            async with trio.open_nursery() as handlers:
                while True:
                    msg = await subscription.get()
                    try:
                        source, source_text = message_source(bytes(msg.from_id))
                    except Exception:
                        continue
                    if source == self._id:
                        continue
                    handlers.start_soon(self._call_topic_handler, topic, handler, msg, source_text)

    async def _call_topic_handler(
        self, topic: str, handler: TopicHandler, msg: Any, source: str
    ) -> None:
        try:
            await handler(bytes(msg.data), source)
        except Exception:
            log.exception("topic %s handler failed on a message from %s", topic, source)

    async def unsubscribe(self, topic: str) -> None:
        scope = self._topics.pop(topic, None)
        if scope is None:
            return
        scope.cancel()
        self._pubsub.remove_topic_validator(topic)
        with network_errors(f"unsubscribe from {topic}"), trio.fail_after(self._timeout):
            await self._pubsub.unsubscribe(topic)

    # -- peers -----------------------------------------------------------------------------
    def _parse_peer(self, peer_id: str) -> ID:
        try:
            return ID.from_base58(peer_id)
        except Exception:
            raise InvalidInput(f"invalid peer ID {peer_id!r}") from None

    async def connect(self, address: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(address))
        except Exception:
            raise InvalidInput(f"address {address!r} is not a multiaddr with /p2p/<id>") from None
        with network_errors(f"connect to {address}"), trio.fail_after(timeout):
            await self._host.connect(info)
        return str(info.peer_id)

    def peers(self) -> list[PeerInfo]:
        store = self._host.get_peerstore()
        result = []
        for peer in self._host.get_connected_peers():
            try:
                addrs = tuple(str(a) for a in store.addrs(peer))
            except Exception:
                addrs = ()
            try:
                protocols = tuple(sorted(str(p) for p in store.get_protocols(peer)))
            except Exception:
                protocols = ()
            result.append(
                PeerInfo(
                    peer_id=str(peer),
                    addresses=addrs,
                    protocols=protocols,
                    rtt_seconds=self._liveness.rtt.get(str(peer)),
                )
            )
        return result

    def is_connected(self, peer_id: str) -> bool:
        try:
            peer = self._parse_peer(peer_id)
        except InvalidInput:
            return False
        return peer in self._host.get_network().connections

    async def ping(self, peer_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> float:
        peer = self._parse_peer(peer_id)
        rtt = await ping_once(self._host, peer, timeout)
        self._liveness.record(peer, rtt)
        return rtt

    # -- raw streams -----------------------------------------------------------------------
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        async def serve(stream: Any) -> None:
            raw = Libp2pRawStream(stream)
            try:
                await handler(raw)
            except Exception:
                log.exception("%s handler failed on a stream from %s", protocol, raw.remote_peer)
                await raw.reset()

        self._host.set_stream_handler(TProtocol(protocol), serve)

    def remove_stream_handler(self, protocol: str) -> None:
        self._host.remove_stream_handler(TProtocol(protocol))

    async def open_stream(self, peer_id: str, protocol: str, *, timeout: float) -> RawStream:
        peer = self._parse_peer(peer_id)
        with network_errors(f"open {protocol} to {peer_id}"), trio.fail_after(timeout):
            if not self._has_route(peer):
                await self._discover(peer, peer_id)
            stream = await self._host.new_stream(peer, [TProtocol(protocol)])
        return Libp2pRawStream(stream)

    def dht_peers(self) -> list[str]:
        """Peer IDs in our Kademlia routing table (``/dms/node/peers/dht`` shows them)."""
        return sorted(str(peer) for peer in self._dht.routing_table.get_peer_ids())

    async def find_peer(self, peer_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Sequence[str]:
        peer = self._parse_peer(peer_id)
        if peer == self._id:
            return [str(a) for a in self._host.get_transport_addrs()]
        try:
            known = [str(a) for a in self._host.get_peerstore().addrs(peer)]
        except Exception:
            known = []
        if known:
            return known
        info = None
        with trio.move_on_after(timeout) as scope:
            try:
                info = await self._dht.find_peer(peer)
            except Exception as exc:
                raise NetworkError(f"find peer {peer_id}: {type(exc).__name__}: {exc}") from None
        if scope.cancelled_caught:
            raise NetworkTimeout(f"find peer {peer_id}: timed out after {timeout:g}s")
        return [str(a) for a in info.addrs] if info is not None else []


__all__ = ["Libp2pNetwork"]
