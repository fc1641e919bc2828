"""The subnet's resolver: ``<name>.internal`` from the ensemble's records, the rest upstream.

Every allocation of an ensemble resolves its peers by DNS name (``web.internal``) to their
private subnet addresses. Go answers these inside its TUN read loop; we run a small real DNS
server (built on ``dnslib``'s wire format) so that it can be bound to the subnet's gateway
address, tested with any DNS client, and reused by the packet path through :meth:`handle`.

Answers:

* ``A``/``ANY`` for a known ``*.internal`` name: the record, TTL ``ttl`` (5 s by default:
  records follow allocations that move, so clients must not keep an old address for long).
* Any other type for a known name (``AAAA``, ``MX``...): NOERROR with no answers (the subnet
  is IPv4 only; NXDOMAIN would wrongly tell a resolver that the name does not exist at all).
* An unknown ``*.internal`` name: NXDOMAIN, authoritative, with an SOA whose minimum is
  ``ttl`` so the negative answer is cached no longer than a positive one (an allocation that
  has not got its record yet becomes resolvable a few seconds after it has).
* Everything else is forwarded verbatim (same ID, same EDNS options) to the upstream
  resolvers, tried in order within one overall ``timeout``; SERVFAIL if none answers.
  TCP queries are forwarded over TCP, UDP ones over UDP (a truncated UDP answer is passed on
  so that the client retries over TCP, as it would with any resolver).

Malformed packets, responses and non-QUERY opcodes never reach the resolver logic: garbage is
dropped silently, a well-formed non-query gets NOTIMP. Forwarded queries run in tasks (they
wait on the network), bounded by ``max_inflight``; local answers are made inline.

Default upstreams are the ``nameserver`` lines of the host's ``/etc/resolv.conf``. Loopback
stubs (systemd-resolved's 127.0.0.53, Docker's 127.0.0.11) are *kept*: the forwarding
sockets are opened by this process in its own network namespace, whatever address the server
is bound to, so a stub that the host can reach is reachable from the forwarder too; the bind
address only decides where *clients* reach the server. The only upstream dropped is the
server's own address (it would forward to itself). A caller that opens this server from inside
another namespace (where the host's loopback stubs do not exist) must pass ``upstream=``.

Bind it only to an address that the subnet's members alone can reach (the gateway): it
forwards for anyone who can reach it, so on a public address it would be an open resolver.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord  # type: ignore[import-untyped]

from dms.errors import DMSError, InvalidInput

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

DEFAULT_TTL = 5
DEFAULT_TIMEOUT = 3.0
MAX_INFLIGHT = 256
MAX_TCP_CONNECTIONS = 64
TCP_IDLE_TIMEOUT = 10.0
_MAX_MESSAGE = 65535
_QUERY = 0
_CLASS_IN = 1
_CLASS_ANY = 255


class SubnetDNSError(DMSError):
    """The subnet resolver cannot start (address not on this host, port taken, ...)."""


class InvalidDNSRecord(InvalidInput):
    """A DNS record given to the subnet resolver has a bad name or address."""


def normalize_name(name: str, domain: str = "internal") -> str:
    """Return the lower-case FQDN (trailing dot) of ``name`` in ``domain``.

    ``web``, ``web.internal`` and ``WEB.internal.`` all give ``web.internal.``: Go's records
    carry either form, and DNS names compare case-insensitively.
    """
    domain = domain.strip(".").lower()
    text = name.strip().rstrip(".").lower()
    if text != domain and not text.endswith("." + domain):
        text = f"{text}.{domain}"
    labels = text.split(".")
    if len(text) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise InvalidDNSRecord(f"invalid DNS name {name!r}")
    if any(ch.isspace() or ch in '\\"()' for ch in text):
        raise InvalidDNSRecord(f"invalid DNS name {name!r}")
    return text + "."


def parse_upstream(spec: str) -> tuple[str, int]:
    """``"1.2.3.4"``, ``"1.2.3.4:5353"``, ``"::1"`` or ``"[::1]:5353"`` -> ``(ip, port)``."""
    text = spec.strip()
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInput(f"invalid DNS upstream {spec!r}")
        if rest:
            port = _port(rest[1:], spec)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, spec)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise InvalidInput(f"invalid DNS upstream {spec!r} (want an IP address)") from None
    return host, port


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidInput(f"invalid DNS upstream port in {spec!r}")
    return int(text)


def nameservers_from_resolv_conf(text: str) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf text, in order, invalid ones skipped."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                ipaddress.ip_address(fields[1].split("%", 1)[0])
            except ValueError:
                continue
            found.append(fields[1])
    return found


def host_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The host's resolvers (see the module docstring for why loopback stubs are kept)."""
    try:
        return nameservers_from_resolv_conf(resolv_conf.read_text())
    except OSError as exc:
        log.warning("subnet DNS: cannot read %s (%s); only .internal resolves", resolv_conf, exc)
        return []


class SubnetDNS:
    """A DNS server for one subnet: ``*.<domain>`` from :attr:`records`, the rest forwarded.

    Start it with ``await nursery.start(dns.run)``; it serves UDP and TCP on the same port
    until cancelled (``port=0`` picks a free one, see :attr:`address`). Records may change at
    any time, before or while it runs.
    """

    def __init__(
        self,
        bind_ip: str,
        *,
        port: int = 53,
        upstream: Sequence[str] | None = None,
        domain: str = "internal",
        ttl: int = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        try:
            self._family = (
                socket.AF_INET6 if ipaddress.ip_address(bind_ip).version == 6 else socket.AF_INET
            )
        except ValueError:
            raise InvalidInput(f"invalid DNS bind address {bind_ip!r}") from None
        if not 0 <= port < 65536:
            raise InvalidInput(f"invalid DNS port {port}")
        self._bind = (bind_ip, port)
        self._address: tuple[str, int] | None = None
        self._domain = domain.strip(".").lower()
        self._ttl = ttl
        self._timeout = timeout
        self._max_inflight = max_inflight
        self._inflight = 0
        self._tcp_connections = 0
        specs = host_upstreams() if upstream is None else list(upstream)
        self._upstreams = [parse_upstream(s) for s in specs]
        self._records: dict[str, str] = {}
        self._serial = 1

    # -- records ------------------------------------------------------------------------------

    @property
    def records(self) -> dict[str, str]:
        """A copy of the records: ``{"web.internal": "10.1.2.3"}`` (no trailing dot)."""
        return {name[:-1]: ip for name, ip in self._records.items()}

    @property
    def domain(self) -> str:
        return self._domain

    @property
    def upstreams(self) -> list[tuple[str, int]]:
        return list(self._upstreams)

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(ip, port)``; only valid once :meth:`run` has started."""
        if self._address is None:
            raise SubnetDNSError("subnet DNS server is not running")
        return self._address

    def add_records(self, records: Mapping[str, str]) -> None:
        """Add or replace records (Go's ``SubnetDNSAddRecordsRequest.Records``: name -> IPv4).

        All-or-nothing: one bad name or address rejects the whole batch.
        """
        staged: dict[str, str] = {}
        for name, ip in records.items():
            try:
                address = ipaddress.IPv4Address(ip.strip())
            except (ValueError, AttributeError):
                raise InvalidDNSRecord(f"invalid IPv4 address {ip!r} for {name!r}") from None
            staged[normalize_name(name, self._domain)] = str(address)
        self._records.update(staged)
        self._serial += 1

    def remove_records(self, names: Iterable[str]) -> None:
        """Remove records by name (either spelling); unknown names are ignored."""
        for name in names:
            try:
                self._records.pop(normalize_name(name, self._domain), None)
            except InvalidDNSRecord:
                continue
        self._serial += 1

    # -- answering ----------------------------------------------------------------------------

    async def handle(self, data: bytes, *, tcp: bool = False) -> bytes | None:
        """Answer one DNS message (no length prefix); ``None`` means drop it.

        The packet path may call this for queries it intercepts, as Go does on its TUN.
        """
        request = _parse_query(data)
        if request is None:
            return None
        reply = self._answer_local(request)
        if reply is not None:
            return reply
        return await self._forward(data, request, tcp=tcp)

    def _in_domain(self, qname: str) -> bool:
        return qname == self._domain + "." or qname.endswith("." + self._domain + ".")

    def _answer_local(self, request: DNSRecord) -> bytes | None:
        """The reply bytes if we are authoritative for the query, else ``None`` (forward)."""
        if request.header.opcode != _QUERY or len(request.questions) != 1:
            reply = request.reply()
            reply.header.aa = 0
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != _QUERY else RCODE.FORMERR
            return bytes(reply.pack())
        question = request.q
        qname = str(question.qname).lower()
        if not self._in_domain(qname):
            return None
        reply = request.reply()  # authoritative, same ID and question (original case)
        ip = self._records.get(qname)
        if question.qclass not in (_CLASS_IN, _CLASS_ANY):
            reply.header.rcode = RCODE.REFUSED
        elif ip is not None and question.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(ip), ttl=self._ttl))
        else:
            if ip is None and qname != self._domain + ".":
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa())
        return bytes(reply.pack())

    def _soa(self) -> RR:
        zone = self._domain + "."
        times = (self._serial, 3600, 600, 86400, self._ttl)
        return RR(
            zone, QTYPE.SOA, rdata=SOA("ns." + zone, "hostmaster." + zone, times), ttl=self._ttl
        )

    def _servfail(self, request: DNSRecord) -> bytes:
        reply = request.reply()
        reply.header.aa = 0
        reply.header.rcode = RCODE.SERVFAIL
        return bytes(reply.pack())

    async def _forward(self, data: bytes, request: DNSRecord, *, tcp: bool) -> bytes:
        upstreams = [u for u in self._upstreams if u != self._address]
        if upstreams:
            per_try = self._timeout / len(upstreams)
            with trio.move_on_after(self._timeout):
                for host, port in upstreams:
                    with trio.move_on_after(per_try):
                        try:
                            if tcp:
                                answer = await _ask_tcp(host, port, data)
                            else:
                                answer = await _ask_udp(host, port, data)
                        except OSError as exc:
                            log.debug("subnet DNS: upstream %s:%d failed: %s", host, port, exc)
                            continue
                        if answer is not None:
                            return answer
        log.debug("subnet DNS: no upstream answered for %s", request.q.qname)
        return self._servfail(request)

    # -- serving ------------------------------------------------------------------------------

    async def run(
        self, *, task_status: TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve UDP and TCP until cancelled; ``task_status.started`` gets the bound address."""
        udp, tcp = await self._bind_sockets()
        with udp, tcp:
            self._address = udp.getsockname()[:2]
            log.info("subnet DNS on %s:%d (%d upstreams)", *self._address, len(self._upstreams))
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._serve_udp, udp, nursery)
                    nursery.start_soon(self._serve_tcp, tcp, nursery)
                    task_status.started(self._address)
            finally:
                self._address = None

    async def _bind_sockets(self) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
        host, port = self._bind
        attempts = 20 if port == 0 else 1
        for attempt in range(attempts):
            udp = trio.socket.socket(self._family, socket.SOCK_DGRAM)
            tcp = trio.socket.socket(self._family, socket.SOCK_STREAM)
            try:
                await udp.bind((host, port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                await tcp.bind((host, udp.getsockname()[1]))
                tcp.listen(128)
            except OSError as exc:
                udp.close()
                tcp.close()
                if exc.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                    continue  # port 0: the UDP port we got is taken for TCP; try another
                raise SubnetDNSError(
                    f"cannot serve DNS on {host}:{port}: {exc.strerror or exc}"
                ) from None
            return udp, tcp
        raise AssertionError("unreachable")

    async def _serve_udp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                data, client = await sock.recvfrom(_MAX_MESSAGE)
            except OSError:  # e.g. ICMP errors from earlier replies surfacing here
                continue
            request = _parse_query(data)
            if request is None:
                continue
            reply = self._answer_local(request)
            if reply is not None:
                await _send_udp(sock, reply, client)
            elif self._inflight < self._max_inflight:
                self._inflight += 1
                nursery.start_soon(self._forward_udp, sock, data, request, client)
            else:
                log.debug("subnet DNS: %d forwards in flight, dropping a query", self._inflight)

    async def _forward_udp(
        self, sock: trio.socket.SocketType, data: bytes, request: DNSRecord, client: Any
    ) -> None:
        try:
            await _send_udp(sock, await self._forward(data, request, tcp=False), client)
        finally:
            self._inflight -= 1

    async def _serve_tcp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        listener = trio.SocketListener(sock)
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                log.warning("subnet DNS: accept failed: %s", exc)
                await trio.sleep(0.1)  # e.g. EMFILE: do not spin
                continue
            if self._tcp_connections >= MAX_TCP_CONNECTIONS:
                await stream.aclose()
                continue
            self._tcp_connections += 1
            nursery.start_soon(self._tcp_connection, stream)

    async def _tcp_connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                while True:
                    data = b""
                    with trio.move_on_after(TCP_IDLE_TIMEOUT):
                        data = await _read_tcp_message(stream)
                    if not data:
                        return
                    reply = await self.handle(data, tcp=True)
                    if reply is None:
                        return  # garbage: hang up, framing can no longer be trusted
                    await stream.send_all(len(reply).to_bytes(2, "big") + reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        finally:
            self._tcp_connections -= 1


def _parse_query(data: bytes) -> DNSRecord | None:
    """Parse a query; ``None`` for anything that is not a well-formed DNS query."""
    if len(data) < 12:
        return None
    try:
        record = DNSRecord.parse(data)
    except Exception:  # dnslib raises DNSError, but also struct/index/unicode errors on garbage
        return None
    if record.header.qr:  # a response: never answer one (no reflection loops)
        return None
    return record


async def _send_udp(sock: trio.socket.SocketType, data: bytes, client: Any) -> None:
    try:
        await sock.sendto(data, client)
    except OSError as exc:
        log.debug("subnet DNS: reply to %s failed: %s", client, exc)


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _ask_udp(host: str, port: int, data: bytes) -> bytes | None:
    """Send ``data`` to one upstream from a fresh socket (random port); its answer or None."""
    with trio.socket.socket(_family_of(host), socket.SOCK_DGRAM) as sock:
        await sock.connect((host, port))
        await sock.send(data)
        while True:
            answer = await sock.recv(_MAX_MESSAGE)
            # Connected socket: only the upstream's packets arrive. Check ID and the QR bit.
            if len(answer) >= 12 and answer[:2] == data[:2] and answer[2] & 0x80:
                return answer


async def _ask_tcp(host: str, port: int, data: bytes) -> bytes | None:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(len(data).to_bytes(2, "big") + data)
        answer = await _read_tcp_message(stream)
    if len(answer) >= 12 and answer[:2] == data[:2]:
        return answer
    return None


async def _read_tcp_message(stream: trio.SocketStream) -> bytes:
    """One length-prefixed DNS message, or ``b""`` at EOF."""
    header = await _read_exactly(stream, 2)
    if len(header) < 2:
        return b""
    return await _read_exactly(stream, int.from_bytes(header, "big"))


async def _read_exactly(stream: trio.SocketStream, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = await stream.receive_some(size - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return bytes(buf)
