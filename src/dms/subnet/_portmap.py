"""Port mappings: ``PROVIDER_IP:public`` reaches an allocation's ``private_ip:port``.

Go's ``SubnetMapPortRequest{SubnetID, Protocol, SourceIP, SourcePort, DestIP, DestPort}``
becomes :meth:`PortMapper.map`. Go installs iptables DNAT rules (chain ``NUNET``); we run a
userspace proxy in trio instead, for three reasons:

* **Nothing outlives the DMS.** A mapping is a listening socket owned by this process; if the
  DMS is killed, the kernel closes it. A DNAT rule stays behind after a crash and silently
  sends the port to an address that may later belong to someone else's allocation.
* **Loopback works.** ``curl localhost:PUBLIC`` on the provider reaches the service: DNAT in
  PREROUTING never sees locally generated traffic (Go adds OUTPUT rules and needs
  ``route_localnet`` tricks for 127.0.0.1), a listening socket simply accepts it.
* **No firewall ownership.** No rule ordering against Docker's or the host's own chains, no
  iptables-vs-nftables back-end question, and a port that is already taken fails loudly at
  ``map`` time (``bind``) instead of being shadowed by a rule.

The cost is a second TCP connection and a hop through this process: see
``bench/bench_portmap.py`` for throughput and latency against a direct connection. TCP bytes
are moved with ``splice(2)`` through a 1 MiB pipe per direction (zero-copy: they never enter
Python; a reused-buffer copy loop where ``os.splice`` is missing), and half-closes are passed
on (``shutdown(SHUT_WR)`` when one side sends EOF), so request/response protocols that signal
the end of a request by half-closing keep working. A reset or error on either side resets
the other (the client must not mistake a failure for a complete response). UDP is proxied per
client address: each client gets its own connected socket to the destination (so replies find
their way back), expired after ``udp_idle_timeout`` seconds without traffic, at most
``max_udp_flows`` at once.

Lifecycle: ``PortMapper(nursery)`` runs every mapping as a task of the caller's nursery (the
subnet's), so cancelling that nursery ends them all; :meth:`unmap` and :meth:`close` end them
explicitly and return only once the listening socket is closed and every proxied connection
of that mapping is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from dms.errors import DMSError

if TYPE_CHECKING:
    from trio_typing import TaskStatus
else:
    from trio import TaskStatus

log = logging.getLogger(__name__)

PROTOCOLS = ("TCP", "UDP")
BUFFER_SIZE = 1 << 20  # splice pipe size (pages are used only while data is in flight)
COPY_BUFFER_SIZE = 256 * 1024  # the copy fallback's buffer per direction and connection
CONNECT_TIMEOUT = 10.0
UDP_IDLE_TIMEOUT = 60.0
MAX_UDP_FLOWS = 1024
_MAX_DATAGRAM = 65535
_SPLICE = hasattr(os, "splice")  # Linux
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_YIELD_EVERY = 4 << 20


class PortMapError(DMSError):
    """A port mapping cannot be made or removed (bad input, port in use, not mapped)."""


@dataclass(frozen=True, order=True)
class PortMapping:
    """One mapping; ``source_port`` is the bound port (never 0)."""

    protocol: str
    source_ip: str
    source_port: int
    dest_ip: str
    dest_port: int


@dataclass
class _Flow:
    sock: trio.socket.SocketType
    last_active: float


@dataclass
class _Active:
    mapping: PortMapping
    sock: trio.socket.SocketType
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    flows: dict[Any, _Flow] = field(default_factory=dict)  # UDP: client address -> flow


def _protocol(protocol: str) -> str:
    proto = protocol.strip().upper()
    if proto not in PROTOCOLS:
        raise PortMapError(f"unknown port-mapping protocol {protocol!r} (want TCP or UDP)")
    return proto


def _ip(value: str, what: str, *, empty_is_any: bool = False) -> str:
    text = value.strip()
    if not text and empty_is_any:
        return "0.0.0.0"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PortMapError(f"invalid {what} address {value!r}") from None
    if address.version != 4:
        raise PortMapError(f"{what} address {value!r} is not IPv4 (subnets are IPv4)")
    return str(address)


def _port(value: int, what: str, *, zero_ok: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65536:
        raise PortMapError(f"invalid {what} port {value!r}")
    if value == 0 and not zero_ok:
        raise PortMapError(f"invalid {what} port 0")
    return value


def _key(protocol: str, source_ip: str, source_port: int) -> tuple[str, str, int]:
    return (protocol, source_ip, source_port)


class PortMapper:
    """Userspace TCP/UDP port forwarding, one listening socket per mapping.

    Runs its mappings in the caller's ``nursery`` (see the module docstring). Not a context
    manager on purpose: the subnet that owns it decides when it ends (:meth:`close`).
    ``zero_copy=False`` forces the copy loop (for measurements and tests of the fallback).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        buffer_size: int = BUFFER_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        udp_idle_timeout: float = UDP_IDLE_TIMEOUT,
        max_udp_flows: int = MAX_UDP_FLOWS,
        zero_copy: bool = True,
    ) -> None:
        self._nursery = nursery
        self._zero_copy = zero_copy and _SPLICE
        self._buffer_size = buffer_size
        self._connect_timeout = connect_timeout
        self._udp_idle_timeout = udp_idle_timeout
        self._max_udp_flows = max_udp_flows
        self._active: dict[tuple[str, str, int], _Active] = {}
        self._closed = False

    @property
    def mappings(self) -> list[PortMapping]:
        """The live mappings, sorted."""
        return sorted(a.mapping for a in self._active.values())

    @property
    def udp_flows(self) -> int:
        """UDP clients currently proxied, across all mappings (each holds one socket)."""
        return sum(len(a.flows) for a in self._active.values())

    async def map(
        self, protocol: str, source_ip: str, source_port: int, dest_ip: str, dest_port: int
    ) -> int:
        """Listen on ``source_ip:source_port`` and forward to ``dest_ip:dest_port``.

        ``source_port`` 0 picks a free port; ``source_ip`` "" or "0.0.0.0" listens on every
        address of the provider. Returns the bound port. Raises :class:`PortMapError`.
        """
        if self._closed:
            raise PortMapError("port mapper is closed")
        proto = _protocol(protocol)
        src_ip = _ip(source_ip, "source", empty_is_any=True)
        src_port = _port(source_port, "source", zero_ok=True)
        dst_ip = _ip(dest_ip, "destination")
        dst_port = _port(dest_port, "destination", zero_ok=False)
        if src_port and _key(proto, src_ip, src_port) in self._active:
            raise PortMapError(f"{proto} port {src_ip}:{src_port} is already mapped")
        sock = await self._bind(proto, src_ip, src_port)
        bound = int(sock.getsockname()[1])
        mapping = PortMapping(proto, src_ip, bound, dst_ip, dst_port)
        active = _Active(mapping, sock)
        self._active[_key(proto, src_ip, bound)] = active
        serve = self._serve_tcp if proto == "TCP" else self._serve_udp
        try:
            await self._nursery.start(serve, active)
        except BaseException:
            self._active.pop(_key(proto, src_ip, bound), None)
            sock.close()
            raise
        log.info("port mapping %s %s:%d -> %s:%d", proto, src_ip, bound, dst_ip, dst_port)
        return bound

    async def unmap(self, protocol: str, source_ip: str, source_port: int) -> None:
        """Remove a mapping: the port stops listening and its connections are closed."""
        proto = _protocol(protocol)
        src_ip = _ip(source_ip, "source", empty_is_any=True)
        src_port = _port(source_port, "source", zero_ok=False)
        active = self._active.get(_key(proto, src_ip, src_port))
        if active is None:
            raise PortMapError(f"{proto} port {src_ip}:{src_port} is not mapped")
        await self._stop(active)

    async def unmap_destination(self, dest_ip: str) -> list[PortMapping]:
        """Remove every mapping to ``dest_ip`` (an allocation going away); returns them."""
        dst_ip = _ip(dest_ip, "destination")
        gone = [a for a in self._active.values() if a.mapping.dest_ip == dst_ip]
        await self._stop_all(gone)
        return sorted(a.mapping for a in gone)

    async def close(self) -> None:
        """Remove every mapping; later :meth:`map` calls fail. Idempotent."""
        self._closed = True
        await self._stop_all(list(self._active.values()))

    async def _stop_all(self, actives: Iterable[_Active]) -> None:
        for active in actives:
            await self._stop(active)

    async def _stop(self, active: _Active) -> None:
        m = active.mapping
        self._active.pop(_key(m.protocol, m.source_ip, m.source_port), None)
        active.scope.cancel()
        active.sock.close()  # wakes the accept/recv at once; the listener is gone from here on
        await active.done.wait()
        log.info("port mapping %s %s:%d removed", m.protocol, m.source_ip, m.source_port)

    def _finished(self, active: _Active) -> None:
        """Every way a mapping ends (unmap, close, the owner's nursery cancelled) ends here."""
        m = active.mapping
        key = _key(m.protocol, m.source_ip, m.source_port)
        if self._active.get(key) is active:
            del self._active[key]
        active.sock.close()
        active.done.set()

    async def _bind(self, proto: str, ip: str, port: int) -> trio.socket.SocketType:
        kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
        sock = trio.socket.socket(socket.AF_INET, kind)
        try:
            if proto == "TCP":
                # Lets a restarted DMS take its ports back while old connections sit in
                # TIME_WAIT; on Linux it does not allow two listeners on one port.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await sock.bind((ip, port))
            if proto == "TCP":
                sock.listen(256)
        except OSError as exc:
            sock.close()
            where = f"{proto} port {ip}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise PortMapError(f"{where} is already in use") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise PortMapError(f"{where}: address {ip} is not on this host") from None
            if exc.errno == errno.EACCES:
                raise PortMapError(f"{where}: permission denied (privileged port)") from None
            raise PortMapError(f"{where}: {exc.strerror or exc}") from None
        return sock

    # -- TCP ----------------------------------------------------------------------------------

    async def _serve_tcp(self, active: _Active, task_status: TaskStatus[None]) -> None:
        try:
            with active.scope:
                listener = trio.SocketListener(active.sock)
                async with trio.open_nursery() as conns:
                    task_status.started()
                    while True:
                        try:
                            client = await listener.accept()
                        except trio.ClosedResourceError:
                            return
                        except OSError as exc:  # EMFILE, ENOBUFS...: back off, do not spin
                            log.warning("port mapping %s: accept failed: %s", active.mapping, exc)
                            await trio.sleep(0.1)
                            continue
                        conns.start_soon(self._tcp_connection, client, active.mapping)
        finally:
            self._finished(active)

    async def _tcp_connection(self, client: trio.SocketStream, mapping: PortMapping) -> None:
        async with client:
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # A plain connect: the destination is an IP literal, so open_tcp_stream's
                # resolution and happy eyeballs would only add latency to every connection.
                with trio.fail_after(self._connect_timeout):
                    await sock.connect((mapping.dest_ip, mapping.dest_port))
            except (OSError, trio.TooSlowError) as exc:
                sock.close()
                log.info("port mapping %s: cannot reach destination: %s", mapping, exc)
                _reset(client)
                return
            upstream = trio.SocketStream(sock)  # sets TCP_NODELAY, as the client side has
            async with upstream, trio.open_nursery() as pipes:
                pipes.start_soon(self._pipe, client, upstream, pipes.cancel_scope)
                pipes.start_soon(self._pipe, upstream, client, pipes.cancel_scope)

    async def _pipe(
        self, src: trio.SocketStream, dst: trio.SocketStream, both: trio.CancelScope
    ) -> None:
        """Move ``src`` -> ``dst`` until EOF, then half-close ``dst``; an error ends both ways."""
        try:
            if self._zero_copy:
                await self._splice(src.socket, dst.socket)
            else:
                await self._copy(src.socket, dst.socket)
            dst.socket.shutdown(socket.SHUT_WR)
        except OSError:  # reset or closed: the connection is over in both directions
            _reset(src)
            _reset(dst)
            both.cancel()

    async def _splice(self, src: trio.socket.SocketType, dst: trio.socket.SocketType) -> None:
        """Zero-copy: socket -> pipe -> socket inside the kernel (``splice(2)``)."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # fewer, larger moves; the default pipe is 64 KiB
                fcntl.fcntl(w, _F_SETPIPE_SZ, self._buffer_size)
            src_fd, dst_fd = src.fileno(), dst.fileno()
            unyielded = 0  # bytes moved since this task last let others run
            while True:
                try:
                    n = os.splice(src_fd, w, self._buffer_size, flags=_SPLICE_FLAGS)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(src_fd)
                    unyielded = 0
                    continue
                if not n:
                    return
                unyielded += n
                while n:
                    try:
                        n -= os.splice(r, dst_fd, n, flags=_SPLICE_FLAGS)
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(dst_fd)
                        unyielded = 0
                if unyielded >= _YIELD_EVERY:  # a busy stream must let the others run too
                    await trio.lowlevel.checkpoint()
                    unyielded = 0
        finally:
            os.close(r)
            os.close(w)

    async def _copy(self, src: trio.socket.SocketType, dst: trio.socket.SocketType) -> None:
        """Portable fallback: one reused buffer, no allocation per chunk."""
        buf = bytearray(min(self._buffer_size, COPY_BUFFER_SIZE))
        view = memoryview(buf)
        while n := await src.recv_into(buf):
            sent = 0
            while sent < n:
                sent += await dst.send(view[sent:n])

    # -- UDP ----------------------------------------------------------------------------------

    async def _serve_udp(self, active: _Active, task_status: TaskStatus[None]) -> None:
        flows = active.flows
        try:
            with active.scope:
                async with trio.open_nursery() as nursery:
                    task_status.started()
                    await self._udp_inbound(active, flows, nursery)
        finally:
            for flow in flows.values():
                flow.sock.close()
            self._finished(active)

    async def _udp_inbound(
        self, active: _Active, flows: dict[Any, _Flow], nursery: trio.Nursery
    ) -> None:
        mapping, sock = active.mapping, active.sock
        dest = (mapping.dest_ip, mapping.dest_port)
        while True:
            try:
                data, client = await sock.recvfrom(_MAX_DATAGRAM)
            except trio.ClosedResourceError:
                return
            except OSError:  # an ICMP error from an earlier reply to some client
                continue
            flow = flows.get(client)
            if flow is None:
                if len(flows) >= self._max_udp_flows:
                    log.debug("port mapping %s: %d UDP flows, dropping", mapping, len(flows))
                    continue
                out = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    await out.connect(dest)
                except OSError as exc:
                    out.close()
                    log.info("port mapping %s: cannot reach destination: %s", mapping, exc)
                    continue
                flow = flows[client] = _Flow(out, trio.current_time())
                nursery.start_soon(self._udp_outbound, sock, client, flow, flows)
            flow.last_active = trio.current_time()
            # ECONNREFUSED from an earlier ICMP: this datagram is lost, as UDP allows.
            with contextlib.suppress(OSError):
                await flow.sock.send(data)

    async def _udp_outbound(
        self, sock: trio.socket.SocketType, client: Any, flow: _Flow, flows: dict[Any, _Flow]
    ) -> None:
        """Replies from the destination back to one client, until the flow is idle."""
        try:
            while True:
                deadline = flow.last_active + self._udp_idle_timeout
                if trio.current_time() >= deadline:
                    return
                with trio.move_on_at(deadline):
                    try:
                        data = await flow.sock.recv(_MAX_DATAGRAM)
                    except OSError:
                        continue
                    flow.last_active = trio.current_time()
                    with contextlib.suppress(OSError):
                        await sock.sendto(data, client)
        finally:
            if flows.get(client) is flow:
                del flows[client]
            flow.sock.close()


def _reset(stream: trio.SocketStream) -> None:
    """Make the peer see a reset (not a clean EOF): the other side of the proxy failed."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
