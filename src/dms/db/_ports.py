"""Public ports handed out to allocations (spec §8 commit, §9 port allocator).

Why a table: an allocation's public ports (static ``ports: {public: 50001}`` or dynamic ones the
node picks) must not be handed out twice, not even after a restart, while the allocation lives.
The port is the primary key, so a second hand-out of the same port fails at the database level
whichever process or thread tries it. Which port to pick, and whether the host really has it
free, is :mod:`dms.resources`'s job; this repository only keeps the leases.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from dms.db._database import Database
from dms.db._errors import ConflictError
from dms.db._json import Clock


@dataclass(frozen=True, slots=True)
class PortLease:
    """``port`` belongs to ``allocation_id`` since ``created_at`` (Unix ns)."""

    port: int
    allocation_id: str
    created_at: int


class PortRepo:
    """Record, look up and release port leases."""

    def __init__(self, db: Database, *, clock: Clock = time.time_ns) -> None:
        """Use ``db``; ``clock`` stamps ``created_at`` (injectable for tests)."""
        self._db = db
        self._clock = clock

    def add(self, allocation_id: str, ports: Iterable[int]) -> list[PortLease]:
        """Lease ``ports`` to ``allocation_id``, all or none.

        Raises :class:`ConflictError` naming the first port another (or the same) allocation
        already holds; nothing is recorded then.
        """
        now = self._clock()
        wanted = list(ports)
        with self._db.transaction() as conn:
            for port in wanted:
                row = conn.execute(
                    "SELECT allocation_id FROM ports WHERE port = ?", (port,)
                ).fetchone()
                if row is not None:
                    raise ConflictError(f"port {port} is already taken by allocation {row[0]}")
                conn.execute(
                    "INSERT INTO ports (port, allocation_id, created_at) VALUES (?, ?, ?)",
                    (port, allocation_id, now),
                )
        return [PortLease(port, allocation_id, now) for port in wanted]

    def taken(self, low: int, high: int) -> dict[int, str]:
        """Leased ports in ``[low, high)`` and who holds them."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT port, allocation_id FROM ports WHERE port >= ? AND port < ?", (low, high)
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def holder(self, port: int) -> str | None:
        """The allocation holding ``port``, if any."""
        with self._db.read() as conn:
            row = conn.execute("SELECT allocation_id FROM ports WHERE port = ?", (port,)).fetchone()
        return None if row is None else str(row[0])

    def of(self, allocation_id: str) -> list[int]:
        """The ports ``allocation_id`` holds, ascending."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT port FROM ports WHERE allocation_id = ? ORDER BY port", (allocation_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def leases(self) -> dict[str, list[int]]:
        """Every allocation's ports (ascending), by allocation id."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT allocation_id, port FROM ports ORDER BY allocation_id, port"
            ).fetchall()
        out: dict[str, list[int]] = {}
        for allocation_id, port in rows:
            out.setdefault(allocation_id, []).append(port)
        return out

    def release(self, *allocation_ids: str) -> list[int]:
        """Free every port of ``allocation_ids``; returns the freed ports, ascending."""
        if not allocation_ids:
            return []
        marks = ", ".join("?" * len(allocation_ids))
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"DELETE FROM ports WHERE allocation_id IN ({marks}) RETURNING port",
                allocation_ids,
            ).fetchall()
        return sorted(row[0] for row in rows)
