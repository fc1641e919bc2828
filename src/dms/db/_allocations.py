"""What this provider runs: one record per allocation, written before each step takes effect.

The resource books (:mod:`dms.db._resources`) say what is *reserved*; these records say what
*runs*, for whom (the orchestrator's handle) and how (the allocation's config), so that a
restarted DMS can tell its own containers from strays (``reclaim_leftovers``'s ``claimed``) and,
later, re-adopt them. A record is written before the allocation is created, updated before it
starts and when it ends, and deleted when it is stopped and its resources released.

Handle and config are JSON text; their shapes belong to ``dms.jobs``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dms.db._database import Database
from dms.db._errors import ConflictError
from dms.db._json import Clock, check_json
from dms.errors import InvalidInput, NotFound

#: Allocation statuses (Go's ``AllocationStatus`` strings).
STATUSES = ("pending", "running", "stopped", "failed", "completed", "terminated")
#: Statuses whose execution may still exist in an executor (a restart must not remove it).
LIVE_STATUSES = ("pending", "running")

_COLUMNS = (
    "allocation_id, ensemble_id, allocation_name, executor, orchestrator, config, status, "
    "exit_code, error, created_at, started_at, finished_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class AllocationRecord:
    """One allocation on this node; times are Unix ns (``None``: not yet)."""

    allocation_id: str
    ensemble_id: str
    allocation_name: str
    executor: str
    orchestrator: str
    config: str
    status: str = "pending"
    exit_code: int | None = None
    error: str = ""
    created_at: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    updated_at: int = 0

    @property
    def live(self) -> bool:
        """Whether its execution may still exist (pending or running)."""
        return self.status in LIVE_STATUSES


def _record(row: sqlite3.Row) -> AllocationRecord:
    return AllocationRecord(*row)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidInput(f"unknown allocation status {status!r} (known: {', '.join(STATUSES)})")


class AllocationRepo:
    """Create, update, look up and delete allocation records."""

    def __init__(self, db: Database, *, clock: Clock = time.time_ns) -> None:
        self._db = db
        self._clock = clock

    def create(self, record: AllocationRecord) -> AllocationRecord:
        """Store a new record; :class:`ConflictError` if the allocation ID is taken."""
        check_json(record.orchestrator, "orchestrator handle")
        check_json(record.config, "allocation config")
        _check_status(record.status)
        now = self._clock()
        with self._db.transaction() as conn:
            try:
                conn.execute(
                    f"INSERT INTO allocation_records ({_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.allocation_id,
                        record.ensemble_id,
                        record.allocation_name,
                        record.executor,
                        record.orchestrator,
                        record.config,
                        record.status,
                        record.exit_code,
                        record.error,
                        now,
                        record.started_at,
                        record.finished_at,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"allocation {record.allocation_id} already exists on this node"
                ) from None
        return replace(record, created_at=now, updated_at=now)

    def set_status(
        self,
        allocation_id: str,
        status: str,
        *,
        exit_code: int | None = None,
        error: str = "",
        started: bool = False,
        finished: bool = False,
    ) -> AllocationRecord:
        """Record a new status (with exit info); ``started``/``finished`` stamp the times."""
        _check_status(status)
        now = self._clock()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                """UPDATE allocation_records SET status = ?, exit_code = ?, error = ?,
                       started_at = CASE WHEN ? THEN ? ELSE started_at END,
                       finished_at = CASE WHEN ? THEN ? ELSE finished_at END,
                       updated_at = ?
                   WHERE allocation_id = ?""",
                (status, exit_code, error, started, now, finished, now, now, allocation_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no allocation {allocation_id} on this node")
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM allocation_records WHERE allocation_id = ?",
                (allocation_id,),
            ).fetchone()
        return _record(row)

    def get(self, allocation_id: str) -> AllocationRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM allocation_records WHERE allocation_id = ?",
                (allocation_id,),
            ).fetchone()
        return None if row is None else _record(row)

    def list(
        self, *, status: str | Iterable[str] | None = None, ensemble_id: str | None = None
    ) -> list[AllocationRecord]:
        """Records, oldest first, filtered by status(es) and ensemble."""
        where: list[str] = []
        params: list[object] = []
        if status is not None:
            values = [status] if isinstance(status, str) else list(status)
            for value in values:
                _check_status(value)
            where.append(f"status IN ({', '.join('?' * len(values))})")
            params.extend(values)
        if ensemble_id is not None:
            where.append("ensemble_id = ?")
            params.append(ensemble_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM allocation_records{clause} "
                "ORDER BY created_at, allocation_id",
                params,
            ).fetchall()
        return [_record(r) for r in rows]

    def live_ids(self) -> set[str]:
        """IDs of allocations whose execution may still exist (what a restart must keep)."""
        return {r.allocation_id for r in self.list(status=LIVE_STATUSES)}

    def delete(self, allocation_id: str) -> bool:
        """Forget the record; True if there was one."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM allocation_records WHERE allocation_id = ?", (allocation_id,)
            )
            return cursor.rowcount > 0
