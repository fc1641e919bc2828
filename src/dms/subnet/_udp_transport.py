"""``udp``: a subnet's packets in sealed UDP datagrams, keyed over libp2p, with a stream fallback.

Why: on ``libp2p-stream`` every packet batch crosses py-libp2p's Yamux and Noise in Python on
both providers, and one reused-stream echo alone costs 0.5-1.1 ms on a 2-core VM, so a round
trip across the subnet (which crosses each provider twice) cannot stay within 1 ms of a wire.
A UDP datagram sealed with ChaCha20-Poly1305 costs one ``sendto`` and one AEAD call a side.

How (bytes in :mod:`._datagram_wire`):

1. **Keys over libp2p.** The first time this node has packets of a subnet for a peer, it opens
   ``/nunet/subnet/udp-keys/1.0.0`` to it (Noise-authenticated: the stream's peer is who it
   claims) and both sides exchange an offer: the receive session and key the *other* side must
   seal with, and the UDP endpoints to send to. Each side keeps one receive key per (subnet,
   peer) for as long as the peer is in the subnet; a datagram that opens under it comes from
   that peer, so the router's membership and anti-spoofing checks apply as on every transport.
2. **Return routability.** A peer could name someone else's address as its endpoint (to aim our
   traffic at a victim). So an endpoint is used only after a PROBE sent to it (with a random
   challenge, sealed for the peer) came back as a PROBE_ACK echoing the challenge: only a
   party that received the probe *at that endpoint* and holds the peer's key can answer.
3. **Fallback.** Until a path is confirmed, when no endpoint answers (a firewall, a NAT), and
   for packets larger than a datagram (64 KiB segmentation-offload packets of a bulk TCP
   transfer), packets go on the ``fallback`` transport (``libp2p-stream``). A confirmed path
   is re-probed every :data:`KEEPALIVE` seconds while it carries traffic and dropped back to
   the fallback after :data:`DEAD_AFTER` seconds without an answer (a restarted peer forgot
   our key: the next send negotiates again).

UDP delivers no order and no guarantee, as a wire does; TCP inside the subnet copes.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from dms.errors import DMSError, InvalidInput, NetworkError
from dms.network import Network, RawStream
from dms.subnet._datagram_wire import (
    CHALLENGE_SIZE,
    DATA,
    MAX_OFFER_BYTES,
    OVERHEAD,
    PROBE,
    PROBE_ACK,
    Endpoint,
    Offer,
    Opener,
    Sealer,
    decode_offer,
    hinted_session,
    offer_size,
    pack_records,
    session_of,
    unknown_session_hint,
    unpack_records,
)
from dms.subnet._transport import PacketReceiver, PacketTransport

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

KEYS_PROTOCOL = "/nunet/subnet/udp-keys/1.0.0"
#: A datagram's UDP payload at most: fits a 1,500-byte path (IPv4 and UDP headers: 28 bytes).
DEFAULT_MAX_DATAGRAM = 1472
#: Seconds between probes of a path that carries traffic.
KEEPALIVE = 5.0
#: Seconds a keepalive probe may go unanswered before the path falls back and is negotiated
#: again (probes are resent every PROBE_SPACING meanwhile).
DEAD_AFTER = 10.0
PROBE_SPACING = 1.0
#: Probe rounds to a new path's endpoints before giving up on it (one every PROBE_INTERVAL).
PROBE_ROUNDS = 5
PROBE_INTERVAL = 0.2
#: Seconds a probe may go unanswered after the peer said it lost our session.
SUSPECT_AFTER = 1.0
#: UNKNOWN_SESSION hints sent per second at most (they answer unauthenticated datagrams).
HINTS_PER_SECOND = 50
#: Seconds before a path that found no endpoint (or whose negotiation failed) is tried again.
RETRY_AFTER = 30.0
#: Seconds between two offers of one peer that we probe for (a peer cannot make us spray probes).
OFFER_SPACING = 1.0
#: Receive keys this node holds at most (one per subnet and peer).
MAX_SESSIONS = 4096
#: Datagrams read per wake-up before the batch is handed on.
READ_BATCH = 64
SOCKET_BUFFER = 4 << 20


@dataclass
class UdpTransportStats:
    """Counters of the transport (monotonic)."""

    datagrams_sent: int = 0
    datagrams_received: int = 0
    packets_sent: int = 0  # in datagrams
    packets_received: int = 0
    packets_via_fallback: int = 0  # no confirmed path yet, or too big for a datagram
    negotiations: int = 0  # offers exchanged (either side opened)
    negotiations_failed: int = 0
    paths_up: int = 0
    paths_lost: int = 0  # a confirmed path stopped answering probes
    dropped_unknown_session: int = 0
    dropped_unopened: int = 0  # forged, replayed or corrupt
    dropped_malformed: int = 0  # opened, but the payload is not what its kind says
    # Benign races, counted apart: a probe that came before the peer's offer was read here
    # (it probes again), an answer to a probe whose challenge is no longer outstanding.
    probes_early: int = 0
    answers_stale: int = 0
    dropped_send_failed: int = 0  # the socket refused a datagram (buffer full, no route)
    offers_refused: int = 0


@dataclass(eq=False)
class _Inbound:
    """Our receive key for datagrams of ``subnet_id`` from ``peer``."""

    subnet_id: str
    peer: str
    opener: Opener = field(default_factory=Opener)


@dataclass(eq=False)
class _Path:
    """How we send packets of one subnet to one peer."""

    state: str = "new"  # new | negotiating | probing | up | failed
    sealer: Sealer | None = None
    endpoint: Endpoint | None = None
    challenges: dict[bytes, Endpoint] = field(default_factory=dict)
    confirmed: trio.Event = field(default_factory=trio.Event)
    last_answer: float = 0.0
    last_probe: float = 0.0
    unanswered_since: float = 0.0  # first keepalive probe not answered yet (0: none)
    offered_at: float = 0.0  # when the peer's last offer that we probed for arrived
    retry_at: float = 0.0


class UdpTransport(PacketTransport):
    """Packets of every subnet of a node in sealed UDP datagrams (see the module docstring).

    ``host``/``port`` is where the UDP socket binds (port 0: any); ``advertise`` overrides the
    endpoints offered to peers (default: the socket's address, or for an unspecified host the
    IPv4 addresses of ``network``'s listen addresses). Run :meth:`run` in a nursery: without
    it every packet takes the ``fallback``.
    """

    name = "udp"

    def __init__(
        self,
        network: Network,
        fallback: PacketTransport,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        advertise: Sequence[Endpoint] | None = None,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        timeout: float = 10.0,
    ) -> None:
        if max_datagram <= OVERHEAD + 64:
            raise InvalidInput(f"max datagram of {max_datagram} bytes is too small")
        self._network = network
        self.fallback = fallback
        self._bind = (host, port)
        self._advertise = tuple(advertise) if advertise is not None else None
        self._payload_limit = max_datagram - OVERHEAD
        self._timeout = timeout
        self._receivers: dict[str, PacketReceiver] = {}
        self._inbound: dict[tuple[str, str], _Inbound] = {}
        self._by_session: dict[bytes, _Inbound] = {}
        self._paths: dict[tuple[str, str], _Path] = {}
        self._sock: socket.socket | None = None
        self._nursery: trio.Nursery | None = None
        self._hint_second, self._hints = 0, 0
        self.stats = UdpTransportStats()

    # -- state -----------------------------------------------------------------------------
    @property
    def address(self) -> Endpoint | None:
        """Where the UDP socket listens (None until :meth:`run` bound it)."""
        if self._sock is None:
            return None
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def path_to(self, subnet_id: str, peer_id: str) -> str:
        """Which transport carries packets of ``subnet_id`` to ``peer_id`` now.

        ``"udp"`` (a confirmed endpoint) or the fallback's name (no path confirmed yet, or
        none could be).
        """
        path = self._paths.get((subnet_id, peer_id))
        return self.name if path is not None and path.state == "up" else self.fallback.name

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints offered to peers."""
        if self._advertise is not None:
            return self._advertise
        bound = self.address
        if bound is None:
            return ()
        host, port = bound
        if not ipaddress.IPv4Address(host).is_unspecified:
            return ((host, port),)
        return tuple((ip, port) for ip in _listen_ips(self._network.listen_addresses()))

    # -- running ---------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket, accept offers and datagrams until cancelled."""
        sock = _bind_udp(*self._bind)
        self._sock = sock
        self._network.set_stream_handler(KEYS_PROTOCOL, self._serve_offer)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._read_loop(sock)
        finally:
            self._nursery = None
            self._network.remove_stream_handler(KEYS_PROTOCOL)
            self._sock = None
            sock.close()
            self._inbound.clear()
            self._by_session.clear()
            self._paths.clear()

    # -- sending ---------------------------------------------------------------------------
    async def send(self, subnet_id: str, peer_id: str, packets: Sequence[bytes]) -> None:
        if not packets:
            return
        path = self._paths.get((subnet_id, peer_id))
        if path is None:
            path = self._paths[(subnet_id, peer_id)] = _Path()
        now = time.monotonic()
        if path.state == "up" and not self._path_alive(subnet_id, peer_id, path, now):
            path.state = "failed"
        if path.state != "up":
            self._maybe_negotiate(subnet_id, peer_id, path, now)
            self.stats.packets_via_fallback += len(packets)
            await self.fallback.send(subnet_id, peer_id, packets)
            return
        payloads, oversize = pack_records(packets, self._payload_limit)
        sealer, endpoint = path.sealer, path.endpoint
        assert sealer is not None and endpoint is not None
        for payload in payloads:
            self._sendto(sealer.seal(DATA, payload), endpoint)
        self.stats.packets_sent += len(packets) - len(oversize)
        if oversize:
            self.stats.packets_via_fallback += len(oversize)
            await self.fallback.send(subnet_id, peer_id, oversize)

    def _path_alive(self, subnet_id: str, peer_id: str, path: _Path, now: float) -> bool:
        """Keep a confirmed path probed; False once probes went :data:`DEAD_AFTER` unanswered.

        An idle path is not dead: its first probe after the pause starts the clock.
        """
        if path.unanswered_since and now - path.unanswered_since > DEAD_AFTER:
            self.stats.paths_lost += 1
            log.info("subnet %s: UDP path to %s stopped answering", subnet_id, peer_id)
            path.retry_at = 0.0
            return False
        if now - path.last_answer > KEEPALIVE and now - path.last_probe > PROBE_SPACING:
            assert path.endpoint is not None
            self._probe(path, path.endpoint, now)
            path.unanswered_since = path.unanswered_since or now
        return True

    def _maybe_negotiate(self, subnet_id: str, peer_id: str, path: _Path, now: float) -> None:
        if self._nursery is None or path.state in ("negotiating", "probing"):
            return
        if path.state == "failed" and now < path.retry_at:
            return
        path.state = "negotiating"
        self._nursery.start_soon(self._negotiate, subnet_id, peer_id, path)

    async def _negotiate(self, subnet_id: str, peer_id: str, path: _Path) -> None:
        """Exchange offers with ``peer_id`` over libp2p, then probe its endpoints."""
        self.stats.negotiations += 1
        stream: RawStream | None = None
        try:
            mine = self._offer_for(subnet_id, peer_id)
            with trio.fail_after(self._timeout):
                stream = await self._network.open_stream(
                    peer_id, KEYS_PROTOCOL, timeout=self._timeout
                )
                await stream.write(mine.encode())
                theirs = await _read_offer(stream)
                await stream.close()
            if theirs.subnet_id != subnet_id:
                raise InvalidInput(f"answer names subnet {theirs.subnet_id!r}")
        except (DMSError, trio.TooSlowError) as exc:
            if stream is not None:
                await stream.reset()
            self.stats.negotiations_failed += 1
            if path.state == "negotiating":  # (the peer's own offer may have won meanwhile)
                path.state, path.retry_at = "failed", time.monotonic() + RETRY_AFTER
            log.info("subnet %s: no UDP keys with %s: %s", subnet_id, peer_id, exc or "timed out")
            return
        if self._paths.get((subnet_id, peer_id)) is path:
            await self._learn(subnet_id, peer_id, path, theirs)

    def _offer_for(self, subnet_id: str, peer_id: str) -> Offer:
        """Our offer to ``peer_id``: its receive key in ``subnet_id`` (made once, then kept)."""
        inbound = self._inbound.get((subnet_id, peer_id))
        if inbound is None:
            if len(self._inbound) >= MAX_SESSIONS:
                raise NetworkError(f"too many UDP subnet sessions ({MAX_SESSIONS})")
            inbound = _Inbound(subnet_id, peer_id)
            self._inbound[(subnet_id, peer_id)] = inbound
            self._by_session[inbound.opener.session] = inbound
        opener = inbound.opener
        return Offer(subnet_id, opener.session, opener.key, self.endpoints())

    async def _learn(self, subnet_id: str, peer_id: str, path: _Path, offer: Offer) -> None:
        """Take the peer's offer: seal for its session, find which endpoint answers."""
        same = path.sealer is not None and path.sealer.session == offer.session
        if same and path.state in ("probing", "up"):
            return  # the same keys, offered again (both sides negotiated at once)
        candidates = _candidates(offer.endpoints, self._peer_ips(peer_id))
        path.sealer = Sealer(offer.session, offer.key)
        path.endpoint = None
        path.challenges.clear()
        path.unanswered_since = 0.0
        confirmed = path.confirmed = trio.Event()
        path.state = "probing"
        for _ in range(PROBE_ROUNDS):
            now = time.monotonic()
            for endpoint in candidates:
                self._probe(path, endpoint, now)
            with trio.move_on_after(PROBE_INTERVAL):
                await confirmed.wait()
            if confirmed.is_set() or path.confirmed is not confirmed:
                return  # up, or a newer offer took over
        if path.confirmed is confirmed:
            path.state, path.retry_at = "failed", time.monotonic() + RETRY_AFTER
            path.challenges.clear()
            log.info(
                "subnet %s: no UDP endpoint of %s answered (%s); using %s",
                subnet_id,
                peer_id,
                ", ".join(f"{h}:{p}" for h, p in candidates) or "none offered",
                self.fallback.name,
            )

    def _peer_ips(self, peer_id: str) -> list[str]:
        for info in self._network.peers():
            if info.peer_id == peer_id:
                return _listen_ips(info.addresses)
        return []

    def _probe(self, path: _Path, endpoint: Endpoint, now: float) -> None:
        assert path.sealer is not None
        challenge = os.urandom(CHALLENGE_SIZE)
        if len(path.challenges) >= 64:
            path.challenges.clear()
        path.challenges[challenge] = endpoint
        path.last_probe = now
        self._sendto(path.sealer.seal(PROBE, challenge), endpoint)

    def _sendto(self, datagram: bytes, endpoint: Endpoint) -> None:
        sock = self._sock
        if sock is None:
            self.stats.dropped_send_failed += 1
            return
        try:
            sock.sendto(datagram, endpoint)
        except OSError:  # buffer full (as a congested wire drops), unreachable
            self.stats.dropped_send_failed += 1
            return
        self.stats.datagrams_sent += 1

    async def forget_peer(self, subnet_id: str, peer_id: str) -> None:
        self._paths.pop((subnet_id, peer_id), None)
        inbound = self._inbound.pop((subnet_id, peer_id), None)
        if inbound is not None:
            self._by_session.pop(inbound.opener.session, None)
        await self.fallback.forget_peer(subnet_id, peer_id)

    # -- receiving -------------------------------------------------------------------------
    def register(self, subnet_id: str, receiver: PacketReceiver) -> None:
        self._receivers[subnet_id] = receiver
        self.fallback.register(subnet_id, receiver)

    def unregister(self, subnet_id: str) -> None:
        self._receivers.pop(subnet_id, None)
        self.fallback.unregister(subnet_id)
        for key in [k for k in self._paths if k[0] == subnet_id]:
            del self._paths[key]
        for key in [k for k in self._inbound if k[0] == subnet_id]:
            self._by_session.pop(self._inbound.pop(key).opener.session, None)

    async def _serve_offer(self, stream: RawStream) -> None:
        """A peer's offer: answer with ours if the subnet is ours, then probe its endpoints."""
        peer = stream.remote_peer
        try:
            with trio.fail_after(self._timeout):
                theirs = await _read_offer(stream)
                if theirs.subnet_id not in self._receivers:
                    raise InvalidInput(f"subnet {theirs.subnet_id!r} is not served here")
                mine = self._offer_for(theirs.subnet_id, peer)
                await stream.write(mine.encode())
                await stream.close()
        except (DMSError, trio.TooSlowError) as exc:
            self.stats.offers_refused += 1
            log.info("UDP subnet key offer from %s refused: %s", peer, exc or "timed out")
            await stream.reset()
            return
        self.stats.negotiations += 1
        key = (theirs.subnet_id, peer)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = _Path()
        now = time.monotonic()
        if now - path.offered_at < OFFER_SPACING:
            return  # probes at most once per OFFER_SPACING per peer (each offer probes 8 places)
        path.offered_at = now
        if self._nursery is not None:
            self._nursery.start_soon(self._learn, theirs.subnet_id, peer, path, theirs)

    async def _read_loop(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        while True:
            await trio.lowlevel.wait_readable(sock.fileno())
            batches: dict[_Inbound, list[bytes]] = {}
            for _ in range(READ_BATCH):
                try:
                    datagram, source = recvfrom(65_535)
                except BlockingIOError:
                    break
                except OSError as exc:  # an ICMP error queued on the socket: not ours to keep
                    if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
                        log.debug("UDP subnet socket: %s", exc)
                    continue
                self._datagram(datagram, source, batches)
            for inbound, packets in batches.items():
                receiver = self._receivers.get(inbound.subnet_id)
                if receiver is None:
                    continue
                self.stats.packets_received += len(packets)
                try:
                    receiver(inbound.peer, packets)
                except DMSError as exc:
                    log.warning("subnet %s receiver: %s", inbound.subnet_id, exc)

    def _datagram(
        self, datagram: bytes, source: Endpoint, batches: dict[_Inbound, list[bytes]]
    ) -> None:
        stats = self.stats
        stats.datagrams_received += 1
        session = session_of(datagram)
        inbound = self._by_session.get(session) if session is not None else None
        if inbound is None:
            stats.dropped_unknown_session += 1
            hinted = hinted_session(datagram)
            if hinted is not None:
                self._session_lost(hinted, (str(source[0]), int(source[1])))
            elif session is not None:
                self._hint(datagram, (str(source[0]), int(source[1])))
            return
        opened = inbound.opener.open(datagram)
        if opened is None:
            stats.dropped_unopened += 1
            return
        kind, payload = opened
        if kind == DATA:
            packets = unpack_records(payload)
            if packets is None:
                stats.dropped_malformed += 1
                return
            batch = batches.get(inbound)
            if batch is None:
                batches[inbound] = packets
            else:
                batch.extend(packets)
        elif kind == PROBE and len(payload) == CHALLENGE_SIZE:
            self._answer_probe(inbound, payload, (str(source[0]), int(source[1])))
        elif kind == PROBE_ACK and len(payload) == CHALLENGE_SIZE:
            self._probe_answered(inbound, payload)
        else:
            stats.dropped_malformed += 1

    def _hint(self, datagram: bytes, source: Endpoint) -> None:
        """Tell ``source`` we hold no key for the session it used (rate-limited)."""
        second = int(time.monotonic())
        if second != self._hint_second:
            self._hint_second, self._hints = second, 0
        if self._hints < HINTS_PER_SECOND:
            self._hints += 1
            self._sendto(unknown_session_hint(datagram), source)

    def _session_lost(self, session: bytes, source: Endpoint) -> None:
        """The peer at ``source`` says it lost ``session``: probe now, give up soon if silent."""
        now = time.monotonic()
        for (subnet_id, peer_id), path in self._paths.items():
            sealer = path.sealer
            if path.state == "up" and sealer is not None and sealer.session == session:
                if path.endpoint != source:
                    return
                if not path.unanswered_since:
                    path.unanswered_since = now - DEAD_AFTER + SUSPECT_AFTER
                    self._probe(path, source, now)
                    log.info("subnet %s: %s lost our UDP session; probing", subnet_id, peer_id)
                return

    def _answer_probe(self, inbound: _Inbound, challenge: bytes, source: Endpoint) -> None:
        path = self._paths.get((inbound.subnet_id, inbound.peer))
        if path is None or path.sealer is None:
            self.stats.probes_early += 1  # before we read the peer's offer: it probes again
            return
        self._sendto(path.sealer.seal(PROBE_ACK, challenge), source)

    def _probe_answered(self, inbound: _Inbound, challenge: bytes) -> None:
        path = self._paths.get((inbound.subnet_id, inbound.peer))
        endpoint = path.challenges.pop(challenge, None) if path is not None else None
        if path is None or endpoint is None:
            self.stats.answers_stale += 1  # (a second endpoint's answer, or a late one)
            return
        path.last_answer = time.monotonic()
        path.unanswered_since = 0.0
        if path.state != "up":
            path.state, path.endpoint = "up", endpoint
            path.challenges.clear()
            self.stats.paths_up += 1
            path.confirmed.set()
            log.info(
                "subnet %s: packets to %s go over UDP to %s:%d",
                inbound.subnet_id,
                inbound.peer,
                *endpoint,
            )

    async def aclose(self) -> None:
        """Stop using the fallback too (the UDP socket closes when :meth:`run` ends)."""
        await self.fallback.aclose()


async def _read_offer(stream: RawStream) -> Offer:
    data = b""
    while True:
        size = offer_size(data)
        if size is not None and len(data) >= size:
            break
        if len(data) > MAX_OFFER_BYTES:
            raise InvalidInput("subnet key offer too long")
        chunk = await stream.read(MAX_OFFER_BYTES)
        if not chunk:
            raise NetworkError("stream ended inside a subnet key offer")
        data += chunk
    if len(data) != size:
        raise InvalidInput("bytes after a subnet key offer")
    return decode_offer(data)


def _bind_udp(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        try:
            sock.bind((host, port))
        except OSError:
            if port == 0:
                raise
            sock.bind((host, 0))  # the preferred port is taken: any will do
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot bind the subnet UDP socket on {host}:{port}: {exc}") from None
    return sock


def _listen_ips(addresses: Sequence[str]) -> list[str]:
    """The usable IPv4 addresses in multiaddrs (``/ip4/X/...``), in order, without repeats."""
    ips: list[str] = []
    for address in addresses:
        parts = address.split("/")
        if len(parts) > 2 and parts[1] == "ip4":
            try:
                ip = ipaddress.IPv4Address(parts[2])
            except ValueError:
                continue
            if not ip.is_unspecified and str(ip) not in ips:
                ips.append(str(ip))
    return ips


def _candidates(offered: Sequence[Endpoint], peer_ips: Sequence[str]) -> tuple[Endpoint, ...]:
    """Where to probe: the offered endpoints, then the peer's libp2p IPs on the offered ports."""
    result: list[Endpoint] = list(dict.fromkeys(offered))
    for port in dict.fromkeys(p for _, p in offered):
        for ip in peer_ips:
            if (ip, port) not in result:
                result.append((ip, port))
    return tuple(result[:8])


__all__ = ["KEYS_PROTOCOL", "UdpTransport", "UdpTransportStats"]
