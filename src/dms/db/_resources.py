"""Committed and allocated resources, per allocation (spec §8 two-phase commit, §9).

Phase 1 of a deployment *commits* resources for an allocation (with a TTL, so a crashed or
vanished orchestrator cannot leak this node's capacity: the reserve-then-commit pattern); phase 2
*allocates* them. Both live in one ``allocations`` table keyed by allocation id with a ``state``
column, which makes "an allocation is either committed or allocated, never both" a property of
the primary key instead of code keeping two tables in step; :meth:`ResourceRepo.allocate` is a
single ``UPDATE``.

Resources and ports are JSON text (``types.Resources`` and the port map); their meaning belongs to
``dms.resources``. Free resources (onboarded - committed - allocated) are computed there from
:meth:`ResourceRepo.committed` and :meth:`ResourceRepo.allocated`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from dms.db._database import Database
from dms.db._errors import ConflictError
from dms.db._json import Clock, check_json
from dms.errors import NotFound

_COLUMNS = (
    "allocation_id, ensemble_id, allocation_name, resources, ports, committed_at, expires_at, "
    "allocated_at"
)


@dataclass(frozen=True, slots=True)
class Commitment:
    """Resources reserved by ``/dms/deployment/commit``, released at ``expires_at`` (ns)."""

    allocation_id: str
    ensemble_id: str
    allocation_name: str
    resources: str
    ports: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Allocated:
    """Resources in use by a running allocation; ``created_at`` is when it was allocated."""

    allocation_id: str
    ensemble_id: str
    allocation_name: str
    resources: str
    ports: str
    created_at: int
    committed_at: int


def _commitment(row: sqlite3.Row) -> Commitment:
    return Commitment(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def _allocated(row: sqlite3.Row) -> Allocated:
    return Allocated(row[0], row[1], row[2], row[3], row[4], row[7], row[5])


class ResourceRepo:
    """Commit, allocate, release and expire per-allocation resources."""

    def __init__(self, db: Database, *, clock: Clock = time.time_ns) -> None:
        """Use ``db``; ``clock`` (Unix ns) decides what has expired when ``now`` is not given."""
        self._db = db
        self._clock = clock

    def commit(
        self,
        allocation_id: str,
        *,
        ensemble_id: str,
        allocation_name: str,
        resources: str,
        ports: str = "{}",
        expires_at: int,
        now: int | None = None,
    ) -> Commitment:
        """Reserve resources for ``allocation_id`` until ``expires_at``.

        Raises :class:`ConflictError` if the allocation is already allocated or holds a live
        commitment (a second commit would count its resources twice). An *expired* commitment
        is replaced: its TTL already released it.
        """
        check_json(resources, "resources")
        check_json(ports, "ports")
        now = self._clock() if now is None else now
        if expires_at <= now:
            raise ConflictError(f"commitment for allocation {allocation_id} would already expire")
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT state, expires_at FROM allocations WHERE allocation_id = ?",
                (allocation_id,),
            ).fetchone()
            if row is not None:
                if row[0] == "allocated":
                    raise ConflictError(f"allocation {allocation_id} is already allocated")
                if row[1] > now:
                    raise ConflictError(f"allocation {allocation_id} is already committed")
                conn.execute("DELETE FROM allocations WHERE allocation_id = ?", (allocation_id,))
            conn.execute(
                """INSERT INTO allocations (allocation_id, state, ensemble_id, allocation_name,
                       resources, ports, committed_at, expires_at)
                   VALUES (?, 'committed', ?, ?, ?, ?, ?, ?)""",
                (allocation_id, ensemble_id, allocation_name, resources, ports, now, expires_at),
            )
        return Commitment(
            allocation_id, ensemble_id, allocation_name, resources, ports, now, expires_at
        )

    def allocate(self, allocation_id: str, *, now: int | None = None) -> Allocated:
        """Turn the live commitment of ``allocation_id`` into an allocation, atomically.

        Raises :class:`~dms.errors.NotFound` if there is no commitment or it has expired, and
        :class:`ConflictError` if the allocation is already allocated.
        """
        now = self._clock() if now is None else now
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, state FROM allocations WHERE allocation_id = ?",
                (allocation_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no committed resources for allocation {allocation_id}")
            if row["state"] == "allocated":
                raise ConflictError(f"allocation {allocation_id} is already allocated")
            if row["expires_at"] <= now:
                raise NotFound(f"commitment for allocation {allocation_id} has expired")
            conn.execute(
                """UPDATE allocations SET state = 'allocated', expires_at = NULL, allocated_at = ?
                   WHERE allocation_id = ?""",
                (now, allocation_id),
            )
        return Allocated(
            row[0], row[1], row[2], row[3], row[4], created_at=now, committed_at=row[5]
        )

    def get_commitment(self, allocation_id: str) -> Commitment | None:
        """The commitment of ``allocation_id`` (live or expired), if it is in that state."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM allocations "
                "WHERE allocation_id = ? AND state = 'committed'",
                (allocation_id,),
            ).fetchone()
        return None if row is None else _commitment(row)

    def get_allocated(self, allocation_id: str) -> Allocated | None:
        """The allocation ``allocation_id``, if it is allocated."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM allocations "
                "WHERE allocation_id = ? AND state = 'allocated'",
                (allocation_id,),
            ).fetchone()
        return None if row is None else _allocated(row)

    def committed(self, *, now: int | None = None) -> list[Commitment]:
        """Live commitments (not yet expired at ``now``), oldest first."""
        now = self._clock() if now is None else now
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM allocations "
                "WHERE expires_at > ? ORDER BY committed_at, allocation_id",
                (now,),
            ).fetchall()
        return [_commitment(row) for row in rows]

    def allocated(self) -> list[Allocated]:
        """Every allocated allocation, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM allocations "
                "WHERE state = 'allocated' ORDER BY allocated_at, allocation_id"
            ).fetchall()
        return [_allocated(row) for row in rows]

    def expired(self, now: int | None = None) -> list[Commitment]:
        """Commitments whose TTL has passed at ``now`` (still stored until deleted)."""
        now = self._clock() if now is None else now
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM allocations "
                "WHERE expires_at <= ? ORDER BY expires_at, allocation_id",
                (now,),
            ).fetchall()
        return [_commitment(row) for row in rows]

    def delete_expired(self, now: int | None = None) -> list[Commitment]:
        """Delete the expired commitments and return them, in one transaction.

        Returning what was deleted lets the caller release exactly those ports and log them,
        with no window in which another caller could see or delete them too.
        """
        now = self._clock() if now is None else now
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"DELETE FROM allocations WHERE expires_at <= ? RETURNING {_COLUMNS}", (now,)
            ).fetchall()
        return sorted(
            (_commitment(row) for row in rows), key=lambda c: (c.expires_at, c.allocation_id)
        )

    def release(self, allocation_id: str) -> bool:
        """Forget ``allocation_id`` whatever its state (revert, stop); True if it existed."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM allocations WHERE allocation_id = ?", (allocation_id,)
            )
            return cursor.rowcount > 0

    def release_ensemble(self, ensemble_id: str, *, committed_only: bool = False) -> list[str]:
        """Forget every allocation of ``ensemble_id`` (``/dms/deployment/revert``).

        With ``committed_only`` allocations that already run are kept. Returns the released
        allocation ids, sorted.
        """
        condition = " AND state = 'committed'" if committed_only else ""
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"DELETE FROM allocations WHERE ensemble_id = ?{condition} RETURNING allocation_id",
                (ensemble_id,),
            ).fetchall()
        return sorted(row[0] for row in rows)
