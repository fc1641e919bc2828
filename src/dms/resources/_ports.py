"""The port allocator: public ports for allocations from ``general.port_available_range_*``.

An ensemble maps an allocation's private port to a public one on the node (spec §7 ``ports:
[{public, private, allocation}]``; ``public: 0`` asks the node to pick). The node must never hand
the same public port to two allocations, must not hand out a port another program already
listens on, and must remember its leases across a restart, as Go's allocator does over
``[port_available_range_from, port_available_range_to)`` (half-open: the Go default upper bound
65536 is one past the last port).

How:

* leases live in the store (:class:`dms.db.PortRepo`, port = primary key), so a restarted DMS, or
  another process on the same file, sees them;
* choosing and recording happen in one store transaction (the store's lock serialises threads,
  ``BEGIN IMMEDIATE`` other processes), so two callers never pick the same port;
* a port is only handed out if a TCP listener can bind ``0.0.0.0:<port>`` right now
  (``SO_REUSEADDR``, as servers set it, so connections lingering in TIME_WAIT do not count);
* dynamic ports are picked next-fit (scan from just after the last port handed out), so a port
  just released is not reused at once while a client may still be talking to its old owner.

Every method blocks; from trio code call it through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Mapping, Sequence

from dms.db import Database, PortRepo
from dms.errors import InvalidInput
from dms.resources._errors import ResourceError

#: Go's default ``[port_available_range_from, port_available_range_to)``.
DEFAULT_PORT_RANGE = (16384, 65536)

PortProbe = Callable[[int], str | None]
"""Why ``port`` cannot be listened on right now, or ``None`` when it can."""


def port_problem(port: int) -> str | None:
    """Why a TCP listener cannot bind ``0.0.0.0:port`` now (``None``: it can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
            sock.listen(1)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def port_is_free(port: int) -> bool:
    """Whether a TCP listener could bind ``0.0.0.0:port`` right now."""
    return port_problem(port) is None


class PortAllocator:
    """Leases public ports in ``[start, end)`` to allocations; thread-safe, kept in ``store``."""

    def __init__(
        self,
        store: Database,
        start: int = DEFAULT_PORT_RANGE[0],
        end: int = DEFAULT_PORT_RANGE[1],
        *,
        probe: PortProbe = port_problem,
    ) -> None:
        """Hand out ports ``start <= port < end``; ``probe`` checks the host (tests replace it)."""
        if not 1 <= start < end <= 65536:
            raise InvalidInput(
                f"invalid port range {start}-{end}: need 1 <= from < to <= 65536 (to is excluded)"
            )
        self.start = start
        self.end = end
        self._db = store
        self._repo = PortRepo(store)
        self._probe = probe
        # Next-fit cursor. Only read and written inside a store transaction or read, which hold
        # the store's lock, so threads see and move it one at a time.
        self._next = start

    @property
    def _span(self) -> str:
        return f"{self.start}-{self.end - 1}"

    # -- handing out ---------------------------------------------------------------------------

    def allocate(self, allocation_id: str, count: int = 1) -> list[int]:
        """Lease ``count`` free ports to ``allocation_id`` (all or none); returns them."""
        return self._take(allocation_id, (), count)

    def reserve(self, allocation_id: str, ports: Sequence[int]) -> list[int]:
        """Lease exactly ``ports`` to ``allocation_id`` (all or none), or say why not."""
        return self._take(allocation_id, ports, 0)

    def assign(self, allocation_id: str, public: Sequence[int]) -> list[int]:
        """Lease an ensemble's public ports: each entry a port, or 0 for "pick one".

        Returns the leased ports in the order of ``public`` (0s replaced). Static ports are
        checked first so a dynamic pick never takes a port the same request names.
        """
        static = [p for p in public if p != 0]
        leased = self._take(allocation_id, static, len(public) - len(static))
        dynamic = iter(leased[len(static) :])
        return [p if p != 0 else next(dynamic) for p in public]

    def check_availability(self, static: Sequence[int] = (), dynamic: int = 0) -> str | None:
        """Why ``static`` ports plus ``dynamic`` picked ones cannot be leased now, or ``None``.

        Reserves nothing: this is the bid-time check (Go's ``CheckAvailability``).
        """
        try:
            self._check_request(static, dynamic)
            with self._db.read():
                self._plan("", static, dynamic, self._repo.taken(self.start, self.end))
        except (ResourceError, InvalidInput) as exc:
            return str(exc)
        return None

    # -- giving back and looking up ------------------------------------------------------------

    def release(self, allocation_id: str) -> list[int]:
        """Free every port of ``allocation_id``; returns them (empty if it held none)."""
        return self._repo.release(allocation_id)

    def ports_of(self, allocation_id: str) -> list[int]:
        """The ports ``allocation_id`` holds, ascending."""
        return self._repo.of(allocation_id)

    def leases(self) -> Mapping[str, list[int]]:
        """Every allocation's ports, by allocation id."""
        return self._repo.leases()

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _check_request(static: Sequence[int], count: int) -> None:
        if count < 0:
            raise InvalidInput(f"cannot allocate {count} ports")
        seen: set[int] = set()
        for port in static:
            if isinstance(port, bool) or not isinstance(port, int):
                raise InvalidInput(f"port {port!r} is not a port number")
            if port in seen:
                raise InvalidInput(f"port {port} is requested twice")
            seen.add(port)

    def _take(self, allocation_id: str, static: Sequence[int], count: int) -> list[int]:
        if not allocation_id:
            raise InvalidInput("cannot lease ports without an allocation id")
        self._check_request(static, count)
        with self._db.transaction():
            taken = self._repo.taken(self.start, self.end)
            ports = self._plan(allocation_id, static, count, taken)
            self._repo.add(allocation_id, ports)
            if count:
                last = ports[-1]
                self._next = last + 1 if last + 1 < self.end else self.start
        return ports

    def _plan(
        self, allocation_id: str, static: Sequence[int], count: int, taken: Mapping[int, str]
    ) -> list[int]:
        """The ports to lease: ``static`` checked, then ``count`` picked; raises if impossible."""
        who = f" for allocation {allocation_id}" if allocation_id else ""
        for port in static:
            if not self.start <= port < self.end:
                raise ResourceError(
                    f"port {port} is outside the available range {self._span} "
                    "(general.port_available_range_from/_to)"
                )
            holder = taken.get(port)
            if holder is not None:
                raise ResourceError(f"port {port} is already taken by allocation {holder}")
            problem = self._probe(port)
            if problem is not None:
                raise ResourceError(f"port {port} is in use on this host ({problem})")
        return [*static, *self._pick(count, taken, set(static), who)]

    def _pick(self, count: int, taken: Collection[int], skip: set[int], who: str) -> list[int]:
        if count == 0:
            return []
        size = self.end - self.start
        offset = self._next - self.start
        found: list[int] = []
        for step in range(size):
            port = self.start + (offset + step) % size
            if port in taken or port in skip or self._probe(port) is not None:
                continue
            found.append(port)
            if len(found) == count:
                return found
        raise ResourceError(
            f"port range {self._span} exhausted: {count} port{'s' if count != 1 else ''} "
            f"requested{who}, {len(found)} free"
        )
